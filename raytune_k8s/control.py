"""Experiment-level stop rules Katib has and Tune lacks: the objective ``goal`` and
``maxFailedTrialCount``. One object is both a Tune Callback (it watches trials) and a Stopper
(Tune asks it every loop whether to stop everything)."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback, Stopper
from ray.tune.experiment import Trial

from .spec import Objective

GOAL_REACHED = "ExperimentGoalReached"
MAX_FAILED = "ExperimentMaxFailedTrialsReached"


class ExperimentControl(Callback, Stopper):
    """Stops the experiment once the goal is met or too many trials have failed.

    The counts are read off the trials once, at the first step (so they hold after a restore),
    then kept up from Tune's events: a step costs O(1), not O(trials).
    """

    def __init__(self, objective: Objective, max_failed_trials: int | None):
        self.objective = objective
        self.max_failed_trials = max_failed_trials
        self.reason: str | None = None
        self._failed: set[str] | None = None  # ids of failed trials, once read off the trials

    # ---- Callback

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self._failed is None:
            self._failed = {t.trial_id for t in trials if t.status == Trial.ERROR}
            self._check_failed()
            best = best_value(trials, self.objective)
            if not self.reason and best is not None and self.objective.reached(best):
                self.reason = GOAL_REACHED

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if self._failed is not None:
            self._failed.add(trial.trial_id)
        self._check_failed()

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        value = result.get(self.objective.metric)
        if not self.reason and isinstance(value, (int, float)) and self.objective.reached(float(value)):
            self.reason = GOAL_REACHED  # a text objective (DARTS' genotype) has no goal to reach

    def _check_failed(self) -> None:
        if self.reason or self._failed is None or self.max_failed_trials is None:
            return
        if len(self._failed) > self.max_failed_trials:
            self.reason = MAX_FAILED

    # ---- Stopper

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.reason is not None


def best_value(trials: list[Trial], objective: Objective) -> float | None:
    """The best objective value any trial has reported so far (Katib's max/min strategy)."""
    values = [
        t.metric_analysis[objective.metric][objective.mode]
        for t in trials
        if objective.metric in t.metric_analysis
    ]
    if not values:
        return None
    return max(values) if objective.mode == "max" else min(values)
