"""Random search: independent draws from each parameter's distribution."""

from __future__ import annotations

from typing import Any

import numpy as np

from .space import SearchSpace
from ..spec import Objective
from ..spec.settings import Settings
from .stateful import StatefulSearcher


class RandomSearcher(StatefulSearcher):
    """Samples every parameter independently with a seeded generator."""

    def __init__(self, space: SearchSpace, metric: str, mode: str, seed: int | None = None):
        super().__init__(metric=metric, mode=mode)
        self._space = space
        self._rng = np.random.default_rng(seed)

    def suggest(self, trial_id: str) -> dict[str, Any]:
        return self._space.sample(self._rng)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    def get_state(self) -> dict:
        return {"rng": self._rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]


def create(space: SearchSpace, objective: Objective, settings: Settings, targets: object = None) -> RandomSearcher:
    seed = settings.optional_integer("random_state")
    return RandomSearcher(space, objective.metric, objective.mode, seed)
