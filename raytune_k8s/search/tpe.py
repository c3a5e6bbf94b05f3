"""Tree-structured Parzen Estimator: Optuna's by default, hyperopt's with ``engine: hyperopt``.

Optuna's TPE finds better configurations than hyperopt's on every problem of
``benchmarks.search_quality`` (benchmarks/results/search_quality.md), so ``tpe`` runs it; hyperopt's
(Katib's own engine for ``tpe``), through Ray Tune's ``HyperOptSearch``, stays one setting away.

Settings: ``engine`` optuna|hyperopt; ``n_startup_trials`` (alias ``n_startup_jobs``, hyperopt's
name; random trials before the model is used, default 10 for Optuna, 5 for hyperopt);
``gamma`` (share of trials counted as good: Optuna default ``min(ceil(0.1 n), 25)`` of n,
hyperopt 0.25); ``n_ei_candidates`` (alias ``n_EI_candidates``; Optuna only, default 24);
``random_state``; ``multivariate`` true|false|auto (Optuna only; auto, Optuna 5's default: the
parameters modelled jointly for one objective (Optuna found it better; then the same sampler as
``multivariate-tpe``), one density per parameter for several objectives, the model hyperopt (and
Katib's ``tpe``) uses; ``false`` asks for that always).
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from hyperopt import hp
from hyperopt.pyll import scope
from ray.tune.search import Searcher
from ray.tune.search.hyperopt import HyperOptSearch

from .space import Dimension, SearchSpace
from ..spec import Objective, SpecError
from ..spec.settings import Settings
from .optuna_samplers import OptunaSearcher
from ..spec.objectives import Targets


def hyperopt_space(space: SearchSpace) -> dict[str, Any]:
    """Our dimensions as hyperopt expressions (normal ones clipped into [min, max])."""
    return {d.name: _expression(d) for d in space}


def _expression(d: Dimension) -> Any:
    if d.is_choice:
        return hp.choice(d.name, list(d.values))
    assert d.low is not None and d.high is not None
    if d.is_normal:
        mean, sd = d.normal_params()
        expr = hp.lognormal(d.name, mean, sd) if d.is_log else hp.normal(d.name, mean, sd)
        expr = scope.max(d.low, scope.min(d.high, expr))
    elif d.is_log:
        expr = hp.loguniform(d.name, math.log(d.low), math.log(d.high))
    elif d.kind == "int" or d.step:
        # Uniform over the grid points low, low+step, ..., high.
        step = d.step or 1
        n = int(round((d.high - d.low) / step))
        expr = scope.add(d.low, scope.mul(step, hp.randint(d.name, n + 1)))
    else:
        expr = hp.uniform(d.name, d.low, d.high)
    if d.kind == "int":
        expr = scope.int(expr)
    return expr


class GoodFraction:
    """Optuna's ``gamma`` as a fixed share of the trials (hyperopt's meaning), at most 25 like Optuna's."""

    def __init__(self, fraction: float):
        self.fraction = fraction

    def __call__(self, n: int) -> int:
        return min(math.ceil(self.fraction * n), 25)


def _alias(settings: Settings, name: str, alias: str, default: int, minimum: int) -> int:
    """A whole-number setting that also goes by another name (given both, the alias wins)."""
    first = settings.integer(name, default, minimum=minimum)
    return settings.integer(alias, first, minimum=minimum)


def create(space: SearchSpace, objective: Objective, settings: Settings, targets: Targets | None = None) -> Searcher:
    engine = settings.choice("engine", "optuna", ["optuna", "hyperopt"])
    seed = settings.optional_integer("random_state")
    if engine == "hyperopt" and targets is not None and (targets.several or targets.constrained):
        raise SpecError("algorithm.algorithmSettings", "engine: hyperopt takes one objective and no constraints; "
                        "Optuna's TPE (the default engine) takes several objectives and constraints")
    if engine == "hyperopt":
        return HyperOptSearch(
            space=hyperopt_space(space),
            metric=objective.metric,
            mode=objective.mode,
            n_initial_points=_alias(settings, "n_startup_trials", "n_startup_jobs", 5, 1),
            gamma=settings.number("gamma", 0.25, 0.0, 1.0),
            random_state_seed=seed,
        )
    gamma = settings.number("gamma", 0.0, 0.0, 1.0) if "gamma" in settings else None
    given_gamma: dict[str, Any] = {"gamma": GoodFraction(gamma)} if gamma is not None else {}  # else Optuna's default
    sampler = optuna.samplers.TPESampler(
        n_startup_trials=_alias(settings, "n_startup_trials", "n_startup_jobs", 10, 0),
        n_ei_candidates=_alias(settings, "n_ei_candidates", "n_EI_candidates", 24, 1),
        **given_gamma,
        # Optuna's default when not given: joint for one objective, one density per parameter for several
        multivariate={"true": True, "false": False, "auto": None}[settings.choice("multivariate", "auto", ["true", "false", "auto"])],
        seed=seed,
    )
    return OptunaSearcher(space, objective.metric, objective.mode, sampler, targets)
