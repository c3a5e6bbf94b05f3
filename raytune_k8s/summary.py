"""What an experiment produced: the summary dict, ``summary.json`` and the trials table.

Built from the experiment directory Tune wrote (``ExperimentAnalysis``), so the same code reads
a finished, a failed and an interrupted experiment.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ray.tune import ExperimentAnalysis
from ray.tune.experiment import Trial

from .spec import ExperimentSpec

SUMMARY_FILE = "summary.json"
SPEC_FILE = "experiment.yaml"

SUCCEEDED, FAILED, INTERRUPTED = "Succeeded", "Failed", "Interrupted"


def trial_rows(experiment_dir: Path, spec: ExperimentSpec) -> list[dict[str, Any]]:
    """One row per trial: id, status, params, best objective, metrics at that point, error."""
    analysis = ExperimentAnalysis(str(experiment_dir))
    metric, mode = spec.objective.metric, spec.objective.mode
    names = [metric, *spec.objective.additional_metrics]
    rows = []
    for trial in analysis.trials:
        df = analysis.trial_dataframes.get(trial.trial_id)
        best_metrics: dict[str, Any] = {}
        objective = None
        if df is not None and metric in df and df[metric].notna().any():
            best = df.loc[df[metric].idxmax() if mode == "max" else df[metric].idxmin()]
            objective = float(best[metric])
            best_metrics = {n: _plain(best[n]) for n in names if n in best and _plain(best[n]) is not None}
        rows.append(
            {
                "trial_id": trial.trial_id,
                "status": _status(trial),
                "params": {k: _plain(v) for k, v in trial.config.items()},
                "objective": objective,
                "metrics": best_metrics,
                "iterations": int(trial.last_result.get("training_iteration", 0) or 0),
                "error": _error_line(trial),
            }
        )
    return sort_best_first(rows, mode)


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
    completed = [r for r in rows if r["status"] == "Succeeded"]
    failed = [r for r in rows if r["status"] == "Failed"]
    unfinished = [r for r in rows if r["status"] not in ("Succeeded", "Failed")]
    scored = [r for r in rows if r["objective"] is not None]
    best = scored[0] if scored else None
    # The reasons are read off the trials, so they hold for resumed experiments too.
    if len(failed) > spec.max_failed_trials:
        status, stop_reason = FAILED, "MaxFailedTrialsReached"
    elif best is not None and spec.objective.reached(best["objective"]):
        status, stop_reason = SUCCEEDED, "GoalReached"
    elif unfinished or (interrupted and len(rows) < spec.max_trials):
        status, stop_reason = INTERRUPTED, "Interrupted"
    elif not completed:
        status, stop_reason = FAILED, "NoTrialSucceeded"
    else:
        status = SUCCEEDED
        stop_reason = "MaxTrialsReached" if len(rows) >= spec.max_trials else "SearchSpaceExhausted"
    return {
        "name": spec.name,
        "status": status,
        "reason": stop_reason,
        "objective": {"metric": spec.objective.metric, "type": spec.objective.type, "goal": spec.objective.goal},
        "best": None if best is None else {"trial_id": best["trial_id"], "params": best["params"], "metrics": best["metrics"]},
        "trials": len(completed),
        "failed": len(failed),
        "failed_trials": [{"trial_id": r["trial_id"], "params": r["params"], "error": r["error"]} for r in failed],
        "wall_s": round(wall_s, 3),
        "experiment_dir": str(experiment_dir),
        "trial_table": rows,
    }


def write_summary(experiment_dir: Path, summary: dict[str, Any]) -> Path:
    path = experiment_dir / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(path)
    return path


def _status(trial: Trial) -> str:
    if trial.status == Trial.ERROR:
        return "Failed"
    if trial.status == Trial.TERMINATED:
        return "Succeeded"
    return trial.status.capitalize()


def _error_line(trial: Trial) -> str | None:
    filename = trial.run_metadata.error_filename
    if trial.status != Trial.ERROR or not filename:
        return None
    try:
        text = (Path(trial.storage.trial_fs_path) / filename).read_text().strip().splitlines()
    except OSError:
        return "error (no error file)"
    lines = [line for line in text if line.strip() and not line.startswith((" ", "Traceback", "\t"))]
    return lines[-1][:500] if lines else None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
