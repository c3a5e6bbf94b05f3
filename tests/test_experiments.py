"""Short real experiments on the session's Ray: every algorithm, every early-stopping rule, the
goal and max-failed stops, command trials and the Python API."""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np
import pytest
import yaml
from ray.tune.search import Searcher

import raytune_k8s
from raytune_k8s.cli import main
from raytune_k8s.trials.synthetic import branin_value

BRANIN_PARAMS = [
    {"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10, "step": 5}},
    {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15, "step": 7.5}},
]


def _last_reports(experiment_dir) -> dict[str, dict]:
    """Each trial's last report, read from its own ``result.json`` (by trial id)."""
    last = {}
    for path in experiment_dir.glob("*/result.json"):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        report = json.loads(lines[-1])
        last[report["trial_id"]] = report
    return last


def _branin(algorithm: str, **overrides):
    spec = {
        "name": f"branin-{algorithm}",
        "objective": {"type": "minimize", "objectiveMetricName": "value"},
        "algorithm": {"algorithmName": algorithm},
        "parameters": BRANIN_PARAMS,
        "parallelTrialCount": 2,
        "maxTrialCount": 6,
        "trial": {"trainable": "branin", "resources": {"cpu": 1}},
    }
    spec.update(overrides)
    return spec


@pytest.mark.parametrize("algorithm", ["random", "grid", "tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization"])
def test_each_algorithm_completes_a_short_experiment(ray_connected, tmp_path, algorithm):
    summary = raytune_k8s.run(_branin(algorithm), storage_path=tmp_path, report=False)
    assert summary["status"] == "Succeeded"
    assert summary["trials"] == 6 and summary["failed"] == 0
    # The best, recomputed apart from the summary: each trial's own result.json, its value
    # checked against Branin at the trial's config.
    reported = _last_reports(tmp_path / f"branin-{algorithm}")
    assert len(reported) == 6
    for report in reported.values():
        assert report["value"] == pytest.approx(branin_value(report["config"]["x"], report["config"]["y"]))
    best_id = min(reported, key=lambda trial_id: reported[trial_id]["value"])
    assert summary["best"]["metrics"]["value"] == reported[best_id]["value"]
    assert summary["best"]["params"] == {k: reported[best_id]["config"][k] for k in ("x", "y")}
    assert summary["best"]["trial_id"] == best_id or reported[summary["best"]["trial_id"]]["value"] == reported[best_id]["value"]
    on_disk = json.loads((tmp_path / f"branin-{algorithm}" / "summary.json").read_text())
    assert on_disk["best"] == summary["best"] and on_disk["wall_s"] > 0
    if algorithm == "grid":  # the 4 x 3 grid capped at 6 trials, no point twice
        points = {(r["params"]["x"], r["params"]["y"]) for r in summary["trial_table"]}
        assert len(points) == 6


def test_grid_smaller_than_max_trials_ends_when_exhausted(ray_connected, tmp_path):
    summary = raytune_k8s.run(_branin("grid", maxTrialCount=20), storage_path=tmp_path, report=False)
    assert (summary["status"], summary["reason"], summary["trials"]) == ("Succeeded", "ExperimentSuggestionEndReached", 12)


@pytest.mark.parametrize(
    "rule, settings",
    [
        ("medianstop", [{"name": "start_step", "value": 2}, {"name": "min_trials_required", "value": 2}]),
        ("asha", [{"name": "max_t", "value": 9}, {"name": "grace_period", "value": 1}, {"name": "reduction_factor", "value": 3}]),
        ("hyperband", [{"name": "max_t", "value": 9}, {"name": "grace_period", "value": 1}]),
    ],
)
def test_each_early_stopping_rule_stops_weak_trials(ray_connected, tmp_path, rule, settings):
    spec = {
        "name": f"curve-{rule}",
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 0}]},
        "earlyStopping": {"algorithmName": rule, "algorithmSettings": settings},
        "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 1e-5, "max": 1.0, "distribution": "logUniform"}}],
        "parallelTrialCount": 2,
        "maxTrialCount": 8,
        "trial": {"function": "raytune_k8s.trials.probes:learning_curve", "fixedParameters": {"steps": 9}, "resources": {"cpu": 1}},
    }
    # Tune's async Hyperband puts each trial into a bracket with the global NumPy RNG (it takes no
    # seed); unseeded, all eight once landed in brackets whose rungs they all passed.
    np.random.seed(0)
    summary = raytune_k8s.run(spec, storage_path=tmp_path, report=False)
    iterations = [r["iterations"] for r in summary["trial_table"]]
    assert summary["status"] == "Succeeded" and summary["trials"] == 8
    assert max(iterations) == 9, "the best trials run to the end"
    assert min(iterations) < 9, f"{rule} stopped no trial early: {iterations}"
    # Katib's words: a trial the rule stopped is EarlyStopped, one that ran to the end Succeeded.
    assert {(r["iterations"] < 9, r["status"]) for r in summary["trial_table"]} == {(True, "EarlyStopped"), (False, "Succeeded")}
    assert summary["early_stopped"] == sum(i < 9 for i in iterations)
    if rule == "medianstop":
        _check_median_history_replayed(tmp_path / f"curve-{rule}", start_step=2)


def _check_median_history_replayed(experiment_dir, start_step):
    """A resume's median rule (as restored from tuner.pkl) takes every ended trial's history from
    the journal: at each step, the running averages (from ``start_step`` on) of the trials that
    reached it, as their ``result.json`` files give them. With 3 finished trials kept by Tune in
    this suite, most of these trials had left Tune's controller."""
    from raytune_k8s.experiment.runner import _replay_stop_rule, _restored_tuner, _saved_spec
    from raytune_k8s.results.tune_state import saved_trials

    assert (experiment_dir / "retired_trials.jsonl").exists()
    spec = _saved_spec(experiment_dir)
    rule = _replay_stop_rule(_restored_tuner(experiment_dir, spec), experiment_dir, spec.objective.metric)
    expected: dict[int, list[float]] = {}
    for trial in saved_trials(experiment_dir):
        # A trial the rule paused (too few others yet) starts again from step 1: the last report of
        # each step counts.
        by_step = {r["training_iteration"]: r["accuracy"] for r in map(json.loads, (trial["dir"] / "result.json").open())}
        values = [by_step[step] for step in sorted(by_step)]
        for step in range(start_step, len(values) + 1):
            expected.setdefault(step, []).append(float(np.mean(values[start_step - 1:step])))
    assert sorted(rule._means_at) == sorted(expected)
    for step, means in expected.items():
        assert list(rule._means_at[step]) == pytest.approx(sorted(means)), step


def test_goal_reached_stops_the_experiment(ray_connected, tmp_path):
    spec = _branin("random", maxTrialCount=30, objective={"type": "minimize", "objectiveMetricName": "value", "goal": 60})
    spec["trial"]["fixedParameters"] = {"sleep": 0.5}
    summary = raytune_k8s.run(spec, storage_path=tmp_path, report=False)
    assert (summary["status"], summary["reason"]) == ("Succeeded", "ExperimentGoalReached")
    assert summary["best"]["metrics"]["value"] <= 60
    assert len(summary["trial_table"]) < 30


def test_max_failed_trials_stops_and_shows_errors(ray_connected, tmp_path, capsys):
    spec = _branin("random", maxTrialCount=8, maxFailedTrialCount=1)
    spec["trial"] = {"command": [sys.executable, "-c", "import sys; print('bad ${trialParameters.x}'); sys.exit(3)"], "resources": {"cpu": 1}}
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = main(["run", str(path), "--storage-path", str(tmp_path), "--no-report"])
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "branin-random" / "summary.json").read_text())
    assert code == 1
    assert (summary["status"], summary["reason"]) == ("Failed", "ExperimentMaxFailedTrialsReached")
    assert summary["failed"] == 2 and len(summary["trial_table"]) < 8
    assert all("exited with status 3" in t["error"] for t in summary["failed_trials"])
    assert "failed:" in out and "exited with status 3" in out
    # The report reads the same trials (Tune writes -Infinity as a trial's last result time when
    # it has none: such trials were once dropped).
    from raytune_k8s.reporting.experiment_dir import load_experiment

    record = load_experiment(tmp_path / "branin-random")
    assert sorted(t.trial_id for t in record.trials) == sorted(r["trial_id"] for r in summary["trial_table"])
    assert sum(t.status == "Failed" for t in record.trials) == 2


def test_command_trial_metrics_are_read_from_stdout(ray_connected, tmp_path, monkeypatch):
    from .helpers import REPO

    monkeypatch.chdir(REPO)  # the example's command names examples/quadratic.py relative to here
    summary = raytune_k8s.run(REPO / "examples" / "quadratic-command.yaml", storage_path=tmp_path, report=False)
    assert summary["status"] == "Succeeded" and summary["trials"] == 8
    for row in summary["trial_table"]:
        x, steps = row["params"]["x"], row["params"]["steps"]
        assert row["iterations"] == steps  # one report per printed loss line
        assert row["objective"] == pytest.approx((x - 1) ** 2 + 1 / steps, abs=1e-5)
    assert summary["best"]["metrics"]["step"] >= 1


def test_python_api_takes_a_yaml_string_and_refuses_to_overwrite(ray_connected, tmp_path):
    text = yaml.safe_dump(_branin("random", maxTrialCount=2))
    summary = raytune_k8s.run(text, storage_path=tmp_path, report=False)
    assert summary["trials"] == 2
    with pytest.raises(raytune_k8s.ExperimentExistsError, match="raytune-k8s resume"):
        raytune_k8s.run(text, storage_path=tmp_path, report=False)
    assert json.loads((tmp_path / "branin-random" / "summary.json").read_text())["trials"] == 2
    assert main(["results", str(tmp_path / "branin-random")]) == 0


class InterruptAfterFirstTrial(Searcher):
    """Sends the driver Ctrl-C the moment the first trial is complete, before a second exists."""

    def __init__(self):
        super().__init__(metric="value", mode="min")
        self.made = 0

    def suggest(self, trial_id):
        self.made += 1
        return {"x": float(self.made), "y": 1.0}

    def on_trial_complete(self, trial_id, result=None, error=False):
        os.kill(os.getpid(), signal.SIGINT)


def test_interrupt_between_trials_is_interrupted_not_finished(ray_connected, tmp_path):
    # Every trial started has finished, yet the experiment is not done: it must say so, so that
    # `raytune-k8s resume` is offered instead of a success with 1 of 4 trials.
    spec = _branin("random", maxTrialCount=4, parallelTrialCount=1)
    before = signal.getsignal(signal.SIGINT)
    summary = raytune_k8s.run(spec, storage_path=tmp_path, searcher=InterruptAfterFirstTrial(), searcher_actor=False, report=False)
    assert [r["status"] for r in summary["trial_table"]] == ["Succeeded"]
    assert (summary["status"], summary["reason"]) == ("Interrupted", "Interrupted")
    assert signal.getsignal(signal.SIGINT) is before, "the handler from before the run is back"
