"""Search algorithms: one module per algorithm, every one a Ray Tune ``Searcher``.

``create_searcher`` looks an algorithm up by its Katib name. Adding an algorithm is one new
module with a ``create(space, objective, settings)`` function and one line in ``ALGORITHMS``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ray.tune.search import Searcher

from ..space import SearchSpace
from ..spec import Algorithm, Objective, SpecError
from ..settings import Settings

#: Katib algorithm name -> module holding its ``create`` function.
ALGORITHMS: dict[str, str] = {
    "random": "raytune_k8s.search.random",
    "grid": "raytune_k8s.search.grid",
    "tpe": "raytune_k8s.search.tpe",
    "bayesianoptimization": "raytune_k8s.search.bayesopt",
    # Neural architecture search over the spec's nasConfig.
    "darts": "raytune_k8s.nas.darts_suggestion",
    "enas": "raytune_k8s.nas.enas",
}
NAS_ALGORITHMS = ("darts", "enas")


def create_searcher(algorithm: Algorithm, space: SearchSpace, objective: Objective, nas_config: Any = None) -> Searcher:
    """Build the searcher an experiment asks for; unknown names and settings raise SpecError.
    The NAS algorithms also take the spec's ``nasConfig``."""
    module_name = ALGORITHMS.get(algorithm.name)
    if module_name is None:
        raise SpecError(
            "algorithm.algorithmName",
            f"unknown algorithm {algorithm.name!r}; choose one of {', '.join(ALGORITHMS)}",
        )
    settings = Settings(algorithm.settings, "algorithm.algorithmSettings")
    module = importlib.import_module(module_name)
    if algorithm.name in NAS_ALGORITHMS:
        searcher = module.create(space, objective, settings, nas_config=nas_config)
    else:
        searcher = module.create(space, objective, settings)
    settings.reject_unused()
    return searcher


__all__ = ["ALGORITHMS", "Settings", "create_searcher"]
