"""One line of live progress per finished trial: running/done/failed and the best so far."""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial
from rich.console import Console

from .control import best_value
from .spec import Objective


class ProgressLine(Callback):
    """Prints ``[12s] 4/12 done | 3 running | 0 failed | best Validation-accuracy=0.91``."""

    def __init__(self, objective: Objective, max_trials: int | None):
        self.objective = objective
        self.max_trials = max_trials
        self._start = time.monotonic()

    def _print(self, trials: list[Trial], event: str) -> None:
        count = lambda status: sum(t.status == status for t in trials)  # noqa: E731
        best = best_value(trials, self.objective)
        best_text = f"{self.objective.metric}={best:.4g}" if best is not None else "-"
        line = (
            f"[{time.monotonic() - self._start:6.1f}s] {event:<34} "
            f"{count(Trial.TERMINATED)}/{self.max_trials or '-'} done | {count(Trial.RUNNING)} running | "
            f"{count(Trial.ERROR)} failed | best {best_text}"
        )
        Console(stderr=True, highlight=False).print(line)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._print(trials, f"trial {trial.trial_id} done")

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._print(trials, f"trial {trial.trial_id} FAILED")
