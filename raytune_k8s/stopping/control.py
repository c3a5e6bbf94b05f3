"""Experiment-level stop rules Katib has and Tune lacks: the objective ``goal`` and
``maxFailedTrialCount``. One object is both a Tune Callback (it watches trials) and a Stopper
(Tune asks it every loop whether to stop everything)."""

from __future__ import annotations

from typing import Any, Iterable

from ray.tune import Callback, Stopper
from ray.tune.experiment import Trial

from ..spec import Objective, metric_value

GOAL_REACHED = "ExperimentGoalReached"
MAX_FAILED = "ExperimentMaxFailedTrialsReached"


class ExperimentControl(Callback, Stopper):
    """Stops the experiment once the goal is met or too many trials have failed.

    The goal is met when a trial's value, by the objective's metric strategy (Katib's
    ``metricStrategies``, :func:`~raytune_k8s.spec.metric_value`: what the summary reads too),
    meets it: with ``latest`` a trial's later report can take that back before Tune stops.
    The counts and values are read off the trials once, at the first step (so they hold after a
    restore; with :meth:`add_retired` for those Tune no longer holds), then kept up from Tune's
    events: a step costs O(1), not O(trials), and a value is held only while its trial runs.
    """

    def __init__(self, objective: Objective, max_failed_trials: int | None):
        self.objective = objective
        self.max_failed_trials = max_failed_trials
        self.reason: str | None = None
        self._failed: set[str] | None = None  # ids of failed trials, once read off the trials
        self._values: dict[str, float] = {}  # each trial's objective value by its strategy
        self._at_goal: set[str] = set()  # the trials whose value meets the goal
        self._retired_failed: set[str] = set()  # failed trials Tune no longer holds (a resumed run)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # tuner.pkl of an experiment started before the values were kept: none yet
        self.__dict__.update({"_values": {}, "_at_goal": set(), "_retired_failed": set(), **state})

    # ---- Callback

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self._failed is None:
            self._failed = {t.trial_id for t in trials if t.status == Trial.ERROR} | self._retired_failed
            self._check_failed()
            for t in trials:  # a restored run: each trial's value over the reports it made before
                self._update(t.trial_id, restored_value(t.metric_analysis, self.objective))
                if t.status in (Trial.TERMINATED, Trial.ERROR):
                    self._values.pop(t.trial_id, None)

    def add_retired(self, records: Iterable[dict[str, Any]]) -> None:
        """A resumed run: count the trials retired from Tune's controller before (records of
        ``raytune_k8s._tune.retire``), which Tune no longer holds to show at the first step."""
        failed: set[str] = set()
        for record in records:
            if record.get("tune_status") == Trial.ERROR:
                failed.add(str(record["trial_id"]))
            self._update(str(record["trial_id"]), restored_value(record.get("metric_analysis") or {}, self.objective))
            self._values.pop(str(record["trial_id"]), None)
        self._retired_failed = failed

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._values.pop(trial.trial_id, None)  # its value is final: whether it met the goal is kept

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._values.pop(trial.trial_id, None)
        if self._failed is not None:
            self._failed.add(trial.trial_id)
        self._check_failed()

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        strategy = self.objective.strategy(self.objective.metric)
        # A text objective (DARTS' genotype) has no value, so no goal to reach.
        self._update(trial.trial_id, metric_value([result], self.objective.metric, strategy, self._values.get(trial.trial_id)))

    def _update(self, trial_id: str, value: float | None) -> None:
        if value is None:
            return
        self._values[trial_id] = value
        if self.objective.reached(value):
            self._at_goal.add(trial_id)
        else:
            self._at_goal.discard(trial_id)
        if self.reason in (None, GOAL_REACHED):
            self.reason = GOAL_REACHED if self._at_goal else None
            self._check_failed()

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


def restored_value(metric_analysis: dict[str, Any], objective: Objective) -> float | None:
    """A trial's objective value by its strategy over the reports Tune kept account of (a
    restored trial's ``metric_analysis``): Tune's running min, max and last of them, in that
    order, folded by the same rule (the min of min, max, last is the min; their max the max;
    the last the last)."""
    seen = metric_analysis.get(objective.metric)
    if not seen:
        return None
    reports = [{objective.metric: seen.get(key)} for key in ("min", "max", "last")]
    return metric_value(reports, objective.metric, objective.strategy(objective.metric))
