"""Kubeflow's unified SDK optimizer, run here: ``OptimizerClient`` is Kubeflow's own class
(``kubeflow.optimizer.OptimizerClient``, SDK 0.5) whose backend is the SDK's own
``KubernetesBackend`` with its Kubernetes clients replaced: Katib Experiments and Trials from
this project's experiment store (:mod:`.custom_objects`), events in Katib's words read off the
store (:mod:`.events`), and Kubeflow Trainer's
backend over the trials (:mod:`.trainer_backend`). The SDK builds the Katib Experiment (a
TrainJob per trial, ``CustomTrainer``'s function in its command) and reads everything back with
its own code; each experiment runs in a driver process of its own, as with :class:`~.KatibClient`.

What differs (docs/kubeflow.md): trials run in the Ray worker's image and Python, so
``CustomTrainer.image`` has no effect and ``packages_to_install`` is pip-installed into the
worker's Python by every trial node (a warning says so).
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

from kubeflow.common.types import KubernetesBackendConfig
from kubeflow.optimizer import OptimizerClient as _OptimizerClient
from kubeflow.optimizer.backends.kubernetes.backend import KubernetesBackend

from ..spec import SpecError
from .custom_objects import StoreCustomObjectsApi
from .events import StoreEvents
from .store import ExperimentStore
from .trainer_backend import TrainerBackend


class StoreBackend(KubernetesBackend):
    """The SDK's Kubernetes backend over an :class:`~.store.ExperimentStore`."""

    def __init__(self, store: ExperimentStore, namespace: str):  # no kube config: nothing of Kubernetes is asked
        self.store = store
        self.namespace = namespace
        self.custom_api = StoreCustomObjectsApi(store)
        self.core_api = StoreEvents(store)
        self.trainer_backend = TrainerBackend(store, namespace)


class OptimizerClient(_OptimizerClient):
    """Kubeflow's optimizer client over this project's experiments.

    ``storage_path``: where experiments are kept (default: ``$RAYTUNE_K8S_STORAGE``, else
    raytune-k8s's default); ``address``: the Ray cluster trials run on (default:
    ``$RAY_ADDRESS``, else each experiment's own embedded Ray); ``namespace``: the namespace the
    experiments are recorded under. ``backend_config`` (Kubernetes' connection) has no meaning
    here; only its namespace is used.
    """

    def __init__(self, backend_config: KubernetesBackendConfig | None = None, *,
                 storage_path: str | os.PathLike[str] | None = None, address: str | None = None,
                 namespace: str = "default"):
        from ..experiment.runner import default_storage

        store = ExperimentStore(Path(storage_path) if storage_path else default_storage(),
                                address or os.environ.get("RAY_ADDRESS"))
        if backend_config is not None and backend_config.namespace:
            namespace = backend_config.namespace
        self.backend = StoreBackend(store, namespace)

    def optimize(self, trial_template: Any, *, trial_config: Any = None, search_space: dict[str, Any],
                 objectives: Any = None, algorithm: Any = None) -> str:
        """Kubeflow's ``optimize``: returns the OptimizationJob's name once its driver has
        started. A spec this project cannot run is one error naming the field (SpecError),
        before anything starts; a runtime not known here is a ValueError naming it."""
        trainer = getattr(trial_template, "trainer", None)
        if getattr(trainer, "image", None):
            # Left out of the TrainJob: a node then runs in a folder of its own (the runtime
            # image's working directory), where the SDK writes the function's file.
            warnings.warn("CustomTrainer.image has no effect here: trials run in the Ray worker's image", stacklevel=2)
            trial_template = copy.deepcopy(trial_template)
            trial_template.trainer.image = None
        if getattr(trainer, "packages_to_install", None):
            warnings.warn("CustomTrainer.packages_to_install: every trial node runs the SDK's pip install of them "
                          "(--user, else system-wide) into the Python the Ray workers run, from pip_index_urls, before the "
                          "function; the workers need that index, and the installs outlive the experiment: prefer "
                          "installing them in the worker image", stacklevel=2)
        try:
            return super().optimize(trial_template, trial_config=trial_config, search_space=search_space,
                                    objectives=objectives, algorithm=algorithm)
        except RuntimeError as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, SpecError):
                cause = cause.__cause__
            if cause is not None:
                raise cause from exc
            raise
