"""Katib's median stopping rule, holding what the rule needs rather than the trials.

Tune's ``MedianStoppingRule`` keeps every result dict of every trial, keyed by the Trial
object, and at each result scans all of them: its memory grows with results, it keeps ended
trials alive (so they cannot leave Tune's controller, see :mod:`raytune_k8s._tune.retire`), and
a decision costs O(trials x steps). The rule itself needs less: at step ``t``, the running
averages (from ``grace_period`` up to ``t``) of the trials that reached ``t``, and the trial's
own best value. :class:`MedianStop` keeps, for each step, the sorted running averages of the
trials that reported it (one float each), and for each live trial, by id, its running sum and
best value; a decision is a lookup of a median. Its decisions are Tune's rule's for a time
attribute that counts up by one, as ``training_iteration`` does, with two differences: each
step counts once (Tune's rule counts a trial's last result again when it completes), and a NaN
value is never a trial's best (Tune's takes a first NaN as the best for good).
"""

from __future__ import annotations

import math
from array import array
from bisect import insort
from dataclasses import dataclass
from typing import Any, Iterable

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler


@dataclass
class _Running:
    """A live trial's share of the rule: its results since the grace period, its best value."""

    total: float = 0.0
    count: int = 0
    best: float | None = None
    last_pause: float = -math.inf


class MedianStop(FIFOScheduler):
    """Stops a trial whose best value by step ``t`` (``t >= grace_period``) is worse than the
    median of the running averages at ``t`` of at least ``min_samples_required`` other trials.
    With too few of them it yields to waiting trials (pauses) unless it ran less than
    ``min_time_slice`` since its last pause, as Tune's rule does."""

    #: The clock: it counts the results of a trial, one by one (see the module docstring).
    TIME_ATTR = "training_iteration"

    def __init__(self, metric: str | None = None, mode: str | None = None, grace_period: int = 1,
                 min_samples_required: int = 3, min_time_slice: int = 0):
        super().__init__()
        self._objective = metric
        self._direction = mode
        self._grace_period = grace_period
        self._min_samples_required = min_samples_required
        self._min_time_slice = min_time_slice
        self._means_at: dict[int, array] = {}  # step -> sorted running averages of the trials that reached it
        self._running: dict[str, _Running] = {}  # live trial id -> its running sum and best value
        self._stopped = 0

    @property
    def metric(self) -> str | None:
        return self._objective

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if (self._objective and metric) or (self._direction and mode):
            return False
        self._objective = metric or self._objective
        self._direction = mode or self._direction
        return True

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if not self._objective or self._direction not in ("min", "max"):
            raise ValueError(f"{type(self).__name__} needs a metric and a mode (min or max)")

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        time, value = result.get(self.TIME_ATTR), result.get(str(self._objective))
        if time is None or value is None:
            return TrialScheduler.CONTINUE
        value = float(value)
        running = self._running.setdefault(trial.trial_id, _Running())
        if not math.isnan(value):
            running.best = value if running.best is None else (max if self._direction == "max" else min)(running.best, value)
        if time < self._grace_period:
            return TrialScheduler.CONTINUE
        running.total += value
        running.count += 1
        others = self._means_at.get(time)
        decision = self._decide(tune_controller, trial, running, time, others)
        self._add_mean(time, running.total / running.count)
        return decision

    def _add_mean(self, time: int, mean: float) -> None:
        """A trial's running average at ``time``, for the trials that reach ``time`` later."""
        if math.isfinite(mean):
            means = self._means_at.get(time)
            if means is None:
                means = self._means_at[time] = array("d")
            insort(means, mean)

    def replay(self, events: Iterable[dict[str, Any]], metric: str) -> int:
        """Take the history of the trials that ended from an experiment's journal events
        (:func:`raytune_k8s.recovery.journal.read_journal`) and the objective's ``metric`` (a
        restored rule learns it from Tune only when the run starts): a resumed experiment
        compares its trials with every trial before it, not only with those since. Returns how
        many trials."""
        steps: dict[str, dict[int, float]] = {}  # a trial run again from a checkpoint reports a step again: the last wins
        ended = 0
        for event in events:
            kind, trial_id = event.get("event"), event.get("trial_id")
            if kind == "result":
                result = event.get("result") or {}
                time, value = result.get(self.TIME_ATTR), result.get(metric)
                if time is not None and value is not None:
                    steps.setdefault(str(trial_id), {})[int(time)] = float(value)
            elif kind in ("complete", "error") and str(trial_id) in steps:
                total, count = 0.0, 0
                for time, value in sorted(steps.pop(str(trial_id)).items()):
                    if time >= self._grace_period:
                        total, count = total + value, count + 1
                        self._add_mean(time, total / count)
                ended += 1
        return ended

    def _decide(self, tune_controller: Any, trial: Trial, running: _Running, time: int, others: array | None) -> str:
        if others is None or len(others) < self._min_samples_required:
            waiting = any(t.status in (Trial.PENDING, Trial.PAUSED) for t in tune_controller.get_live_trials())
            if waiting and time - running.last_pause > self._min_time_slice:
                running.last_pause = time
                return TrialScheduler.PAUSE
            return TrialScheduler.CONTINUE
        n = len(others)
        median = others[n // 2] if n % 2 else (others[n // 2 - 1] + others[n // 2]) / 2
        best = running.best
        worse = best is None or (best < median if self._direction == "max" else best > median)
        if worse:
            self._stopped += 1
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self._running.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._running.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._running.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return f"Using MedianStop: num_stopped={self._stopped}."
