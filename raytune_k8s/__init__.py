"""raytune_k8s: Katib-style hyperparameter tuning experiments on Ray Tune, for KubeRay clusters.

>>> import raytune_k8s
>>> summary = raytune_k8s.run("examples/mnist-mxnet-random.yaml")  # doctest: +SKIP
>>> summary["best"]["params"]  # doctest: +SKIP

Importing the package loads no Ray: ``run``, ``resume`` and the rest import it when called.
"""

from __future__ import annotations

import importlib
from typing import Any

from .spec import ExperimentSpec, SpecError, load_spec

#: Public name -> module that defines it (imported on first use).
_LAZY = {
    "run": "raytune_k8s.experiment.runner",
    "resume": "raytune_k8s.experiment.runner",
    "ExperimentExistsError": "raytune_k8s.experiment.runner",
    "Quota": "raytune_k8s.scaling.quota",
    "report_metrics": "raytune_k8s.collectors.push",
    "report": "raytune_k8s.reporting",
    "export": "raytune_k8s.reporting",
}

__all__ = ["ExperimentExistsError", "ExperimentSpec", "Quota", "SpecError", "export", "load_spec", "report", "report_metrics",
           "resume", "run"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'raytune_k8s' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
