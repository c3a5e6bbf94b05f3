"""``gp``: Optuna's Gaussian-process sampler (log expected improvement; for several objectives,
log expected hypervolume improvement; constraints through their own GPs).

Settings (Optuna's names and defaults): ``n_startup_trials`` (10 random trials first),
``deterministic_objective`` (false: the objective is noisy, as a trained model's accuracy is),
``random_state``. Katib's ``bayesianoptimization`` (scikit-optimize's) stays as it was.
"""

from __future__ import annotations

import warnings

import optuna

from .optuna_samplers import OptunaSearcher
from .space import SearchSpace
from ..spec import Objective
from ..spec.objectives import Targets
from ..spec.settings import Settings


def create(space: SearchSpace, objective: Objective, settings: Settings, targets: Targets | None = None) -> OptunaSearcher:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.GPSampler(
            seed=settings.optional_integer("random_state"),
            n_startup_trials=settings.integer("n_startup_trials", 10, minimum=0),
            deterministic_objective=settings.choice("deterministic_objective", "false", ["true", "false"]) == "true",
            warn_independent_sampling=False,
        )
    return OptunaSearcher(space, objective.metric, objective.mode, sampler, targets)
