"""raytune_k8s: Katib-style hyperparameter tuning experiments on Ray Tune, for KubeRay clusters.

>>> import raytune_k8s
>>> summary = raytune_k8s.run("examples/mnist-mxnet-random.yaml")  # doctest: +SKIP
>>> summary["best"]["params"]  # doctest: +SKIP
"""

from .experiment import ExperimentExistsError, load_spec, resume, run
from .scaling import Quota
from .spec import ExperimentSpec, SpecError

__all__ = ["ExperimentExistsError", "ExperimentSpec", "Quota", "SpecError", "load_spec", "resume", "run"]
