"""Every bad experiment file gets one line naming the field, exit status 2, and nothing starts."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from raytune_k8s.cli import main
from raytune_k8s.spec import SpecError

from .helpers import REPO

GOOD: dict[str, Any] = yaml.safe_load((REPO / "examples" / "mnist-mxnet-random.yaml").read_text())


def _spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        node = spec
        *parents, last = dotted.split("/")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return spec


_DELETE = object()

CASES = [
    # (id, spec dict or raw text, expected text in the one error line)
    ("yaml-syntax", "name: x\nobjective: [unclosed\n", "invalid YAML: line"),
    ("not-a-mapping", "- just\n- a list\n", "must be a YAML mapping"),
    ("unknown-key", _spec(**{"parallelTrials": 3}), "parallelTrials: unknown field"),
    ("unknown-nested-key", _spec(**{"objective/metric": "x"}), "objective.metric: unknown field"),
    ("wrong-type", _spec(**{"maxTrialCount": "many"}), "maxTrialCount: Input should be a valid integer"),
    ("missing-required", _spec(**{"objective/objectiveMetricName": _DELETE}), "objective.objectiveMetricName: required field is missing"),
    ("missing-trial", _spec(trial=_DELETE), "trialTemplate: required field is missing"),
    ("empty-categorical", _spec(**{"parameters/2/feasibleSpace/list": []}), "parameters[2].feasibleSpace.list: a categorical parameter needs a non-empty list"),
    ("min-greater-than-max", _spec(**{"parameters/0/feasibleSpace": {"min": 0.5, "max": 0.1}}), "parameters[0].feasibleSpace: min 0.5 is greater than max 0.1"),
    ("step-does-not-fit", _spec(**{"parameters/0/feasibleSpace": {"min": 0.01, "max": 0.03, "step": 0.015}}), "parameters[0].feasibleSpace.step: step 0.015 does not divide"),
    ("step-too-large", _spec(**{"parameters/1/feasibleSpace": {"min": 2, "max": 5, "step": 4}}), "parameters[1].feasibleSpace.step: step 4 is larger than the range"),
    ("int-not-whole", _spec(**{"parameters/1/feasibleSpace": {"min": 2.5, "max": 5}}), "parameters[1].feasibleSpace.min: an int parameter needs a whole number"),
    ("zero-max-trials", _spec(maxTrialCount=0), "maxTrialCount: Input should be greater than 0"),
    ("negative-parallel", _spec(parallelTrialCount=-1), "parallelTrialCount: Input should be greater than 0"),
    ("negative-max-failed", _spec(maxFailedTrialCount=-2), "maxFailedTrialCount: Input should be greater than or equal to 0"),
    ("parallel-over-max", _spec(parallelTrialCount=20), "parallelTrialCount: 20 is greater than maxTrialCount 12"),
    ("log-min-zero", _spec(**{"parameters/0/feasibleSpace": {"min": 0, "max": 0.1, "distribution": "logUniform"}}), "parameters[0].feasibleSpace.min: a logUniform distribution needs min > 0"),
    ("unknown-distribution", _spec(**{"parameters/0/feasibleSpace/distribution": "cauchy"}), "parameters[0].feasibleSpace.distribution: Input should be"),
    ("unknown-parameter-type", _spec(**{"parameters/0/parameterType": "float"}), "parameters[0].parameterType: Input should be"),
    ("unknown-algorithm", _spec(**{"algorithm/algorithmName": "cmaes-xl"}), "algorithm.algorithmName: unknown algorithm 'cmaes-xl'; choose one of random, grid, tpe, multivariate-tpe, cmaes, sobol, nsga2, nsga3, gp, bayesianoptimization, hyperband, pbt, darts, enas"),
    ("unknown-algorithm-setting", _spec(**{"algorithm/algorithmSettings": [{"name": "seeed", "value": 1}]}), "algorithm.algorithmSettings[0].name: unknown setting 'seeed'"),
    ("bad-algorithm-setting", _spec(**{"algorithm/algorithmSettings": [{"name": "random_state", "value": "abc"}]}), "algorithm.algorithmSettings[0].value: random_state must be a whole number"),
    ("unknown-early-stopping", _spec(earlyStopping={"algorithmName": "patience"}), "earlyStopping.algorithmName: unknown early-stopping rule 'patience'; choose one of medianstop, asha, hyperband"),
    ("unknown-trainable", _spec(**{"trial/trainable": "mnist-jax"}), "trial.trainable: unknown trainable 'mnist-jax'"),
    ("two-trial-kinds", _spec(**{"trial/command": "echo hi"}), "trial: give exactly one of 'trainable', 'function' or 'command' (got trainable, command)"),
    ("unimportable-function", _spec(**{"trial/trainable": _DELETE, "trial/function": "no_such_module_xyz:train"}), "trial.function: cannot import 'no_such_module_xyz'"),
    ("unknown-placeholder", _spec(**{"trial/trainable": _DELETE, "trial/command": "echo ${trialParameters.momentum}"}), "trial.command: placeholder ${trialParameters.momentum} names no parameter"),
    ("bad-cpu", _spec(**{"trial/resources/cpu": "two"}), "trial.resources.cpu: 'two' is not a CPU quantity"),
    ("bad-memory", _spec(**{"trial/resources/memory": "1 gallon"}), "trial.resources.memory: '1 gallon' is not a memory quantity"),
    ("grid-without-step", _spec(**{"algorithm/algorithmName": "grid", "algorithm/algorithmSettings": []}), "parameters[0].feasibleSpace.step: grid search needs a step"),
    ("bad-name", _spec(name="My Experiment"), "name: 'My Experiment' must be lowercase"),
]


def _write(tmp_path: Path, spec: Any) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("spec, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_spec_gets_one_line_exit_2_and_nothing_started(tmp_path, monkeypatch, capsys, spec, expected):
    was_initialized = ray.is_initialized()
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray was started for a bad spec"))
    storage = tmp_path / "storage"
    code = main(["run", str(_write(tmp_path, spec)), "--storage-path", str(storage), "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert not storage.exists(), "nothing may be written for a bad spec"
    assert ray.is_initialized() == was_initialized


def test_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert f"experiment file '{tmp_path / 'nope.yaml'}' does not exist" in capsys.readouterr().err


def test_bad_spec_from_the_real_command_line(tmp_path):
    """The installed console script: exit status 2, one stderr line, no Ray session dir made."""
    path = _write(tmp_path, _spec(**{"parameters/0/feasibleSpace": {"min": 0.5, "max": 0.1}}))
    ray_tmp = tmp_path / "raytmp"
    ray_tmp.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "raytune_k8s", "run", str(path), "--storage-path", str(tmp_path / "s")],
        capture_output=True, text=True, env={**__import__("os").environ, "RAY_TMPDIR": str(ray_tmp)}, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {path}: parameters[0].feasibleSpace: min 0.5 is greater than max 0.1"]
    assert list(ray_tmp.iterdir()) == [] and not (tmp_path / "s").exists()


def test_every_example_is_valid(capsys):
    for path in sorted((REPO / "examples").glob("*.yaml")):
        assert main(["validate", str(path)]) == 0, path
        assert "warning:" not in capsys.readouterr().err, f"{path}: a parameter its trainable does not read"


# ---------------------------------------------------------------- the wider corpus, through the Python API
# (the same checks `raytune-k8s validate` and `run` make; one clear problem naming its field)

NAN, INF = float("nan"), float("inf")
KATIB: dict[str, Any] = yaml.safe_load((REPO / "examples" / "katib" / "random.yaml").read_text())
BRANIN: dict[str, Any] = {
    "name": "branin", "objective": {"type": "minimize", "objectiveMetricName": "value"}, "algorithm": {"algorithmName": "random"},
    "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10}},
                   {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15}}],
    "maxTrialCount": 4, "trial": {"trainable": "branin"},
}
TORCH: dict[str, Any] = yaml.safe_load((REPO / "examples" / "mnist-torch-asha.yaml").read_text())


def _edit(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = doc
        *parents, last = dotted.split("/")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return doc


def _named(name: str, ptype: str, space: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "parameterType": ptype, "feasibleSpace": space}


API_CASES = [
    # (id, base, changes, field, words in the reason)
    # NaN and infinity wherever a number goes
    ("min-nan", GOOD, {"parameters/0/feasibleSpace/min": NAN}, "parameters[0].feasibleSpace", "min and max must be finite numbers"),
    ("max-inf", GOOD, {"parameters/0/feasibleSpace/max": INF}, "parameters[0].feasibleSpace", "min and max must be finite numbers"),
    ("step-nan", GOOD, {"parameters/1/feasibleSpace/step": NAN}, "parameters[1].feasibleSpace.step", "positive finite number"),
    ("step-inf", GOOD, {"parameters/1/feasibleSpace/step": INF}, "parameters[1].feasibleSpace.step", "positive finite number"),
    ("goal-nan", GOOD, {"objective/goal": NAN}, "objective.goal", "must be a finite number, got nan"),
    ("goal-minus-inf", GOOD, {"objective/goal": -INF}, "objective.goal", "must be a finite number, got -inf"),
    ("parallel-nan", GOOD, {"parallelTrialCount": NAN}, "parallelTrialCount", "finite number"),
    ("max-trials-inf", GOOD, {"maxTrialCount": INF}, "maxTrialCount", "finite number"),
    ("max-failed-nan", GOOD, {"maxFailedTrialCount": NAN}, "maxFailedTrialCount", "finite number"),
    ("cpu-nan", GOOD, {"trial/resources/cpu": NAN}, "trial.resources.cpu", "nan is not a CPU quantity"),
    ("cpu-inf-text", GOOD, {"trial/resources/cpu": "inf"}, "trial.resources.cpu", "'inf' is not a finite CPU quantity"),
    ("memory-inf", GOOD, {"trial/resources/memory": INF}, "trial.resources.memory", "finite number"),
    ("memory-nan-text", GOOD, {"trial/resources/memory": "nan"}, "trial.resources.memory", "'nan' is not a memory quantity"),
    ("gpu-nan", GOOD, {"trial/resources/gpu": NAN}, "trial.resources.gpu", "nan is not a GPU quantity"),
    ("timeout-nan", GOOD, {"trial/timeout": NAN}, "trial.timeout", "greater than 0"),
    ("timeout-inf", GOOD, {"trial/timeout": INF}, "trial.timeout", "must be a finite number of seconds"),
    ("retries-nan", GOOD, {"trial/retries": NAN}, "trial.retries", "finite number"),
    ("setting-nan", GOOD, {"algorithm/algorithmSettings/0/value": NAN}, "algorithm.algorithmSettings[0].value", "random_state must be a whole number, got nan"),
    ("setting-inf", GOOD, {"algorithm/algorithmSettings/0/value": INF}, "algorithm.algorithmSettings[0].value", "random_state must be a whole number, got inf"),
    ("searcher-cpu-nan", GOOD, {"algorithm/resources": {"cpu": NAN}}, "algorithm.resources.cpu", "nan is not a CPU quantity"),
    ("early-stopping-setting-nan", GOOD, {"earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [{"name": "min_trials_required", "value": NAN}]}},
     "earlyStopping.algorithmSettings[0].value", "min_trials_required must be a whole number >= 1, got nan"),
    ("discrete-nan", GOOD, {"parameters/1": _named("num-layers", "discrete", {"list": [1, NAN]})}, "parameters[1].feasibleSpace.list", "finite numbers"),
    ("categorical-nan", GOOD, {"parameters/2/feasibleSpace/list": ["sgd", NAN]}, "parameters[2].feasibleSpace.list", "must be finite"),
    ("categorical-inf", GOOD, {"parameters/2/feasibleSpace/list": ["sgd", -INF]}, "parameters[2].feasibleSpace.list", "must be finite"),
    ("fixed-parameter-nan", GOOD, {"trial/fixedParameters/num-epochs": NAN}, "trial.fixedParameters.num-epochs", "nan is not a number"),
    ("fixed-parameter-inf", GOOD, {"trial/fixedParameters/num-hidden": INF}, "trial.fixedParameters.num-hidden", "inf is not a number"),
    # huge counts and ranges
    ("max-trials-huge", GOOD, {"maxTrialCount": 10**12}, "maxTrialCount", "less than or equal to 10000000"),
    ("parallel-huge", GOOD, {"parallelTrialCount": 10**9, "maxTrialCount": _DELETE}, "parallelTrialCount", "less than or equal to 100000"),
    ("max-failed-huge", GOOD, {"maxFailedTrialCount": 10**30}, "maxFailedTrialCount", "less than or equal to 10000000"),
    ("int-range-huge", GOOD, {"parameters/1/feasibleSpace": {"min": -(10**300), "max": 10**300}}, "parameters[1].feasibleSpace", "within ±2^53"),
    ("name-too-long", GOOD, {"name": "x" * 64}, "name", "at most 63 characters"),
    # built-in trainables: the parameters they read
    ("branin-x1-x2", BRANIN, {"parameters/0/name": "x1", "parameters/1/name": "x2"}, "parameters", "trainable 'branin' needs 'x' and 'y'"),
    ("hartmann6-missing-x6", BRANIN, {"trial/trainable": "hartmann6",
     "parameters": [_named(f"x{i}", "double", {"min": 0, "max": 1}) for i in range(1, 6)]}, "parameters", "needs 'x6'"),
    ("replay-without-durations", BRANIN, {"trial/trainable": "replay", "parameters": [_named("trial_index", "int", {"min": 0, "max": 3})]},
     "parameters", "needs 'durations'"),
    ("enas-child-without-enas", BRANIN, {"trial/trainable": "enas-child"}, "parameters", "needs 'architecture' and 'nn_config'"),
    ("darts-without-darts", BRANIN, {"trial/trainable": "darts"}, "parameters", "needs 'search-space' or 'nasConfig' or 'nas_config'"),
    ("torch-optimizer-not-offered", TORCH, {"parameters/2/feasibleSpace/list": ["sgd", "ftrl"]}, "parameters[2]",
     "reads 'optimizer' as one of sgd, adam, adagrad, rmsprop; 'ftrl' is not one of them"),
    ("torch-model-unknown", TORCH, {"parameters": TORCH["parameters"][:1], "trial/fixedParameters/model": "resnet"},
     "trial.fixedParameters.model", "one of mlp, cnn; 'resnet' is not one of them"),
    ("batch-size-gives-fractions", TORCH, {"trial/fixedParameters": {}, "parameters/2": _named("batch-size", "double", {"min": 16, "max": 64})},
     "parameters[2]", "a double range gives fractions"),
    ("epochs-not-a-number", TORCH, {"trial/fixedParameters/num-epochs": "many"}, "trial.fixedParameters.num-epochs", "'many' is not a number"),
    ("lr-categorical-text", GOOD, {"parameters/0": _named("lr", "categorical", {"list": ["fast", "slow"]})}, "parameters[0]",
     "reads 'lr' as a number; 'fast' is not a number"),
]


@pytest.mark.parametrize("base, changes, field, words", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_input_is_one_problem_naming_the_field(base, changes, field, words):
    from raytune_k8s.experiment.runner import check

    with pytest.raises(SpecError) as info:
        check(_edit(base, changes))
    assert info.value.problems == [(field, info.value.reason)], info.value.problems
    assert words in info.value.reason


def test_unused_parameter_is_a_warning_not_an_error(tmp_path, capsys):
    doc = _edit(BRANIN, {"parameters": [*BRANIN["parameters"], _named("momentum", "double", {"min": 0.1, "max": 0.9})]})
    assert main(["validate", str(_write(tmp_path, doc))]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: parameters[2].name: trainable 'branin' does not read 'momentum', so every trial ignores it (it reads x, y, sleep)"]


def test_trainable_declarations_import_nothing_heavy():
    code = ("import sys; from raytune_k8s.trials.declarations import BUILTINS, check_builtin_parameters; "
            "heavy = [m for m in ('ray', 'torch', 'mxnet') if m in sys.modules]; assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_every_builtin_trainable_is_declared():
    from raytune_k8s.trials import BUILTINS
    from raytune_k8s.trials.declarations import BUILTINS as DECLARED

    for name, builtin in DECLARED.items():
        assert BUILTINS[name] == builtin.target
        for alternatives in builtin.needs:
            assert set(alternatives) <= set(builtin.reads), (name, alternatives)


# ---------------------------------------------------------------- files that cannot be read (the real CLI path, in process)


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


def _symlink_loop(tmp_path: Path) -> Path:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def _dangling(tmp_path: Path) -> Path:
    path = tmp_path / "link.yaml"
    path.symlink_to(tmp_path / "gone.yaml")
    return path


def _binary(tmp_path: Path) -> Path:
    path = tmp_path / "binary.yaml"
    path.write_bytes(bytes(range(128, 256)))
    return path


def _oversized(tmp_path: Path) -> Path:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(17 * 2**20)  # sparse: no disk used
    return path


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    return path


def _unreadable(tmp_path: Path) -> Path:
    path = _write(tmp_path, GOOD)
    path.chmod(0)
    return path


def _suffixless_directory(tmp_path: Path) -> Path:
    path = tmp_path / "experiments"
    path.mkdir()
    return path


_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
FILE_CASES = [
    pytest.param(_fifo, "is not a regular file (a pipe or a device?)", id="fifo"),
    pytest.param(_symlink_loop, "Too many levels of symbolic links", id="symlink-loop"),
    pytest.param(_dangling, "does not exist", id="dangling-symlink"),
    pytest.param(_binary, "cannot read experiment file", id="not-utf8"),
    pytest.param(_oversized, "is 17 MiB; an experiment file is at most 16 MiB", id="oversized"),
    pytest.param(_empty, "the experiment must be a YAML mapping", id="empty"),
    pytest.param(_suffixless_directory, "is a directory, not an experiment file", id="directory"),
    pytest.param(_unreadable, "Permission denied", id="unreadable", marks=_ROOT),
]


@pytest.mark.parametrize("make, words", FILE_CASES)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_unreadable_file_is_one_line_exit_2(tmp_path, capsys, monkeypatch, make, words, command):
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray was started for a bad file"))
    path = make(tmp_path)
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


# ---------------------------------------------------------------- trials larger than one worker


def test_trial_larger_than_the_clusters_worker_is_refused(tmp_path, monkeypatch, capsys):
    """Our RayCluster's head states its worker size (RAYTUNE_K8S_WORKER_*, from cluster/)."""
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray was started for a trial no worker fits"))
    monkeypatch.setenv("RAYTUNE_K8S_WORKER_CPU", "2")
    monkeypatch.setenv("RAYTUNE_K8S_WORKER_MEMORY", "4Gi")
    storage = tmp_path / "runs"
    path = _write(tmp_path, _spec(**{"trial/resources/cpu": 3}))
    assert main(["run", str(path), "--storage-path", str(storage), "--no-report"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: trial.resources.cpu: 3 vCPU per trial is more than one worker offers (2 vCPU, $RAYTUNE_K8S_WORKER_CPU): "
        "no worker could ever run it"]
    katib = _edit(KATIB, {"spec/trialTemplate/trialSpec/spec/template/spec/containers/0/resources/limits/memory": "8Gi"})
    assert main(["run", str(_write(tmp_path, katib)), "--storage-path", str(storage), "--no-report"]) == 2
    line, = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: spec.trialTemplate.trialSpec.spec.template.spec.containers[0].resources.memory: "
                           "8Gi memory per trial is more than one worker offers (4Gi memory, $RAYTUNE_K8S_WORKER_MEMORY)"), line
    assert not storage.exists()


def test_worker_size_from_the_environment():
    from raytune_k8s.scaling.quota import WorkerSize, check_fits_worker, worker_size_from_env

    assert worker_size_from_env({}) is None
    size = worker_size_from_env({"RAYTUNE_K8S_WORKER_CPU": "2", "RAYTUNE_K8S_WORKER_MEMORY": "4Gi", "RAYTUNE_K8S_WORKER_GPU": "1"})
    assert size == WorkerSize(cpu=2.0, memory=4 * 2**30, gpu=1.0, source="environment")
    check_fits_worker({"cpu": 2, "memory": 4 * 2**30, "gpu": 1}, size, "trial.resources")  # exactly one worker: fits
    with pytest.raises(SpecError) as info:
        check_fits_worker({"cpu": 0.5, "gpu": 2}, size, "trial.resources")
    assert info.value.field == "trial.resources.gpu"
    with pytest.raises(SpecError) as info:
        worker_size_from_env({"RAYTUNE_K8S_WORKER_CPU": "nan"})
    assert info.value.field == "$RAYTUNE_K8S_WORKER_CPU" and "'nan' is not a CPU quantity" in info.value.reason


def test_worker_size_is_unknown_for_a_cluster_joined_by_address(monkeypatch):
    from raytune_k8s.scaling.quota import known_worker_size

    for name in ("RAYTUNE_K8S_WORKER_CPU", "RAYTUNE_K8S_WORKER_MEMORY", "RAYTUNE_K8S_WORKER_GPU"):
        monkeypatch.delenv(name, raising=False)
    assert known_worker_size("127.0.0.1:6379") is None
    monkeypatch.setenv("RAYTUNE_K8S_WORKER_CPU", "2")
    assert known_worker_size("127.0.0.1:6379").cpu == 2.0


def test_trial_larger_than_this_machine_is_refused_when_ray_is_embedded(tmp_path):
    """The real command line, embedded Ray: this machine is the one worker."""
    path = _write(tmp_path, _spec(**{"trial/resources/cpu": 4096}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAYTUNE_K8S_WORKER_"))}
    ray_tmp = tmp_path / "raytmp"
    ray_tmp.mkdir()
    proc = subprocess.run([sys.executable, "-m", "raytune_k8s", "run", str(path), "--storage-path", str(tmp_path / "s")],
                          capture_output=True, text=True, env={**env, "RAY_TMPDIR": str(ray_tmp)}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: trial.resources.cpu: 4096 vCPU per trial is more than one worker offers ({len(os.sched_getaffinity(0))} vCPU, "
        "this machine, where Ray runs embedded): no worker could ever run it"]
    assert list(ray_tmp.iterdir()) == [] and not (tmp_path / "s").exists()
