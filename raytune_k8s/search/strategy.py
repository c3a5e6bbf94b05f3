"""Katib's ``metricStrategies`` for the objective (and, with several objectives or constraints,
for each of their metrics), as the searcher sees it: a trial's result is the min, max or latest
of what it reported (Katib's default: the best, by the objective's type), not Tune's default of
its last report (by :func:`~raytune_k8s.spec.strategy.metric_value`, the
rule the summary, the goal stop, the progress line and the mirror use too). Wraps any Ray Tune
Searcher."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ray.tune.search import Searcher

from ..spec.strategy import metric_value


class ObjectiveStrategy(Searcher):
    """``inner`` told each finished trial's value of each metric of ``strategies`` by its
    strategy over all the trial's reports."""

    def __init__(self, inner: Searcher, strategies: Mapping[str, Literal["min", "max", "latest"]]):
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner, self.strategies = inner, dict(strategies)
        self._values: dict[str, dict[str, float]] = {}

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
        values = self._values.setdefault(trial_id, {})
        for metric, strategy in self.strategies.items():
            value = metric_value([result], metric, strategy, values.get(metric))
            if value is not None:
                values[metric] = value
        self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        values = self._values.pop(trial_id, None)
        if result is not None and values:
            result = {**result, **values}
        self.inner.on_trial_complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)
