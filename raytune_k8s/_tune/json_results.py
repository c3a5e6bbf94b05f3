"""Tune's JSON results logger, minus its one record per trial kept to the end of the run.

``JsonLoggerCallback`` writes each trial's ``result.json`` (what the summary and the report read)
and keeps every trial's config in a table keyed by the Trial for the whole run, which holds the
Trial objects, and so everything Tune kept of them, after :mod:`.retire` let them go.
"""

from __future__ import annotations

from typing import Any, Iterable

from ray.tune.logger import JsonLoggerCallback

from .internals import JSON_LOGGER_CONFIGS


class JsonResults(JsonLoggerCallback):
    """``JsonLoggerCallback`` that forgets retired trials (:meth:`forget_trials`)."""

    def forget_trials(self, trials: Iterable[Any]) -> None:
        configs = getattr(self, JSON_LOGGER_CONFIGS, None)
        if isinstance(configs, dict):
            for trial in trials:
                configs.pop(trial, None)
