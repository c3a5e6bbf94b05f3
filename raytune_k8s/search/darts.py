"""The ``darts`` algorithm's searcher: Katib's DARTS suggestion, which only hands out settings.

DARTS searches inside one trial, so the searcher has nothing to learn: every suggestion is the
same three trial parameters Katib's darts suggestion service makes, ``algorithm-settings`` (all
DARTS settings, defaults filled in, as single-quoted JSON), ``search-space`` (the candidate
operation names, likewise) and ``num-layers``. The ``darts`` trainable and ``run_trial`` read
them. Torch-free.
"""

from __future__ import annotations

import json
from typing import Any

from ..spec.settings import Settings
from .space import SearchSpace
from ..spec import Objective, SpecError
from .stateful import StatefulSearcher
from ..spec.nas import NasConfig, darts_search_space
from ..spec.nas_settings import DartsSettings


def trial_parameters(nas_config: NasConfig, settings: DartsSettings) -> dict[str, str]:
    """Katib's three DARTS trial parameters for this ``nasConfig`` and settings."""
    return {
        "algorithm-settings": json.dumps(settings.as_dict()).replace('"', "'"),
        "search-space": json.dumps(darts_search_space(nas_config)).replace('"', "'"),
        "num-layers": str(nas_config.graph.num_layers),
    }


class DartsSuggestion(StatefulSearcher):
    """Suggests Katib's DARTS trial parameters for every trial (stateless)."""

    def __init__(self, nas_config: NasConfig, metric: str, mode: str, settings: DartsSettings | None = None):
        super().__init__(metric=metric, mode=mode)
        self._parameters = trial_parameters(nas_config, settings or DartsSettings())

    def suggest(self, trial_id: str) -> dict[str, Any]:
        return dict(self._parameters)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    def get_state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass


def create_nas_searcher(nas_config: NasConfig, objective: Objective, settings: Settings) -> DartsSuggestion:
    """The DARTS searcher of an experiment; every operation must have only a ``filter_size``
    parameter (Katib's DARTS limit), or none for ``skip_connection``."""
    for i, op in enumerate(nas_config.operations):
        extra = [p.name for p in op.parameters if p.name != "filter_size"]
        if extra and op.type != "skip_connection":
            raise SpecError(f"nasConfig.operations[{i}].parameters", f"darts takes only filter_size, not {', '.join(extra)}")
    return DartsSuggestion(nas_config, objective.metric, objective.mode, DartsSettings.from_settings(settings))


def create(space: SearchSpace | None, objective: Objective, settings: Settings, nas_config: NasConfig | None = None) -> DartsSuggestion:
    """The registry's signature; DARTS searches ``nasConfig``, not ``parameters``."""
    if nas_config is None:
        raise SpecError("nasConfig", "algorithm darts searches an architecture: the experiment needs spec.nasConfig")
    return create_nas_searcher(nas_config, objective, settings)
