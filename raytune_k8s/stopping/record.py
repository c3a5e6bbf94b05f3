"""Which trials the early-stopping rule stopped, so they are reported as Katib's EarlyStopped.

Tune ends a stopped trial and a finished one alike (both TERMINATED). :class:`RecordingScheduler`
wraps the experiment's scheduler, passes every call through, and appends the id of each trial
it stops to ``early_stopped.txt`` in the experiment directory, which survives a resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.schedulers import TrialScheduler

from .._tune.retire import Retirement
from .._tune.scheduler_wrapper import SchedulerWrapper

RECORD_FILE = "early_stopped.txt"


class RecordingScheduler(SchedulerWrapper):
    """``inner`` with its STOP decisions recorded (every other call passes through); given a
    :class:`~raytune_k8s._tune.retire.Retirement`, Tune's controller drops finished trials first
    when it asks for the next trial to run (``inner`` must not hold Tune's Trial objects)."""

    def __init__(self, inner: TrialScheduler, experiment_dir: Path, budget: int | None = None,
                 retirement: Retirement | None = None):
        super().__init__(inner)
        self.record = Path(experiment_dir) / RECORD_FILE
        self.budget = budget  # a stop at this many iterations is the end of the budget, not early
        self.retirement = retirement

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        if self.retirement is not None:
            self.retirement.maybe_retire(tune_controller)
        return self.inner.choose_trial_to_run(tune_controller)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = self.inner.on_trial_result(tune_controller, trial, result)
        at_budget = self.budget is not None and result.get("training_iteration", 0) >= self.budget
        if decision == TrialScheduler.STOP and not result.get("done") and not at_budget:
            with open(self.record, "a") as f:
                f.write(trial.trial_id + "\n")
        return decision


def early_stopped_ids(experiment_dir: Path) -> set[str]:
    path = Path(experiment_dir) / RECORD_FILE
    return set(path.read_text().split()) if path.exists() else set()
