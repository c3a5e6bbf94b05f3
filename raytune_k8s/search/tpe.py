"""Tree-structured Parzen Estimator through hyperopt, via Ray Tune's ``HyperOptSearch``."""

from __future__ import annotations

import math
from typing import Any

from hyperopt import hp
from hyperopt.pyll import scope
from ray.tune.search.hyperopt import HyperOptSearch

from ..space import Dimension, SearchSpace
from ..spec import Objective
from ..settings import Settings


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


def create(space: SearchSpace, objective: Objective, settings: Settings) -> HyperOptSearch:
    return HyperOptSearch(
        space=hyperopt_space(space),
        metric=objective.metric,
        mode=objective.mode,
        n_initial_points=settings.integer("n_startup_jobs", 5, minimum=1),
        gamma=settings.number("gamma", 0.25, 0.0, 1.0),
        random_state_seed=settings.optional_integer("random_state"),
    )
