"""Katib's metric strategies (``min``/``max``/``latest``) read the same way everywhere: the goal
stop, the progress line, the Optuna mirror and the summary all decide a trial's value with
:func:`raytune_k8s.spec.metric_value`; the mirror's EarlyStopped is the early-stopping rule's own
record (string ``max_t`` included), and a storage that cannot be opened is tried once.

Unit tests feed real Tune trials and result dicts to the real callbacks (no Ray cluster); one
short experiment checks the progress line and the mirror against its summary."""

from __future__ import annotations

import inspect
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

import raytune_k8s
from raytune_k8s.stopping.control import GOAL_REACHED, ExperimentControl
from raytune_k8s.experiment.progress import ProgressLine
from raytune_k8s.reporting import mirror as mirror_module
from raytune_k8s.reporting.mirror import OptunaMirror
from raytune_k8s.reporting.study import ATTR_TRIAL_ID
from raytune_k8s.spec import load_spec, metric_value
from raytune_k8s.stopping.record import RecordingScheduler, early_stopped_ids
from raytune_k8s.stopping.rules import create_scheduler, rule_budget
from raytune_k8s.results.summary import build_summary


def _spec(strategy: str | None = None, goal: float | None = None, early_stopping: dict | None = None, **extra: Any):
    objective: dict[str, Any] = {"type": "maximize", "objectiveMetricName": "accuracy"}
    if strategy:
        objective["metricStrategies"] = [{"name": "accuracy", "value": strategy}]
    if goal is not None:
        objective["goal"] = goal
    spec: dict[str, Any] = {
        "name": "strategies",
        "objective": objective,
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 0}]},
        "parameters": [{"name": "lr", "parameterType": "double",
                        "feasibleSpace": {"min": 1e-5, "max": 1.0, "distribution": "logUniform"}}],
        "trial": {"function": "raytune_k8s.trials.probes:learning_curve", "fixedParameters": {"steps": 9},
                  "resources": {"cpu": 1}},
        **extra,
    }
    if early_stopping is not None:
        spec["earlyStopping"] = early_stopping
    return spec


def _trial(lr: float = 0.01) -> Trial:
    return Trial("trainable", config={"lr": lr}, stub=True)


def _report(trial: Trial, step: int, accuracy: float) -> dict[str, Any]:
    result = {"accuracy": accuracy, "training_iteration": step, "done": False}
    trial.update_last_result(result)  # as Tune's controller does before the callbacks see it
    return result


def test_metric_value_is_min_max_or_latest_of_the_numbers_reported() -> None:
    reports = [{"a": 0.5}, {"a": "text"}, {"a": 0.9}, {"a": float("nan")}, {"a": True}, {"a": 0.2}, {"b": 1.0}]
    assert [metric_value(reports, "a", s) for s in ("min", "max", "latest")] == [0.2, 0.9, 0.2]
    # one report at a time, folding the value so far, gives the same
    for s in ("min", "max", "latest"):
        v = None
        for r in reports:
            v = metric_value([r], "a", s, v)
        assert v == metric_value(reports, "a", s)
    assert metric_value([{"b": 1}], "a", "max") is None
    assert metric_value([{"m": {"x": 3}}], "m/x", "latest") == 3.0


# ---- 1. the goal stop

def test_goal_with_latest_strategy_is_taken_back_by_a_later_report() -> None:
    """With ``latest``, a report that meets the goal followed by one that does not leaves a trial
    whose value (as the summary reads it) misses the goal: the experiment must not stop."""
    objective = load_spec(_spec("latest", goal=0.9)).objective
    control = ExperimentControl(objective, None)
    trial = _trial()
    control.on_step_begin(0, [])
    control.on_trial_result(1, [trial], trial, _report(trial, 1, 0.95))
    assert control.stop_all() and control.reason == GOAL_REACHED  # its latest meets the goal
    control.on_trial_result(1, [trial], trial, _report(trial, 2, 0.5))  # in the same step
    assert not control.stop_all() and control.reason is None
    assert metric_value([{"accuracy": 0.95}, {"accuracy": 0.5}], "accuracy", "latest") == 0.5


def test_goal_with_min_strategy_on_a_maximized_metric_is_not_met_by_one_high_report() -> None:
    objective = load_spec(_spec("min", goal=0.9)).objective
    control = ExperimentControl(objective, None)
    trial = _trial()
    control.on_step_begin(0, [])
    for step, accuracy in enumerate([0.5, 0.95], start=1):
        control.on_trial_result(1, [trial], trial, _report(trial, step, accuracy))
    assert not control.stop_all()


@pytest.mark.parametrize("strategy, stops", [("latest", False), ("max", True), ("min", False)])
def test_a_restored_run_reads_the_goal_by_the_strategy(strategy: str, stops: bool) -> None:
    """After a restore the control reads the trials' earlier reports off Tune's trials: a trial
    that reported 0.95 and then 0.5 met a goal of 0.9 only if its strategy is ``max``."""
    objective = load_spec(_spec(strategy, goal=0.9)).objective
    trial = _trial()
    _report(trial, 1, 0.95)
    _report(trial, 2, 0.5)
    control = ExperimentControl(objective, None)
    control.on_step_begin(0, [trial])
    assert control.stop_all() is stops


# ---- 1. the progress line

def test_progress_best_is_the_best_trial_value_by_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    objective = load_spec(_spec("latest")).objective
    progress = ProgressLine(objective, max_trials=2, min_interval_s=0.0)
    a, b = _trial(0.01), _trial(0.1)
    for trial, values in ((a, [0.9, 0.2]), (b, [0.4, 0.5])):
        progress.on_trial_start(0, [a, b], trial)
        for step, accuracy in enumerate(values, start=1):
            progress.on_trial_result(0, [a, b], trial, _report(trial, step, accuracy))
    progress.on_trial_complete(0, [a, b], a)
    progress.on_trial_complete(0, [a, b], b)
    lines = capsys.readouterr().err.strip().splitlines()
    # a's value is its latest, 0.2; b's 0.5: the summary's best trial is b, at 0.5
    assert lines[-1].endswith("best accuracy=0.5"), lines


# ---- 1. and 2. the Optuna mirror

def _study(url: str, name: str) -> dict[str, tuple[str, float | None]]:
    study = optuna.load_study(study_name=name, storage=url)
    return {t.user_attrs[ATTR_TRIAL_ID]: (t.state.name, t.value) for t in study.trials}


def test_mirror_value_is_the_trial_value_by_strategy(tmp_path: Path) -> None:
    spec = load_spec(_spec("latest"))
    url = f"sqlite:///{tmp_path / 'm.db'}"
    mirror = OptunaMirror(url, "latest", "accuracy", "max", spec, tmp_path)
    trial = _trial()
    mirror.on_trial_start(0, [trial], trial)
    for step, accuracy in enumerate([0.9, 0.2], start=1):
        mirror.on_trial_result(0, [trial], trial, _report(trial, step, accuracy))
    mirror.on_trial_complete(0, [trial], trial)
    mirror.close()
    assert _study(url, "latest") == {trial.trial_id: ("COMPLETE", 0.2)}


def test_mirror_marks_what_the_rule_stopped_early_with_a_string_max_t(tmp_path: Path) -> None:
    """Katib's settings are strings (``max_t: "9"``): the real ASHA rule stops the weak trial at
    its first rung and the strong one at the budget; the mirror shows the first as EarlyStopped
    (PRUNED), the second as Succeeded, as the rule's record (and so the summary) says."""
    early = {"algorithmName": "asha", "algorithmSettings": [
        {"name": "max_t", "value": "9"}, {"name": "grace_period", "value": "1"}, {"name": "reduction_factor", "value": "3"}]}
    spec = load_spec(_spec(early_stopping=early))
    assert rule_budget(spec.early_stopping) == 9
    np.random.seed(0)
    scheduler = RecordingScheduler(create_scheduler(spec.early_stopping), tmp_path, rule_budget(spec.early_stopping))
    scheduler.set_search_properties("accuracy", "max")
    url = f"sqlite:///{tmp_path / 'm.db'}"
    mirror = OptunaMirror(url, "asha", "accuracy", "max", spec, tmp_path)
    strong, weak = _trial(0.01), _trial(1.0)
    decisions: dict[str, list[str]] = {strong.trial_id: [], weak.trial_id: []}

    def step(trial: Trial, i: int, accuracy: float) -> None:
        result = _report(trial, i, accuracy)
        decision = scheduler.on_trial_result(None, trial, result)  # the scheduler first, as in Tune
        decisions[trial.trial_id].append(decision)
        mirror.on_trial_result(0, [strong, weak], trial, result)
        if decision == TrialScheduler.STOP:
            mirror.on_trial_complete(0, [strong, weak], trial)

    for trial in (strong, weak):
        scheduler.on_trial_add(None, trial)
        mirror.on_trial_start(0, [strong, weak], trial)
    step(strong, 1, 0.9)
    step(weak, 1, 0.1)
    for i in range(2, 10):
        step(strong, i, 0.9 + i / 100)
    mirror.close()
    assert decisions[weak.trial_id] == [TrialScheduler.STOP]
    assert decisions[strong.trial_id][-1] == TrialScheduler.STOP and len(decisions[strong.trial_id]) == 9
    assert early_stopped_ids(tmp_path) == {weak.trial_id}
    assert _study(url, "asha") == {strong.trial_id: ("COMPLETE", 0.99), weak.trial_id: ("PRUNED", 0.1)}


# ---- 3. a storage that cannot be opened

def test_mirror_tries_a_broken_storage_once_and_warns_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_open = mirror_module.open_storage

    def counting_open(url: str) -> Any:  # the real open, counted
        opened.append(url)
        return real_open(url)

    monkeypatch.setattr(mirror_module, "open_storage", counting_open)
    mirror = OptunaMirror(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", "broken", "accuracy", "max")
    trials = [_trial(float(i + 1) / 100) for i in range(10)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for t in trials:
            mirror.on_trial_start(0, trials, t)
            mirror.on_trial_result(0, trials, t, _report(t, 1, 0.5))
            mirror.on_trial_complete(0, trials, t)
        mirror.close()
    assert len(opened) == 1, f"the storage was tried {len(opened)} times"
    assert [str(w.message).startswith("mirroring into the Optuna storage") for w in caught] == [True]


# ---- 4. build_summary reads the reason off the trials, it takes none

def test_build_summary_takes_no_stop_reason() -> None:
    assert "stop_reason" not in inspect.signature(build_summary).parameters


# ---- one short experiment: the progress line and the mirror agree with the summary

def test_progress_and_mirror_agree_with_the_summary(ray_connected: Any, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``min`` on a maximized, climbing accuracy: a trial's value is its first report, not its
    best; ASHA with ``max_t: "9"`` (a string, as Katib writes it) stops some trials early."""
    early = {"algorithmName": "asha", "algorithmSettings": [
        {"name": "max_t", "value": "9"}, {"name": "grace_period", "value": "1"}, {"name": "reduction_factor", "value": "3"}]}
    spec = _spec("min", early_stopping=early, maxTrialCount=6, parallelTrialCount=2)
    url = f"sqlite:///{tmp_path / 'live.db'}"
    np.random.seed(0)  # Tune's ASHA draws each trial's bracket from NumPy's global RNG
    start = time.monotonic()
    summary = raytune_k8s.run(spec, storage_path=tmp_path, report=False, optuna_storage=url)
    assert time.monotonic() - start < 120
    rows = {r["trial_id"]: r for r in summary["trial_table"]}
    assert summary["early_stopped"] >= 1 and summary["succeeded"] >= 1
    optuna_state = {"Succeeded": "COMPLETE", "EarlyStopped": "PRUNED"}
    assert _study(url, "strategies") == {tid: (optuna_state[r["status"]], r["objective"]) for tid, r in rows.items()}
    best = summary["best"]["metrics"]["accuracy"]
    progress = [line for line in capsys.readouterr().err.splitlines() if "best accuracy=" in line]
    assert progress, "no progress line"
    shown = float(re.search(r"best accuracy=(\S+)", progress[-1]).group(1))
    assert shown == float(f"{best:.4g}")
