"""What an experiment produced, in Katib's words: the summary dict and ``summary.json``.

Built from the experiment directory Tune wrote (its newest ``experiment_state-*.json`` for each
trial's state, config and error file, and each trial's ``result.json``), so the same code reads a
finished, a failed and an interrupted experiment. It reads them with ``json`` alone: Tune's
``ExperimentAnalysis`` turns every trial's results into a pandas DataFrame, which took most of a
minute on 10,000 trials. Trial conditions are Katib's (Succeeded,
Failed, EarlyStopped, MetricsUnavailable, Killed), and so are the experiment's reasons.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..spec import ExperimentSpec, metric_value
from .tune_state import ERROR, TERMINATED, saved_trials

SUMMARY_FILE = "summary.json"
SPEC_FILE = "experiment.yaml"

SUCCEEDED, FAILED, INTERRUPTED = "Succeeded", "Failed", "Interrupted"
GOAL_REACHED, MAX_TRIALS = "ExperimentGoalReached", "ExperimentMaxTrialsReached"
SUGGESTION_END, MAX_FAILED = "ExperimentSuggestionEndReached", "ExperimentMaxFailedTrialsReached"
NO_TRIAL_SUCCEEDED = "ExperimentNoTrialSucceeded"
#: Trial conditions that count against maxFailedTrialCount.
FAILED_CONDITIONS = ("Failed", "MetricsUnavailable")
FINISHED_CONDITIONS = ("Succeeded", "EarlyStopped", "Killed", *FAILED_CONDITIONS)


def trial_rows(experiment_dir: Path, spec: ExperimentSpec, stop_reason: str | None = None) -> list[dict[str, Any]]:
    """One row per trial: id, condition, params, the objective and each metric by its strategy."""
    from ..stopping.record import early_stopped_ids

    stopped = early_stopped_ids(experiment_dir)
    objective = spec.objective
    rows = []
    for trial in saved_trials(Path(experiment_dir)):
        reports = [_flat(r) for r in read_reports(trial["dir"])]
        observation = _observation(reports, objective.metrics)
        value = metric_value(reports, objective.metric, objective.strategy(objective.metric))
        text = _latest_text(reports, objective.metrics)
        status = str(trial["tune_status"])
        error = _error_line(trial["dir"], trial.get("error")) if status == ERROR else None
        condition, reason = _condition(status, error, value if value is not None else text.get(objective.metric), stop_reason,
                                       trial["trial_id"] in stopped)
        rows.append(
            {
                "trial_id": trial["trial_id"],
                "name": f"{spec.name}-{trial['trial_id']}",
                "status": condition,
                "reason": reason,
                "params": {k: _plain(v) for k, v in trial["config"].items()},
                "objective": value,
                "metrics": {**text, **{m: obs[objective.strategy(m)] for m, obs in observation.items()}},
                "observation": observation,
                "iterations": int(reports[-1].get("training_iteration", 0) or 0) if reports else 0,
                "error": error,
            }
        )
    return sort_best_first(rows, objective.mode)


def read_reports(trial_dir: Path) -> list[dict[str, Any]]:
    """A trial's reports, one JSON line each in its ``result.json`` (a line cut short is skipped)."""
    try:
        lines = (trial_dir / "result.json").read_text().splitlines()
    except OSError:
        return []
    reports = []
    for line in lines:
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict):
            reports.append(report)
    return reports


def _flat(report: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A report with nested dicts flattened to ``a/b`` keys (as Tune's tables name them)."""
    out: dict[str, Any] = {}
    for key, value in report.items():
        if isinstance(value, dict) and key != "config":
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _observation(reports: list[dict[str, Any]], metrics: list[str]) -> dict[str, dict[str, float]]:
    """min, max and latest of each metric a trial reported (Katib's observation)."""
    out: dict[str, dict[str, float]] = {}
    for name in metrics:
        low, high, latest = (metric_value(reports, name, "min"), metric_value(reports, name, "max"),
                             metric_value(reports, name, "latest"))
        if low is not None and high is not None and latest is not None:  # all or none: the same numbers
            out[name] = {"min": low, "max": high, "latest": latest}
    return out


def _latest_text(reports: list[dict[str, Any]], metrics: list[str]) -> dict[str, str]:
    """The last text value of each metric reported as text (Katib keeps such metrics as strings)."""
    out: dict[str, str] = {}
    for name in metrics:
        texts = [r[name] for r in reports if isinstance(r.get(name), str)]
        if texts:
            out[name] = texts[-1]
    return out


def _condition(status: str, error: str | None, objective: float | str | None, stop_reason: str | None,
               early_stopped: bool) -> tuple[str, str | None]:
    if status == ERROR:
        text = error or ""
        if "MetricsUnavailable" in text:
            return "MetricsUnavailable", "MetricsUnavailable"
        if "Timeout:" in text:
            return "Failed", "Timeout"
        return "Failed", "TrialFailed"
    if status == TERMINATED:
        if objective is None:  # ended by the experiment's stop before it reported, or it never did
            return ("Killed", stop_reason) if stop_reason else ("MetricsUnavailable", "MetricsUnavailable")
        if early_stopped:
            return "EarlyStopped", "EarlyStopped"
        return "Succeeded", None
    return status.capitalize(), None


def sort_best_first(rows: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    sign = -1 if mode == "max" else 1
    return sorted(rows, key=lambda r: (r["objective"] is None, sign * (r["objective"] or 0.0)))


def build_summary(
    spec: ExperimentSpec,
    rows: list[dict[str, Any]],
    *,
    wall_s: float,
    experiment_dir: Path,
    interrupted: bool = False,
) -> dict[str, Any]:
    """The experiment's outcome, Katib-style (status and reason), read off its trials; an
    ``interrupted`` run that did not reach maxTrialCount stays Interrupted even when every trial
    it started has finished."""
    count = {c: sum(r["status"] == c for r in rows) for c in ("Succeeded", "Failed", "EarlyStopped", "MetricsUnavailable", "Killed")}
    failed = [r for r in rows if r["status"] in FAILED_CONDITIONS]
    unfinished = [r for r in rows if r["status"] not in FINISHED_CONDITIONS]
    targets = spec.targets
    # With constraints, the best is the best feasible trial (Optuna's best_trial does the same).
    scored = [r for r in rows if r["objective"] is not None and (not targets.constrained or targets.feasible(r["metrics"]))]
    # A text objective (DARTS' genotype) has no order: the best is a trial that reported one.
    texted = [r for r in rows if r["status"] == "Succeeded" and isinstance(r["metrics"].get(spec.objective.metric), str)]
    best = scored[0] if scored else (texted[0] if texted else None)
    max_trials = spec.max_trials
    # The reasons are read off the trials, so they hold for resumed experiments too.
    if spec.max_failed_trials is not None and len(failed) > spec.max_failed_trials:
        status, reason = FAILED, MAX_FAILED
    elif best is not None and best["objective"] is not None and spec.objective.reached(best["objective"]):
        status, reason = SUCCEEDED, GOAL_REACHED
    elif unfinished or (interrupted and (max_trials is None or len(rows) < max_trials)):
        status, reason = INTERRUPTED, INTERRUPTED
    elif best is None:
        status, reason = FAILED, NO_TRIAL_SUCCEEDED
    else:
        status = SUCCEEDED
        reason = MAX_TRIALS if max_trials is not None and len(rows) >= max_trials else SUGGESTION_END
    summary = {
        "name": spec.name,
        "namespace": spec.namespace,
        "status": status,
        "reason": reason,
        "objective": {"metric": spec.objective.metric, "type": spec.objective.type, "goal": spec.objective.goal,
                      "strategy": spec.objective.strategy(spec.objective.metric)},
        "best": None if best is None else {"trial_id": best["trial_id"], "params": best["params"], "metrics": best["metrics"]},
        "currentOptimalTrial": None if best is None else _optimal_trial(best),
        "trials": count["Succeeded"] + count["EarlyStopped"],  # completed: they ran to the end or were stopped early
        "trials_total": len(rows),
        "succeeded": count["Succeeded"],
        "early_stopped": count["EarlyStopped"],
        "metrics_unavailable": count["MetricsUnavailable"],
        "killed": count["Killed"],
        "failed": len(failed),
        "failed_trials": [{"trial_id": r["trial_id"], "params": r["params"], "status": r["status"], "error": r["error"]} for r in failed],
        "wall_s": round(wall_s, 3),
        "experiment_dir": str(experiment_dir),
        "trial_table": rows,
    }
    if targets.several or targets.constrained:
        summary.update(pareto_summary(spec, rows))
        if targets.several and summary["pareto_front"]:
            # best (and Katib's currentOptimalTrial): the front's trial best on the first objective
            on_front = {p["trial_id"] for p in summary["pareto_front"]}
            top = next(r for r in rows if r["trial_id"] in on_front)  # rows are best first on it
            summary["best"] = {"trial_id": top["trial_id"], "params": top["params"], "metrics": top["metrics"]}
            summary["currentOptimalTrial"] = _optimal_trial(top)
    return summary


def pareto_summary(spec: ExperimentSpec, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """With several objectives or constraints: the objectives and constraints, each trial's
    ``feasible`` (in its row), the Pareto front of the feasible trials that ran to their end
    (each objective's value by its strategy), and its hypervolume up to a reference point (each
    objective's worst value among those trials plus 10 % of its range)."""
    from .pareto import front, hypervolume, reference_point, scored

    targets = spec.targets
    finished = []
    for row in rows:
        row["feasible"] = targets.feasible(row["metrics"]) if targets.constrained else targets.values(row["metrics"]) is not None
        if row["status"] in ("Succeeded", "EarlyStopped"):
            finished.append(scored(row["trial_id"], row["metrics"], targets))
    on_front = set(front(finished, targets))
    by_id = {r["trial_id"]: r for r in rows}
    pareto = []
    for trial in finished:
        if trial.key in on_front:
            row = by_id[trial.key]
            pareto.append({"trial_id": trial.key, "name": row["name"], "params": row["params"],
                           "values": dict(zip(targets.metrics, trial.values or [])), "feasible": True})
    points = [t.values for t in finished if t.values is not None and t.feasible]
    volume = None
    if points:
        reference = reference_point(points, targets.directions)
        front_points = [[p["values"][m] for m in targets.metrics] for p in pareto]
        volume = {"value": hypervolume(front_points, reference, targets.directions), "reference_point": reference}
    return {
        "objectives": [{"metric": o.metric, "direction": o.direction, "strategy": spec.objective.strategy(o.metric)}
                       for o in targets.objectives],
        "constraints": [{**c.model_dump(exclude_none=True), "strategy": spec.objective.strategy(c.metric)}
                        for c in targets.constraints],
        "feasible": sum(t.feasible for t in finished),
        "infeasible": sum(not t.feasible for t in finished),
        "pareto_front": pareto,
        "hypervolume": volume,
    }


def _optimal_trial(row: dict[str, Any]) -> dict[str, Any]:
    metrics = [{"name": m, **{k: str(v) for k, v in obs.items()}} for m, obs in row["observation"].items()]
    metrics += [{"name": m, "latest": v} for m, v in row["metrics"].items() if isinstance(v, str)]
    return {
        "bestTrialName": row["name"],
        "parameterAssignments": [{"name": k, "value": str(v)} for k, v in row["params"].items()],
        "observation": {"metrics": metrics},
    }


def katib_status(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as a Katib Experiment ``status`` block."""
    rows = summary["trial_table"]
    names = lambda *conds: [r["name"] for r in rows if r["status"] in conds]  # noqa: E731
    conditions = [{"type": "Created", "status": "True", "reason": "ExperimentCreated"}]
    if summary["status"] in (SUCCEEDED, FAILED):
        conditions.append({"type": summary["status"], "status": "True", "reason": summary["reason"],
                           "message": f"Experiment has {'succeeded' if summary['status'] == SUCCEEDED else 'failed'}: {summary['reason']}"})
    else:
        conditions.append({"type": "Running", "status": "False", "reason": summary["reason"],
                           "message": "Experiment was interrupted; continue it with raytune-k8s resume"})
    status = {
        "conditions": conditions,
        "currentOptimalTrial": summary.get("currentOptimalTrial") or {"bestTrialName": "", "parameterAssignments": [],
                                                                      "observation": {"metrics": []}},
        "trials": summary.get("trials_total", summary["trials"]),
        "trialsSucceeded": len(names("Succeeded")),
        "trialsFailed": len(names("Failed")),
        "trialsEarlyStopped": len(names("EarlyStopped")),
        "trialMetricsUnavailable": len(names("MetricsUnavailable")),
        "trialsKilled": len(names("Killed")),
        "trialsRunning": len(names("Running")),
        "trialsPending": len(names("Pending", "Paused")),
        "succeededTrialList": names("Succeeded"),
        "failedTrialList": names("Failed"),
        "earlyStoppedTrialList": names("EarlyStopped"),
        "metricsUnavailableTrialList": names("MetricsUnavailable"),
        "killedTrialList": names("Killed"),
        "runningTrialList": names("Running"),
        "pendingTrialList": names("Pending", "Paused"),
    }
    return {k: v for k, v in status.items() if v not in ([], 0) or k in ("trials", "conditions")}


def optimization_job_status(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as a Kubeflow Trainer OptimizationJob ``status`` block: ``conditions``
    (``Created``; ``Complete`` or ``Failed``, with Katib's reason less its ``Experiment`` prefix)
    and ``result``, the best trial's name and parameters."""
    rows = summary["trial_table"]
    done = sum(1 for r in rows if r["status"] not in ("Running", "Pending", "Paused"))
    conditions = [{"type": "Created", "status": "True", "reason": "OptimizationJobCreated",
                   "message": "OptimizationJob is created"}]
    reason = str(summary["reason"]).removeprefix("Experiment")
    if summary["status"] == SUCCEEDED:
        conditions.append({"type": "Complete", "status": "True", "reason": reason, "message": f"{done} trials finished"})
    elif summary["status"] == FAILED:
        conditions.append({"type": "Failed", "status": "True", "reason": reason, "message": f"OptimizationJob has failed: {reason}"})
    else:
        conditions.append({"type": "Complete", "status": "False", "reason": INTERRUPTED,
                           "message": "stopped before its end; continue it with raytune-k8s resume"})
    status: dict[str, Any] = {"conditions": conditions}
    best = summary.get("currentOptimalTrial")
    if best:
        status["result"] = {"trainJobName": best["bestTrialName"],
                            "parameters": [{"name": p["name"], "value": p["value"]} for p in best["parameterAssignments"]]}
    return status


def write_summary(experiment_dir: Path, summary: dict[str, Any]) -> Path:
    """``summary.json``, written as it is encoded: the text of 100,000 trials' rows is never
    held whole (with its bytes, twice the rows' own memory at the end of a run)."""
    from ..files import atomic_writer

    path = experiment_dir / SUMMARY_FILE
    with atomic_writer(path) as f:
        for chunk in json.JSONEncoder(indent=2).iterencode(summary):  # ASCII (ensure_ascii)
            f.write(chunk.encode())
    return path


def _error_line(trial_dir: Path, error_file: str | None) -> str | None:
    """The last line of the trial's error (its exception), from Tune's error file."""
    if not error_file:
        return "error (no error file)"
    try:
        text = (Path(trial_dir) / error_file).read_text().strip().splitlines()
    except OSError:
        return "error (no error file)"
    lines = [line for line in text if line.strip() and not line.startswith((" ", "Traceback", "\t"))]
    return lines[-1][:2000] if lines else None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
