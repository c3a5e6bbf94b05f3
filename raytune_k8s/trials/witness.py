"""A trial that keeps its own log of what it reported, for checking that nothing is lost.

``witness`` is the synthetic learning curve (``accuracy`` climbs towards a ceiling highest at
``lr`` = 0.01), one report per step with a checkpoint, continuing from its last checkpoint when
restarted. Independently of Tune it appends to ``<log_dir>/<trial_id>.jsonl``: ``start`` (the
step it continues after), ``reported`` (just before each report), ``acked`` (when the report
returned: the driver has it) and ``done`` (its function returns). With ``die_after_step`` = k
its process exits the first time step k's report returns (before Tune has asked for that step's
checkpoint), as a trial killed at that moment would. Tests and
``benchmarks/chaos.py`` compare that log with what the experiment directory holds at the end.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any


def _log(path: Path, event: dict[str, Any]) -> None:
    with open(path, "a") as f:  # one write per line, appended: whole lines survive a SIGKILL
        f.write(json.dumps({**event, "t": time.time(), "pid": os.getpid()}) + "\n")


def witness(config: dict[str, Any]) -> None:
    from ray import tune

    from .checkpoints import latest_checkpoint, report_with_checkpoint

    log = Path(config["log_dir"]) / f"{tune.get_context().get_trial_id()}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with latest_checkpoint() as (_, state):
        done = int(state.get("step", 0))
    _log(log, {"event": "start", "after": done})
    quality = math.exp(-((math.log10(float(config["lr"])) + 2.0) ** 2))
    for step in range(done + 1, int(config.get("steps", 6)) + 1):
        time.sleep(float(config.get("sleep", 0.3)))
        _log(log, {"event": "reported", "step": step})
        report_with_checkpoint({"accuracy": quality * (1.0 - math.exp(-step / 2.0)), "step": step}, {"step": step},
                               lambda path: None)
        _log(log, {"event": "acked", "step": step})
        if step == config.get("die_after_step") and not (marker := log.with_suffix(".died")).exists():
            marker.touch()
            os._exit(1)
    _log(log, {"event": "done"})


def read_log(log_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """trial id -> its log events, in order."""
    out = {}
    for path in sorted(Path(log_dir).glob("*.jsonl")):
        out[path.stem] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def audit(log_dir: Path, experiment_dir: Path) -> dict[str, Any]:
    """Compare the trials' own logs with the experiment directory's final record (each trial's
    ``result.json``): ``lost_results`` (a reported step missing from the record),
    ``duplicate_results`` (a step recorded more than once), ``completed_trials_rerun`` (a trial
    that started again after its function had returned), with the trial ids of each."""
    logs = read_log(log_dir)
    recorded: dict[str, list[int]] = {}
    for path in Path(experiment_dir).glob("*/result.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if "step" in row:
                    recorded.setdefault(row["trial_id"], []).append(int(row["step"]))
    lost, duplicates, rerun = [], [], []
    for trial_id, events in logs.items():
        steps = recorded.get(trial_id, [])
        reported = {e["step"] for e in events if e["event"] == "reported"}
        lost += [(trial_id, s) for s in sorted(reported - set(steps))]
        duplicates += [(trial_id, s) for s in sorted(set(steps)) if steps.count(s) > 1]
        kinds = [e["event"] for e in events]
        if "done" in kinds and "start" in kinds[kinds.index("done"):]:
            rerun.append(trial_id)
    return {"lost_results": len(lost), "duplicate_results": len(duplicates), "completed_trials_rerun": len(rerun),
            "lost": lost, "duplicates": duplicates, "rerun": rerun,
            "reports_logged": sum(1 for ev in logs.values() for e in ev if e["event"] == "reported"),
            "results_recorded": sum(len(s) for s in recorded.values())}
