"""An experiment directory read back without Ray: the spec, ``summary.json`` and every trial's
parameters, status, objective history, run time and worker node.

Tune's view of each trial comes from :mod:`raytune_k8s.results.tune_state`, its reports from each
trial directory's ``result.json`` (one JSON line per report).
``summary.json`` (ours) adds Katib's status words and the experiment's status and reason; all of
its fields are read defensively, since older and newer summaries differ.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..spec import ExperimentSpec, SpecError, parse_spec

SUMMARY_FILE = "summary.json"
SPEC_FILE = "experiment.yaml"
RESULT_FILE = "result.json"

#: Tune's trial states in Katib's words, for trials that summary.json does not list.
_TUNE_STATUS = {"TERMINATED": "Succeeded", "ERROR": "Failed", "RUNNING": "Running", "PENDING": "Pending", "PAUSED": "Pending"}


@dataclass
class TrialRecord:
    """One trial as the report needs it."""

    trial_id: str
    status: str
    params: dict[str, Any]
    objective: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    iterations: int = 0
    error: str | None = None
    #: (training_iteration, objective metric) for every report that carried the metric.
    history: list[tuple[int, float]] = field(default_factory=list)
    start: float | None = None  # unix seconds
    end: float | None = None
    hostname: str | None = None
    node_ip: str | None = None
    pid: int | None = None

    @property
    def node(self) -> str:
        """The worker node: its hostname (a pod's name on KubeRay) and IP."""
        if self.hostname and self.node_ip:
            return f"{self.hostname} ({self.node_ip})"
        return self.hostname or self.node_ip or "unknown node"


@dataclass
class ExperimentRecord:
    """A whole experiment: what the spec asked, what ``summary.json`` says, and its trials."""

    path: Path
    name: str
    metric: str | None
    mode: str  # "min" or "max"
    spec: ExperimentSpec | None
    spec_text: str | None
    summary: dict[str, Any]
    trials: list[TrialRecord]

    @property
    def started(self) -> float | None:
        starts = [t.start for t in self.trials if t.start is not None]
        return min(starts) if starts else None


def load_experiment(experiment_dir: str | os.PathLike[str]) -> ExperimentRecord:
    """Read an experiment directory; raise :class:`SpecError` if it holds no experiment."""
    path = Path(experiment_dir).expanduser().resolve()
    if not path.is_dir():
        raise SpecError("", f"{path} is not a directory")
    summary = _read_json(path / SUMMARY_FILE) or {}
    spec, spec_text = _read_spec(path / SPEC_FILE)
    objective = o if isinstance(o := summary.get("objective"), dict) else {}
    metric = objective.get("metric") or (spec.objective.metric if spec else None)
    kind = objective.get("type") or (spec.objective.type if spec else "minimize")
    mode = "max" if str(kind).lower().startswith("max") else "min"
    rows = {str(r.get("trial_id")): r for r in summary.get("trial_table") or [] if isinstance(r, dict)}
    trials = [_trial(entry, rows.pop(entry["trial_id"], None), metric, mode) for entry in _tune_trials(path)]
    trials += [_trial({"trial_id": tid}, row, metric, mode) for tid, row in rows.items()]  # listed, no files
    if not trials and not summary and spec is None:
        raise SpecError("", f"{path} holds no experiment (no {SUMMARY_FILE}, {SPEC_FILE} or trial results)")
    if spec is not None and spec.early_stopping is not None:
        _mark_early_stopped(trials)
    name = summary.get("name") or (spec.name if spec else path.name)
    return ExperimentRecord(path, str(name), metric, mode, spec, spec_text, summary, trials)


def _mark_early_stopped(trials: list[TrialRecord]) -> None:
    """For summaries that predate Katib's EarlyStopped status (Tune marks every stopped trial
    finished): under an early-stopping rule, a Succeeded trial that ran fewer iterations than
    the longest Succeeded trial was stopped early."""
    if any(t.status == "EarlyStopped" for t in trials):
        return
    finished = [t for t in trials if t.status == "Succeeded"]
    longest = max((t.iterations for t in finished), default=0)
    for t in finished:
        if t.iterations < longest:
            t.status = "EarlyStopped"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_spec(path: Path) -> tuple[ExperimentSpec | None, str | None]:
    try:
        text = path.read_text()
    except OSError:
        return None, None
    try:
        return parse_spec(text), text
    except SpecError:
        return None, text  # a spec this version cannot read: shown as text, types guessed


def _tune_trials(path: Path) -> Iterator[dict[str, Any]]:
    """Tune's view of each trial (its newest saved state), then the trial directories it misses."""
    from ..results.tune_state import saved_trials

    seen: set[Path] = set()
    for trial in saved_trials(path):
        seen.add(trial["dir"])
        yield trial
    # the folders first, by name: a result file is looked for only where Tune's view has no trial
    # (a glob of */result.json looked in all 100,000 of them)
    unseen = sorted(entry.name for entry in os.scandir(path) if entry.is_dir() and path / entry.name not in seen)
    for name in unseen:
        if (path / name / RESULT_FILE).is_file():
            params = _read_json(path / name / "params.json")
            yield {"trial_id": "", "config": params if isinstance(params, dict) else {}, "dir": path / name}


def _results(trial_dir: Path | None) -> list[dict[str, Any]]:
    from ..results.summary import read_reports

    return [] if trial_dir is None else read_reports(trial_dir)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def _trial(entry: dict[str, Any], row: dict[str, Any] | None, metric: str | None, mode: str) -> TrialRecord:
    results = _results(entry.get("dir"))
    last = results[-1] if results else {}
    history = []
    for i, r in enumerate(results, 1):
        value = _number(r.get(metric)) if metric else None
        if value is not None:
            history.append((int(r.get("training_iteration") or i), value))
    trial_id = entry.get("trial_id") or str(last.get("trial_id") or (entry.get("dir") or Path("?")).name)
    row = row or {}
    objective = _number(row.get("objective"))
    if objective is None and not row and history:
        values = [v for _, v in history]
        objective = max(values) if mode == "max" else min(values)
    status = row.get("status") or _TUNE_STATUS.get(str(entry.get("tune_status")), "Unknown")
    if status == "Succeeded" and objective is None and not row:
        status = "MetricsUnavailable"
    end = _number(entry.get("end"))
    total = _number(last.get("time_total_s"))
    start = _number(entry.get("start"))
    if end is None and last:
        end = _number(last.get("timestamp"))
    if start is None and end is not None and total is not None:
        start = end - total
    if start is not None and end is None and total is not None:
        end = start + total
    params = p if isinstance(p := row.get("params"), dict) else entry.get("config") or last.get("config") or {}
    pid = last.get("pid")
    return TrialRecord(
        trial_id=str(trial_id),
        status=str(status),
        params=dict(params),
        objective=objective,
        metrics=m if isinstance(m := row.get("metrics"), dict) else {},
        iterations=int(row.get("iterations") or last.get("training_iteration") or 0),
        error=row.get("error") or (f"see {entry['error']}" if entry.get("error") else None),
        history=history,
        start=start,
        end=end,
        hostname=last.get("hostname"),
        node_ip=last.get("node_ip"),
        pid=pid if isinstance(pid, int) else None,
    )
