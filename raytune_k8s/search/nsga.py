"""``nsga2`` and ``nsga3``: Optuna's genetic samplers for several objectives (NSGA-II, Deb et al.
2002; NSGA-III, Deb and Jain 2014, for three objectives and more), with constraints.

Settings (Optuna's names and defaults): ``population_size`` (50), ``mutation_prob`` (1 over the
number of parameters when not given), ``crossover_prob`` (0.9), ``swapping_prob`` (0.5),
``random_state``; ``nsga3`` also ``dividing_parameter`` (3: the reference points' density).
They take one objective too.
"""

from __future__ import annotations

import warnings

import optuna

from .optuna_samplers import OptunaSearcher
from .space import SearchSpace
from ..spec import Objective
from ..spec.objectives import Targets
from ..spec.settings import Settings


def _common(settings: Settings) -> dict:
    mutation_prob = settings.number("mutation_prob", 0.0, 0.0, 1.0) if "mutation_prob" in settings else None
    return dict(
        population_size=settings.integer("population_size", 50, minimum=2),
        mutation_prob=mutation_prob,
        crossover_prob=settings.number("crossover_prob", 0.9, 0.0, 1.0),
        swapping_prob=settings.number("swapping_prob", 0.5, 0.0, 1.0),
        seed=settings.optional_integer("random_state"),
    )


def create_nsga2(space: SearchSpace, objective: Objective, settings: Settings, targets: Targets | None = None) -> OptunaSearcher:
    sampler = optuna.samplers.NSGAIISampler(**_common(settings))
    return OptunaSearcher(space, objective.metric, objective.mode, sampler, targets)


def create_nsga3(space: SearchSpace, objective: Objective, settings: Settings, targets: Targets | None = None) -> OptunaSearcher:
    common = _common(settings)
    with warnings.catch_warnings():  # experimental since Optuna 3.2: our tests pin its behaviour
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.NSGAIIISampler(dividing_parameter=settings.integer("dividing_parameter", 3, minimum=1), **common)
    return OptunaSearcher(space, objective.metric, objective.mode, sampler, targets)
