"""Neural architecture search: nasConfig expansion, DARTS (α moves, genotype from nasConfig,
resume after a killed trial, Katib's trial program) and the ENAS controller searcher."""

from __future__ import annotations

import os
import re
import signal

import pytest
import torch
import yaml

from raytune_k8s.spec.nas import NasConfig, darts_search_space, parse_operation
from raytune_k8s.spec.nas_settings import DartsSettings, EnasSettings
from raytune_k8s.spec.settings import Settings
from raytune_k8s.spec import Objective, Setting, SpecError

ENAS_CPU_NAS_CONFIG = """
graphConfig: {numLayers: 1, inputSizes: [32, 32, 3], outputSizes: [10]}
operations:
  - operationType: convolution
    parameters:
      - {name: filter_size, parameterType: categorical, feasibleSpace: {list: ["3", "5", "7"]}}
      - {name: num_filter, parameterType: categorical, feasibleSpace: {list: ["32", "48", "64", "96", "128"]}}
      - {name: stride, parameterType: categorical, feasibleSpace: {list: ["1", "2"]}}
  - operationType: reduction
    parameters:
      - {name: reduction_type, parameterType: categorical, feasibleSpace: {list: [max_pooling, avg_pooling]}}
      - {name: pool_size, parameterType: int, feasibleSpace: {min: "2", max: "3", step: "1"}}
"""

DARTS_NAS_CONFIG = {
    "graphConfig": {"numLayers": 1},
    "operations": [
        {"operationType": "separable_convolution",
         "parameters": [{"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3", "5"]}}]},
        {"operationType": "max_pooling",
         "parameters": [{"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3"]}}]},
        {"operationType": "skip_connection"},
    ],
}

#: a DARTS search small enough for a test: 8 x 8 images, 256 of them, 1 cell of 2 nodes
TINY_DARTS = {"nasConfig": DARTS_NAS_CONFIG, "image_size": 8, "train_size": 256, "init_channels": 2, "num_nodes": 2,
              "stem_multiplier": 1, "batch_size": 32, "alpha_lr": 0.05, "w_lr": 0.05}


def test_nas_config_expands_every_parameter_combination():
    config = NasConfig.model_validate(yaml.safe_load(ENAS_CPU_NAS_CONFIG))
    ops = config.candidates()
    assert len(ops) == 3 * 5 * 2 + 2 * 2
    assert ops[0].type == "convolution" and ops[0].params == {"filter_size": 3, "num_filter": 32, "stride": 1}
    assert ops[-1].params == {"reduction_type": "avg_pooling", "pool_size": 3}
    assert len({op.name for op in ops}) == len(ops)

    darts = NasConfig.model_validate(DARTS_NAS_CONFIG)
    names = darts_search_space(darts)
    assert names == ["separable_convolution_3x3", "separable_convolution_5x5", "max_pooling_3x3", "skip_connection"]
    assert [parse_operation(n) for n in names] == darts.candidates()


def test_bad_nas_config_names_the_problem():
    bad = {**DARTS_NAS_CONFIG, "operations": [{"operationType": "attention"}]}
    with pytest.raises(ValueError, match="unknown operationType 'attention'"):
        NasConfig.model_validate(bad)
    no_list = {"graphConfig": {"numLayers": 1}, "operations": [
        {"operationType": "max_pooling", "parameters": [{"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {}}]}]}
    with pytest.raises(ValueError, match="needs feasibleSpace.list"):
        NasConfig.model_validate(no_list)


def test_settings_have_katib_defaults_and_field_errors():
    assert DartsSettings().num_epochs == 50 and DartsSettings().init_channels == 16 and DartsSettings().alpha_lr == 3e-4
    assert EnasSettings().controller_hidden_size == 64 and EnasSettings().controller_baseline_decay == 0.999
    read = DartsSettings.from_settings(Settings([Setting(name="num_epochs", value="2")], "algorithm.algorithmSettings"))
    assert read.num_epochs == 2
    with pytest.raises(SpecError) as err:
        EnasSettings.from_settings(Settings([Setting(name="controller_skip_target", value="1.5")], "algorithm.algorithmSettings"))
    assert err.value.field == "algorithm.algorithmSettings[0].value"


def test_darts_moves_alpha_and_derives_a_genotype_from_nas_config():
    from raytune_k8s.trials.nas.darts import DartsSearch

    torch.set_num_threads(1)
    search = DartsSearch.from_config({**TINY_DARTS, "num_epochs": 3})
    initial_alpha = torch.cat(search.model.alphas()).detach().clone()  # one cell: a reduction cell
    initial = search.model.genotype()
    for _ in range(3):
        metrics = search.run_epoch()
    assert 0 <= metrics["Validation-accuracy"] <= 1 and metrics["loss"] > 0
    moved = (torch.cat(search.model.alphas()).detach() - initial_alpha).abs().max().item()
    assert moved > 0.05, f"alpha moved only {moved}"
    final = search.model.genotype()
    assert final != initial, "the genotype is still the one of the initial alpha"
    assert final.operations() <= set(darts_search_space(NasConfig.model_validate(DARTS_NAS_CONFIG)))
    assert metrics["Best-Genotype"].startswith("Genotype(normal=[[(") and " " not in metrics["Best-Genotype"]


def test_killed_darts_trial_resumes_from_its_epoch_checkpoint(ray_connected, tmp_path):
    """The trial's process is SIGKILLed once its first epoch's checkpoint is registered; Tune
    restarts it, and the new process goes on from there (reports epochs 2 and 3, not 1 again)."""
    from ray import tune

    from raytune_k8s.trials.nas import darts

    killed: list[int] = []
    reports: list[tuple[int, int]] = []  # (pid, epoch) as the driver received them

    class KillAfterFirstCheckpoint(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            reports.append((result["pid"], result["epoch"]))

        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            if not killed:
                killed.append(trial.last_result["pid"])
                os.kill(trial.last_result["pid"], signal.SIGKILL)

    tuner = tune.Tuner(
        tune.with_resources(darts.train, {"cpu": 1}),
        param_space={**TINY_DARTS, "num_epochs": 3, "train_size": 512},
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="darts", callbacks=[KillAfterFirstCheckpoint()],
                                  failure_config=tune.FailureConfig(max_failures=1), verbose=0),
    )
    result = tuner.fit()[0]
    assert result.error is None
    assert killed, "the trial was never killed"
    assert reports[0] == (killed[0], 1)
    restarted = [epoch for pid, epoch in reports if pid != killed[0]]
    assert restarted == [2, 3], f"the restarted trial did not continue from its epoch-1 checkpoint: {reports}"
    assert result.metrics["epoch"] == 3 and result.metrics["Best-Genotype"].startswith("Genotype(")


def test_run_trial_takes_katibs_flags_and_prints_the_genotype(capsys):
    """As Katib's darts-cpu.yaml runs its trial program (``python -m raytune_k8s.trials.nas.run_darts_trial``,
    here its ``main`` in this process): quoted, single-quoted JSON values."""
    from raytune_k8s.trials.nas import run_darts_trial as run_trial

    settings = "{'num_epochs': '1', 'num_nodes': '1', 'init_channels': '1', 'stem_multiplier': '1', 'w_lr': 0.025}"
    argv = [f'--algorithm-settings="{settings}"', "--search-space=\"['max_pooling_3x3', 'skip_connection']\"", '--num-layers="1"',
            "--image-size=8", "--train-size=128"]
    assert run_trial.main(argv) == 0
    out = capsys.readouterr().out
    found = dict(re.findall(r"^([\w-]+)=(Genotype.*)$", out, re.MULTILINE))  # Katib's metricsFormat
    assert set(found) == {"Best-Genotype"}
    assert "max_pooling_3x3" in found["Best-Genotype"] or "skip_connection" in found["Best-Genotype"]
    assert re.search(r"^Validation-accuracy=0\.\d+$", out, re.MULTILINE)
    with pytest.raises(SystemExit):
        run_trial.main(["--search-space=['attention_3x3']", "--num-layers=1"])
    assert "attention_3x3" in capsys.readouterr().err


# ---------------------------------------------------------------- ENAS


def _enas(settings: EnasSettings, layers: int = 2, seed: int = 0):
    from raytune_k8s.search.enas import EnasSearcher

    config = {**DARTS_NAS_CONFIG, "graphConfig": {"numLayers": layers}}
    return EnasSearcher(NasConfig.model_validate(config), "Validation-accuracy", "max", settings, seed)


def test_enas_controller_learns_to_favour_the_rewarded_operation():
    import json

    torch.set_num_threads(1)
    searcher = _enas(EnasSettings(controller_learning_rate=0.02, controller_train_steps=5, controller_baseline_decay=0.9))
    target = 2  # max_pooling_3x3
    before = searcher.controller.operation_probabilities(0)[target]
    for i in range(40):
        architecture = json.loads(searcher.suggest(f"t{i}")["architecture"])
        assert len(architecture) == 2 and len(architecture[1]) == 2
        searcher.on_trial_complete(f"t{i}", {"Validation-accuracy": 1.0 if architecture[0][0] == target else 0.0})
    after = searcher.controller.operation_probabilities(0)[target]
    assert before < 0.4 and after > 0.7, (before, after)


def test_enas_state_survives_save_and_restore(tmp_path):
    searcher = _enas(EnasSettings(controller_learning_rate=0.02, controller_train_steps=3))
    for i in range(5):
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"Validation-accuracy": 0.1 * i})
    searcher.suggest("pending")
    searcher.save(str(tmp_path / "enas.pkl"))

    restored = _enas(EnasSettings(controller_learning_rate=0.02, controller_train_steps=3), seed=99)
    assert restored.controller.operation_probabilities(1) != searcher.controller.operation_probabilities(1)
    restored.restore(str(tmp_path / "enas.pkl"))
    assert restored.controller.operation_probabilities(1) == searcher.controller.operation_probabilities(1)
    assert restored.baseline == searcher.baseline and set(restored.pending) == {"pending"}
    assert [restored.suggest(f"n{i}") for i in range(3)] == [searcher.suggest(f"n{i}") for i in range(3)]
    restored.on_trial_complete("pending", {"Validation-accuracy": 0.9})  # the pending architecture still teaches
    assert restored.train_steps == searcher.train_steps + 3


def test_enas_needs_a_nas_config_and_reads_katib_settings():
    from raytune_k8s.search import enas

    objective = Objective(type="maximize", objectiveMetricName="Validation-Accuracy")
    with pytest.raises(SpecError) as err:
        enas.create(None, objective, Settings([], "algorithm.algorithmSettings"))
    assert err.value.field == "nasConfig"
    settings = Settings([Setting(name="controller_hidden_size", value="16")], "algorithm.algorithmSettings")
    searcher = enas.create_nas_searcher(NasConfig.model_validate(DARTS_NAS_CONFIG), objective, settings)
    settings.reject_unused()
    assert searcher.settings.controller_hidden_size == 16 and searcher.mode == "max"


def test_enas_child_trains_from_a_suggestion():
    from raytune_k8s.trials.nas import enas_child as child
    from raytune_k8s.search.enas import EnasSearcher

    torch.set_num_threads(1)
    strided = NasConfig.model_validate({"graphConfig": {"numLayers": 3}, "operations": [
        {"operationType": "convolution", "parameters": [
            {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3"]}},
            {"name": "num_filter", "parameterType": "categorical", "feasibleSpace": {"list": ["8"]}},
            {"name": "stride", "parameterType": "categorical", "feasibleSpace": {"list": ["2"]}}]}]})
    config = EnasSearcher(strided, "Validation-accuracy", "max").suggest("t0")
    model, images = child.build({**config, "image_size": 8, "train_size": 512, "val_size": 256, "init_channels": 8})
    assert [type(layer).__name__ for layer in model.layers] == ["ConvBN"] * 3
    accuracy = child.fit(model, images, epochs=3, lr=0.05, batch_size=32, seed=0)
    assert accuracy > 0.3  # 10 classes: chance is 0.1


def test_darts_suggestion_gives_katibs_trial_parameters_that_the_trainable_reads():
    from raytune_k8s.search import darts as darts_suggestion
    from raytune_k8s.trials.nas.darts import parse_trial_config

    objective = Objective(type="maximize", objectiveMetricName="Best-Genotype")
    settings = Settings([Setting(name="num_epochs", value="1"), Setting(name="num_nodes", value="1")], "algorithm.algorithmSettings")
    searcher = darts_suggestion.create(None, objective, settings, NasConfig.model_validate(DARTS_NAS_CONFIG))
    settings.reject_unused()
    suggestion = searcher.suggest("t0")
    assert suggestion == searcher.suggest("t1") and suggestion["num-layers"] == "1"
    assert suggestion["search-space"] == "['separable_convolution_3x3', 'separable_convolution_5x5', 'max_pooling_3x3', 'skip_connection']"
    read, candidates, layers = parse_trial_config(suggestion)
    assert read == DartsSettings(num_epochs=1, num_nodes=1) and layers == 1
    assert candidates == NasConfig.model_validate(DARTS_NAS_CONFIG).candidates()
    not_darts = NasConfig.model_validate(yaml.safe_load(ENAS_CPU_NAS_CONFIG))
    with pytest.raises(SpecError) as err:
        darts_suggestion.create(None, objective, Settings([], "algorithm.algorithmSettings"), not_darts)
    assert err.value.field == "nasConfig.operations[0].parameters"


def test_enas_searcher_learns_in_the_searcher_actor_across_its_restart(ray_connected, tmp_path):
    """ENAS runs in the project's searcher actor; the actor is killed halfway, and the restored
    controller keeps what it learnt (every reward folded in, the rewarded operation favoured)."""
    import json
    import pickle
    import time

    from raytune_k8s.search.actor.driver import ActorSearcher

    settings = EnasSettings(controller_learning_rate=0.02, controller_train_steps=5, controller_baseline_decay=0.9)
    searcher = ActorSearcher(_enas(settings), prefetch=1)
    searcher.set_search_properties("Validation-accuracy", "max", {})
    target = 2

    def trial(i: int) -> None:
        deadline = time.monotonic() + 60
        while (config := searcher.suggest(f"t{i}")) is None:
            assert time.monotonic() < deadline, "no suggestion within 60 s"
            time.sleep(0.02)
        architecture = json.loads(config["architecture"])
        searcher.on_trial_complete(f"t{i}", {"Validation-accuracy": 1.0 if architecture[0][0] == target else 0.0})

    def folded(n: int) -> bool:
        deadline = time.monotonic() + 60
        while searcher.observations() != n:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    try:
        for i in range(20):
            trial(i)
        assert folded(20)
        searcher.kill_actor()
        for i in range(20, 40):
            trial(i)
        assert folded(40) and searcher.restarts == 1
        deadline = time.monotonic() + 30
        while True:  # the actor's snapshot rides back to the driver with a later round trip
            searcher.save(str(tmp_path / "actor.pkl"))
            snapshot = pickle.loads(pickle.load(open(tmp_path / "actor.pkl", "rb"))["snapshot"][1])
            if len(snapshot["folded"]) == 40 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        searcher.close()
    controller = _enas(settings, seed=7)
    controller.set_state(pickle.loads(snapshot["searcher"]))
    assert controller.train_steps == 40 * settings.controller_train_steps  # the first 20 survived the restart
    assert controller.controller.operation_probabilities(0)[target] > 0.7


def test_run_enas_trial_takes_katibs_flags(capsys):
    """As Katib's enas-cpu.yaml runs its trial program, with a suggestion of our controller."""
    from raytune_k8s.trials.nas import run_enas_trial

    config = _enas(EnasSettings(), layers=2).suggest("t0")
    argv = ["--num_epochs=1", f'--architecture="{config["architecture"]}"', '--nn_config="' + config["nn_config"].replace('"', "'") + '"',
            "--image-size=8", "--train-size=128", "--init-channels=4"]
    assert run_enas_trial.main(argv) == 0
    assert re.search(r"^Validation-Accuracy=0\.\d+$", capsys.readouterr().out, re.MULTILINE)
