"""Which trials the early-stopping rule stopped, so they are reported as Katib's EarlyStopped.

Tune ends a stopped trial and a finished one alike (both TERMINATED). :class:`RecordingScheduler`
wraps the experiment's scheduler, passes every call through, and appends the id of each trial
it stops to ``early_stopped.txt`` in the experiment directory, which survives a resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.schedulers import TrialScheduler

RECORD_FILE = "early_stopped.txt"


class RecordingScheduler(TrialScheduler):
    """``inner`` with its STOP decisions recorded."""

    def __init__(self, inner: TrialScheduler, experiment_dir: Path, budget: int | None = None):
        self.inner = inner
        self.record = Path(experiment_dir) / RECORD_FILE
        self.budget = budget  # a stop at this many iterations is the end of the budget, not early

    # Tune's controller reads these two underscored attributes of its scheduler directly, so a
    # wrapper has to define them; they answer from the inner scheduler's public properties.
    @property
    def _metric(self) -> Any:  # type: ignore[override]
        return self.inner.metric

    @property
    def _supports_buffered_results(self) -> bool:  # type: ignore[override]
        return self.inner.supports_buffered_results

    @property
    def metric(self) -> Any:
        return self.inner.metric

    @property
    def supports_buffered_results(self) -> bool:
        return self.inner.supports_buffered_results

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = self.inner.on_trial_result(tune_controller, trial, result)
        at_budget = self.budget is not None and result.get("training_iteration", 0) >= self.budget
        if decision == TrialScheduler.STOP and not result.get("done") and not at_budget:
            with open(self.record, "a") as f:
                f.write(trial.trial_id + "\n")
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self.inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        return self.inner.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return self.inner.debug_string()

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)


def early_stopped_ids(experiment_dir: Path) -> set[str]:
    path = Path(experiment_dir) / RECORD_FILE
    return set(path.read_text().split()) if path.exists() else set()
