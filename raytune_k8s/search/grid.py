"""Grid search: every combination of the parameters' values, in order, once."""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher

from .space import SearchSpace
from ..spec import Objective, SpecError
from ..spec.settings import Settings
from .stateful import StatefulSearcher


class GridSearcher(StatefulSearcher):
    """Walks the grid; reports FINISHED once every point has been handed out."""

    def __init__(self, space: SearchSpace, metric: str, mode: str):
        super().__init__(metric=metric, mode=mode)
        self._points = list(space.grid())
        self._next = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str:  # type: ignore[override]  # Ray's Searcher.suggest leaves out its own FINISHED (a str)
        if self._next >= len(self._points):
            return Searcher.FINISHED
        point = self._points[self._next]
        self._next += 1
        return dict(point)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    def get_state(self) -> dict:
        return {"next": self._next}

    def set_state(self, state: dict) -> None:
        self._next = state["next"]


def create(space: SearchSpace, objective: Objective, settings: Settings, targets: object = None) -> GridSearcher:
    for i, dim in enumerate(space):
        if dim.kind == "double" and not dim.step:
            raise SpecError(f"parameters[{i}].feasibleSpace.step", "grid search needs a step for double parameters")
    return GridSearcher(space, objective.metric, objective.mode)
