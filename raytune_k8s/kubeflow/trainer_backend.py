"""Kubeflow Trainer's ``KubernetesBackend`` as Kubeflow's optimizer uses it, answered here: the
SDK's own class with its Kubernetes reads replaced.

* ``get_runtime(name)``: the runtimes trials run here (:data:`~raytune_k8s.spec.trial_kinds.trainer.RUNTIMES`),
  each built by the SDK's own code from the ClusterTrainingRuntime that Kubeflow Trainer ships
  (:func:`cluster_training_runtime`), so ``torch-distributed`` is a ``CustomTrainer`` runtime of
  the torch framework whose entrypoint is ``torchrun``; any other name is a ``ValueError``.
* ``get_job(name)``: a trial as the SDK's ``TrainJob``: one step per node (``node-0`` ...,
  with the pod phase the trial's condition implies), its status (``Created``, ``Running``,
  ``Complete``, ``Failed``) and node count.
* ``_read_pod_logs``: a node's log file, ``<storage>/<experiment>/<trial dir>/replicas/node-<i>.log``
  (written as the node runs; in the storage path once Ray has synced the trial's folder, at the
  latest when the trial ends).

The SDK's other methods (``get_job_logs``, ``wait_for_job_status``, ...) are its own, on top.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from kubeflow.trainer.backends.kubernetes import utils as trainer_utils
from kubeflow.trainer.backends.kubernetes.backend import KubernetesBackend as _TrainerBackend
from kubeflow.trainer.constants import constants
from kubeflow.trainer.types import types
from kubeflow_trainer_api import models

from ..spec.trial_kinds.trainer import RUNTIMES
from .custom_objects import StoreCustomObjectsApi
from .store import ExperimentStore, NotFound

#: The node image of Kubeflow Trainer's torch runtimes (the SDK's default for torch); trials
#: here run in the Ray worker's image instead.
TORCH_IMAGE = constants.DEFAULT_FRAMEWORK_IMAGES["torch"]
_POD = re.compile(r"^(?P<trial>.+)-(?P<node>node-\d+)$")
#: trial condition (the summary's) -> the node pods' phase
_PHASES = {"Pending": "Pending", "Paused": "Pending", "Running": "Running", "Succeeded": "Succeeded",
           "EarlyStopped": "Succeeded", "MetricsUnavailable": "Succeeded", "Failed": "Failed", "Killed": "Failed"}
_FOLLOW_POLL_S = 0.5


def cluster_training_runtime(name: str) -> dict[str, Any]:
    """The ClusterTrainingRuntime ``name`` as Kubeflow Trainer's manifests ship it (the parts the
    SDK reads: the framework label, the ML policy, the node's replicated job and container)."""
    if name not in RUNTIMES:
        raise ValueError(f"runtime {name!r} is not known here; known: {', '.join(RUNTIMES)} (MPI-based runtimes "
                         "such as deepspeed-distributed and mlx-distributed, and jax/xgboost/torchtune ones, are not)")
    jobs: list[dict[str, Any]] = []
    if name == "torch-distributed-with-cache":
        jobs.append({"name": constants.DATASET_INITIALIZER, "template": {
            "metadata": {"labels": {constants.TRAINJOB_ANCESTOR_LABEL: constants.DATASET_INITIALIZER}},
            "spec": {"template": {"spec": {"containers": [{"name": constants.DATASET_INITIALIZER,
                                                           "image": "ghcr.io/kubeflow/trainer/dataset-initializer"}]}}}}})
    jobs.append({"name": constants.NODE, "template": {
        "metadata": {"labels": {constants.TRAINJOB_ANCESTOR_LABEL: "trainer"}},
        "spec": {"template": {"spec": {"containers": [{"name": constants.NODE, "image": TORCH_IMAGE}]}}}}})
    return {
        "apiVersion": constants.API_VERSION, "kind": types.RuntimeKind.CLUSTER_TRAINING_RUNTIME.value,
        "metadata": {"name": name, "labels": {constants.RUNTIME_FRAMEWORK_LABEL: "torch"}},
        "spec": {"mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
                 "template": {"spec": {"replicatedJobs": jobs}}},
    }


class TrainerBackend(_TrainerBackend):
    """Kubeflow Trainer's backend over the trials of an :class:`~.store.ExperimentStore`."""

    def __init__(self, store: ExperimentStore, namespace: str):  # no kube config: nothing of Kubernetes is asked
        self.store = store
        self.namespace = namespace
        self.custom_api = StoreCustomObjectsApi(store)  # TrainJobs of their own are refused there (404)
        self.core_api = None

    def list_runtimes(self) -> list[types.Runtime]:
        return [self.get_runtime(name) for name in RUNTIMES]

    def get_runtime(self, name: str) -> types.Runtime:
        cr = models.TrainerV1alpha1ClusterTrainingRuntime.from_dict(cluster_training_runtime(name))
        # The SDK's own reading of a runtime CR (private, name-mangled in its class).
        build = getattr(self, "_KubernetesBackend__get_runtime_from_cr")
        runtime: types.Runtime = build(cr)
        return runtime

    def get_job(self, name: str) -> types.TrainJob:
        """The trial ``name`` (``<experiment>-<trial id>``) as the TrainJob Katib created for it."""
        experiment, row = self._trial(name)
        job_spec = ((experiment.get("spec") or {}).get("trialTemplate") or {}).get("trialSpec", {}).get("spec") or {}
        runtime = self.get_runtime(str((job_spec.get("runtimeRef") or {}).get("name") or constants.DEFAULT_TRAINING_RUNTIME))
        trainer = job_spec.get("trainer") or {}
        num_nodes = int(trainer.get("numNodes") or runtime.trainer.num_nodes)
        phase = _PHASES.get(row["status"], "Pending")
        device = _devices(trainer.get("resourcesPerNode"))
        steps = [types.Step(name=f"{constants.NODE}-{i}", status=phase, pod_name=f"{name}-{constants.NODE}-{i}",
                            **device) for i in range(num_nodes)]
        status = {"Running": constants.TRAINJOB_RUNNING, "Succeeded": constants.TRAINJOB_COMPLETE,
                  "Failed": constants.TRAINJOB_FAILED}.get(phase, constants.TRAINJOB_CREATED)
        return types.TrainJob(name=name, runtime=runtime, steps=steps, num_nodes=num_nodes, status=status,
                              creation_timestamp=self._created(experiment, row))

    def _read_pod_logs(self, pod_name: str, container_name: str, follow: bool) -> Iterator[str]:
        """A node's output, line by line (``follow``: until its trial has ended)."""
        match = _POD.match(pod_name)
        if match is None:
            raise RuntimeError(f"Failed to read logs for the pod {self.namespace}/{pod_name}: not a trial's node")
        trial, node = match["trial"], match["node"]
        read = 0
        while True:
            ended = not follow or self.get_job(trial).status in (constants.TRAINJOB_COMPLETE, constants.TRAINJOB_FAILED)
            lines = self._log_lines(trial, node)
            yield from lines[read:]
            read = len(lines)
            if ended:
                return
            time.sleep(_FOLLOW_POLL_S)

    # ------------------------------------------------------------------ helpers

    def _trial(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        experiment_name = name.rsplit("-", 1)[0]
        try:
            experiment = self.store.experiment(self.namespace, experiment_name)
        except NotFound as exc:
            raise RuntimeError(f"Failed to get {constants.TRAINJOB_KIND}: {self.namespace}/{name}: {exc}") from None
        row = next((r for r in self.store.trial_rows(experiment_name) if r["name"] == name), None)
        if row is None:
            raise RuntimeError(f"Failed to get {constants.TRAINJOB_KIND}: {self.namespace}/{name}: no such trial")
        return experiment, row

    def trial_dir(self, name: str) -> Path | None:
        """The trial's folder in the storage path (None until Ray has written it there)."""
        experiment, _, trial_id = name.rpartition("-")
        folder = self.store.storage / experiment
        if not folder.is_dir():
            return None
        return next((p for p in folder.iterdir() if p.is_dir() and f"_{trial_id}_" in p.name), None)

    def _log_lines(self, trial: str, node: str) -> list[str]:
        folder = self.trial_dir(trial)
        try:
            return (folder / "replicas" / f"{node}.log").read_text(errors="replace").splitlines() if folder else []
        except OSError:
            return []

    def _created(self, experiment: dict[str, Any], row: dict[str, Any]) -> datetime:
        folder = self.trial_dir(row["name"])
        params = folder / "params.json" if folder is not None else None
        if params is not None and params.exists():
            return datetime.fromtimestamp(params.stat().st_mtime, timezone.utc)
        stamp = str((experiment.get("metadata") or {}).get("creationTimestamp") or "")
        try:
            return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return datetime.now(timezone.utc)


def _devices(resources: Any) -> dict[str, str]:
    """A node's device and count as the SDK reads them from its container's limits."""
    if not isinstance(resources, dict) or not resources.get("limits"):
        return {}
    try:
        found = trainer_utils.get_container_devices(models.IoK8sApiCoreV1ResourceRequirements.from_dict(resources))
    except Exception:  # noqa: BLE001 - a device the SDK does not know: shown as Unknown, as the SDK leaves it
        return {}
    return {"device": found[0], "device_count": found[1]} if found else {}
