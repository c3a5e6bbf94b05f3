"""Live progress: a line when trials finish (at most one a second) and at every failure,
with running/done/failed and the best so far (with several objectives: the Pareto front's size
and hypervolume)."""

from __future__ import annotations

import time
from typing import Any, Iterable

from ray.tune import Callback
from ray.tune.experiment import Trial
from rich.console import Console

from ..spec import Objective, metric_value
from ..spec.objectives import Targets

#: Finished trials print at most one line per this many seconds (failures always print).
MIN_INTERVAL_S = 1.0


class ProgressLine(Callback):
    """Prints ``[12s] trial 1a2b done  4/12 done | 3 running | 0 failed | best Validation-accuracy=0.91``.

    Counts and the best value are kept up from Tune's events (O(1) per trial), so thousands
    of trials cost no more per trial than ten. The best is the best trial's value by the
    objective's metric strategy (:func:`~raytune_k8s.spec.metric_value`), as in the summary: with
    ``latest`` a trial's value can get worse, and only then are the trials' values looked over.
    """

    def __init__(self, objective: Objective, max_trials: int | None, min_interval_s: float = MIN_INTERVAL_S,
                 targets: Targets | None = None):
        self.objective = objective
        self.targets = targets if targets is not None and targets.several else None
        self._metrics: dict[str, dict[str, float]] = {}  # several objectives: each trial's values by strategy
        self._finished: list = []  # several objectives: the finished trials, scored
        self.max_trials = max_trials
        self.min_interval_s = min_interval_s
        self._start = time.monotonic()
        self._last_print = float("-inf")
        self._done = 0
        self._failed = 0
        self._running: set[str] = set()
        self._values: dict[str, float] = {}  # each running trial's objective value by its strategy
        self._best: float | None = None
        self._best_trial: str | None = None
        self._best_finished: tuple[float, str] | None = None  # the best value of a finished trial
        self._counted_restored = False

    def _print(self, event: str) -> None:
        self._last_print = time.monotonic()
        best_text = f"{self.objective.metric}={self._best:.4g}" if self._best is not None else "-"
        if self.targets is not None:
            best_text = self._front_text(self.targets)
        # soft_wrap: one line per event even where the terminal width is unknown (a pipe, a job's log)
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[{self._last_print - self._start:6.1f}s] {event:<34} "
            f"{self._done}/{self.max_trials or '-'} done | {len(self._running)} running | "
            f"{self._failed} failed | {'' if self.targets else 'best '}{best_text}"
        )

    def _front_text(self, targets: Targets) -> str:
        from ..results.pareto import front, hypervolume, reference_point

        feasible = [t for t in self._finished if t.feasible and t.values is not None]
        if not feasible:
            return "front: no feasible trial yet"
        on_front = set(front(feasible, targets))
        points = [t.values for t in feasible if t.key in on_front]
        volume = hypervolume(points, reference_point([t.values for t in feasible], targets.directions), targets.directions)
        return f"front {len(points)} trials, hypervolume {volume:.4g}"

    def __setstate__(self, state: dict[str, Any]) -> None:
        # tuner.pkl of an experiment started when the done and failed trials were sets of ids
        state = {"_best_finished": None, "_counted_restored": False, **state}
        for name in ("_done", "_failed"):
            if isinstance(state.get(name), set):
                state[name] = len(state[name])
        self.__dict__.update(state)

    def add_retired(self, records: Iterable[dict[str, Any]]) -> None:
        """A resumed run: count the trials retired from Tune's controller before (records of
        ``raytune_k8s._tune.retire``), and their best value."""
        for record in records:
            failed = record.get("tune_status") == Trial.ERROR
            self._done += not failed
            self._failed += failed
            seen = (record.get("metric_analysis") or {}).get(self.objective.metric) or {}
            reports = [{self.objective.metric: seen.get(key)} for key in ("min", "max", "last")]
            self._finish(str(record["trial_id"]), metric_value(reports, self.objective.metric,
                                                               self.objective.strategy(self.objective.metric)))

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self._counted_restored:
            return
        self._counted_restored = True  # a resumed run's first step: the trials that ended before
        for trial in trials:
            if trial.status in (Trial.TERMINATED, Trial.ERROR):
                self._done += trial.status == Trial.TERMINATED
                self._failed += trial.status == Trial.ERROR

    def _finish(self, trial_id: str, value: float | None) -> None:
        """The trial ended with ``value``: it leaves the running ones, its value is final."""
        self._running.discard(trial_id)
        self._values.pop(trial_id, None)
        if value is not None and (self._best_finished is None or self.objective.better(value, self._best_finished[0])):
            self._best_finished = (value, trial_id)
        if value is not None and (self._best is None or self.objective.better(value, self._best)):
            self._best, self._best_trial = value, trial_id

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._running.add(trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        trial_id = trial.trial_id
        if self.targets is not None:
            values = self._metrics.setdefault(trial_id, {})
            for metric in [*self.targets.metrics, *(c.metric for c in self.targets.constraints)]:
                value = metric_value([result], metric, self.objective.strategy(metric), values.get(metric))
                if value is not None:
                    values[metric] = value
        strategy = self.objective.strategy(self.objective.metric)
        value = metric_value([result], self.objective.metric, strategy, self._values.get(trial_id))
        if value is None:
            return
        self._values[trial_id] = value
        if self._best is None or self.objective.better(value, self._best):
            self._best, self._best_trial = value, trial_id
        elif trial_id == self._best_trial and value != self._best:  # the best trial (running) got worse
            candidates = [(v, t) for t, v in self._values.items()] + ([self._best_finished] if self._best_finished else [])
            pick = max if self.objective.mode == "max" else min
            self._best, self._best_trial = pick(candidates, key=lambda c: c[0])

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._finish(trial.trial_id, self._values.get(trial.trial_id))
        self._done += 1
        if self.targets is not None:
            from ..results.pareto import scored

            self._finished.append(scored(trial.trial_id, self._metrics.pop(trial.trial_id, {}), self.targets))
        last = self.max_trials is not None and self._done + self._failed >= self.max_trials
        if last or time.monotonic() - self._last_print >= self.min_interval_s:
            self._print(f"trial {trial.trial_id} done")

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._finish(trial.trial_id, self._values.get(trial.trial_id))
        self._failed += 1
        self._print(f"trial {trial.trial_id} FAILED")
        error = trial_error_line(trial)
        if error:
            Console(stderr=True, highlight=False, soft_wrap=True).print(f"  error: {error}", markup=False)


def trial_error_line(trial: Trial) -> str:
    """The last line of a failed trial's error (the exception, or a dead worker's last words),
    with where its whole traceback is; "" when Tune recorded none."""
    path = trial.error_file
    if not path:
        return ""
    try:
        lines = [line.strip() for line in open(path, encoding="utf-8", errors="replace") if line.strip()]
    except OSError:
        return ""
    return f"{lines[-1]} (traceback: {path})" if lines else ""
