"""Katib's ``metricStrategies`` for the objective, as the searcher sees it: a trial's result is
the min, max or latest of what it reported (Katib's default: the best, by the objective's type),
not Tune's default of its last report (by :func:`~raytune_k8s.spec.strategy.metric_value`, the
rule the summary, the goal stop, the progress line and the mirror use too). Wraps any Ray Tune
Searcher."""

from __future__ import annotations

from typing import Any, Literal

from ray.tune.search import Searcher

from ..spec.strategy import metric_value


class ObjectiveStrategy(Searcher):
    """``inner`` told each finished trial's objective by ``strategy`` over all its reports."""

    def __init__(self, inner: Searcher, metric: str, strategy: Literal["min", "max", "latest"]):
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner, self.objective_metric, self.strategy = inner, metric, strategy
        self._values: dict[str, float] = {}

    @property
    def metric(self) -> Any:
        return self.inner.metric

    @property
    def mode(self) -> Any:
        return self.inner.mode

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.inner.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict | str | None:  # type: ignore[override]  # Ray's Searcher.suggest leaves out its own FINISHED (a str)
        return self.inner.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = metric_value([result], self.objective_metric, self.strategy, self._values.get(trial_id))
        if value is not None:
            self._values[trial_id] = value
        self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        value = self._values.pop(trial_id, None)
        if result is not None and value is not None:
            result = {**result, self.objective_metric: value}
        self.inner.on_trial_complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)
