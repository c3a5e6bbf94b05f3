"""A Tune scheduler that passes every call through to another one.

Tune reads two underscored attributes of a scheduler directly (``TrialScheduler``'s class
attributes ``_metric`` and ``_supports_buffered_results``; e.g. a ``ResourceChangingScheduler``
asks its base scheduler for ``_metric``), so a wrapper has to define them; here they answer from
the inner scheduler's public properties. Subclasses override the calls they watch
(:class:`raytune_k8s.stopping.record.RecordingScheduler`).
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import TrialScheduler


class SchedulerWrapper(TrialScheduler):
    """``inner``, every call passed through."""

    def __init__(self, inner: TrialScheduler):
        self.inner = inner

    @property
    def _metric(self) -> Any:  # type: ignore[override]  # a class attribute in Tune, a property here
        return self.inner.metric

    @property
    def _supports_buffered_results(self) -> bool:  # type: ignore[override]  # a class attribute in Tune, a property here
        return self.inner.supports_buffered_results

    @property
    def metric(self) -> Any:
        return self.inner.metric

    @property
    def supports_buffered_results(self) -> bool:
        return self.inner.supports_buffered_results

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self.inner.on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self.inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        return self.inner.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return self.inner.debug_string()

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)
