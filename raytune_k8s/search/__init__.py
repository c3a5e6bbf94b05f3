"""Search algorithms: one module per algorithm behind one registry of Katib names.

An algorithm's ``create(space, objective, settings)`` returns a Ray Tune ``Searcher``, or a
:class:`Search` when the algorithm also drives the trials it started (``pbt``: a
``TrialScheduler`` that exploits and explores running trials). ``create_search`` gives every
algorithm as a :class:`Search`; ``create_searcher`` just its searcher. Adding an algorithm is one
new module and one line in ``ALGORITHMS`` ("module" for its ``create``, "module:function" for
another factory).

May import: ``spec``, ``files``, ``_tune``, ``trials``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from .space import SearchSpace
from ..spec import Algorithm, Objective, SpecError
from ..spec.objectives import SEVERAL_OBJECTIVES_ALGORITHMS, Targets
from ..spec.settings import Settings

#: Katib algorithm name -> factory ("module" means its ``create``).
ALGORITHMS: dict[str, str] = {
    "random": "raytune_k8s.search.random",
    "grid": "raytune_k8s.search.grid",
    "tpe": "raytune_k8s.search.tpe",
    "multivariate-tpe": "raytune_k8s.search.optuna_samplers:create_multivariate_tpe",
    "cmaes": "raytune_k8s.search.cmaes",
    "sobol": "raytune_k8s.search.optuna_samplers:create_sobol",
    # Several objectives (and one), with constraints: Optuna's samplers.
    "nsga2": "raytune_k8s.search.nsga:create_nsga2",
    "nsga3": "raytune_k8s.search.nsga:create_nsga3",
    "gp": "raytune_k8s.search.gp",
    "bayesianoptimization": "raytune_k8s.search.bayesopt",
    "hyperband": "raytune_k8s.search.hyperband",
    "pbt": "raytune_k8s.search.pbt",
    # Neural architecture search over the spec's nasConfig.
    "darts": "raytune_k8s.search.darts",
    "enas": "raytune_k8s.search.enas",
}
NAS_ALGORITHMS = ("darts", "enas")


@dataclass(frozen=True)
class Search:
    """What an algorithm contributes to a Tuner: the searcher (``search_alg``) and, for
    algorithms that steer running trials, the scheduler (``scheduler``; None otherwise)."""

    searcher: Searcher
    scheduler: TrialScheduler | None = None
    #: What the settings amount to, where that is not what their names suggest (``note:`` lines).
    notes: tuple[str, ...] = ()


def create_search(
    algorithm: Algorithm, space: SearchSpace, objective: Objective, nas_config: Any = None, *, parallel_trials: int | None = None,
    targets: Targets | None = None,
) -> Search:
    """Build the search an experiment asks for; unknown names and settings raise SpecError.
    The NAS algorithms also take the spec's ``nasConfig``; hyperband the ``parallelTrialCount``
    (its one bracket's size when ``r_l < eta``, as in Katib); the algorithms of
    ``SEVERAL_OBJECTIVES_ALGORITHMS`` the ``targets`` (several objectives, constraints)."""
    target = ALGORITHMS.get(algorithm.name)
    if target is None:
        raise SpecError(
            "algorithm.algorithmName",
            f"unknown algorithm {algorithm.name!r}; choose one of {', '.join(ALGORITHMS)}",
        )
    module_name, _, function = target.partition(":")
    settings = Settings(algorithm.settings, "algorithm.algorithmSettings")
    factory = getattr(importlib.import_module(module_name), function or "create")
    if algorithm.name in NAS_ALGORITHMS:
        built = factory(space, objective, settings, nas_config=nas_config)
    elif algorithm.name == "hyperband":
        built = factory(space, objective, settings, parallel_trials=parallel_trials)
    elif algorithm.name in SEVERAL_OBJECTIVES_ALGORITHMS:
        built = factory(space, objective, settings, targets=targets)
    elif targets is not None and (targets.several or targets.constrained):
        raise SpecError("algorithm.algorithmName", f"{algorithm.name!r} takes one objective and no constraints")
    else:
        built = factory(space, objective, settings)
    settings.reject_unused()
    return built if isinstance(built, Search) else Search(built)


def create_searcher(algorithm: Algorithm, space: SearchSpace, objective: Objective, nas_config: Any = None, *,
                    targets: Targets | None = None) -> Searcher:
    """Just the searcher of :func:`create_search` (for algorithms without a scheduler)."""
    return create_search(algorithm, space, objective, nas_config, targets=targets).searcher


__all__ = ["ALGORITHMS", "Search", "Settings", "create_search", "create_searcher"]
