"""Early-stopping rules (Katib ``earlyStopping``) as Ray Tune trial schedulers.

Each keeps what its rule needs by trial id, never Tune's Trial objects, so finished trials can
leave Tune's controller (:mod:`raytune_k8s._tune.retire`): ``medianstop`` is :class:`.MedianStop`,
``asha`` and ``hyperband`` Tune's ``AsyncHyperBandScheduler`` (its rungs hold trial ids)."""

from __future__ import annotations

from typing import Callable

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from ..spec.settings import Settings
from ..spec import EarlyStopping, SpecError
from .median import MedianStop

_FIELD = "earlyStopping.algorithmSettings"
DEFAULT_MAX_T = 100


def _median_stop(settings: Settings) -> TrialScheduler:
    # Katib's names: a trial is stopped once it has run start_step steps and its best result is
    # worse than the median of the running averages of min_trials_required other trials.
    return MedianStop(
        grace_period=settings.integer("start_step", 4, minimum=1),
        min_samples_required=settings.integer("min_trials_required", 3, minimum=1),
    )


def _asha(settings: Settings, brackets: int = 1) -> TrialScheduler:
    return AsyncHyperBandScheduler(
        time_attr="training_iteration",
        max_t=settings.integer("max_t", DEFAULT_MAX_T, minimum=1),
        grace_period=settings.integer("grace_period", 1, minimum=1),
        reduction_factor=settings.number("reduction_factor", 3, low=1.01),
        brackets=settings.integer("brackets", brackets, minimum=1),
    )


def _hyperband(settings: Settings) -> TrialScheduler:
    # Asynchronous Hyperband: ASHA looping over several brackets (Li et al., ASHA paper, sec. 3).
    return _asha(settings, brackets=3)


#: Katib early-stopping name -> scheduler factory.
RULES: dict[str, Callable[[Settings], TrialScheduler]] = {
    "medianstop": _median_stop,
    "asha": _asha,
    "hyperband": _hyperband,
}


def create_scheduler(early_stopping: EarlyStopping | None) -> TrialScheduler | None:
    """The scheduler for an experiment's early-stopping rule, or None for plain FIFO."""
    if early_stopping is None:
        return None
    factory = RULES.get(early_stopping.name)
    if factory is None:
        raise SpecError(
            "earlyStopping.algorithmName",
            f"unknown early-stopping rule {early_stopping.name!r}; choose one of {', '.join(RULES)}",
        )
    settings = Settings(early_stopping.settings, _FIELD)
    scheduler = factory(settings)
    settings.reject_unused()
    return scheduler


def rule_budget(early_stopping: EarlyStopping | None) -> int | None:
    """The iterations a trial may run under an ASHA/Hyperband rule (its ``max_t``): a stop there
    is the end of the budget, not an early stop. None for rules without one."""
    if early_stopping is None or early_stopping.name not in ("asha", "hyperband"):
        return None
    return int(float(early_stopping.settings_dict().get("max_t", DEFAULT_MAX_T)))
