"""Kubeflow Trainer's TrainJob (``trainer.kubeflow.org/v1alpha1``): ``spec.trainer`` gives the
nodes' container (image, command, args, env, resources per node) and their number; the runtime
named by ``spec.runtimeRef`` gives the environment. Each node is one replica of a gang."""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..errors import SpecError
from ..quantities import parse_count, parse_cpu
from .base import ContainerTrial, PodTemplate, TemplateReading, TrialKindReader, read_pod_processes, trial_of
from .gang import COMPLETION_INDEX_LABEL, REPLICATED_JOB_LABEL, Gang, ReplicaType, expand, mark_primaries
from .job import positive_seconds
from .training_operator import DEFAULT_REPLICA_CPU

#: Runtimes whose environment is given here -> the framework that gives it.
RUNTIMES = {"torch-distributed": "trainer-torch", "torch-distributed-with-cache": "trainer-torch"}
#: The working directory of the runtimes' image (pytorch/pytorch's WORKDIR).
RUNTIME_WORKDIR = "/workspace"
_TRAINER_FIELDS = ("numNodes", "image", "command", "args", "env", "resourcesPerNode", "numProcPerNode")
_NOTES = {"suspend": "a trial starts when Ray has room for all its nodes", "managedBy": "no effect here",
          "labels": "no effect here", "annotations": "no effect here"}


class TrainJobReader(TrialKindReader):
    kinds = (("trainer.kubeflow.org/v1alpha1", "TrainJob"),)

    def read(self, reading: TemplateReading) -> ContainerTrial:
        spec = reading.trial_spec.get("spec") or {}
        at = f"{reading.at}.spec"
        if not isinstance(spec, Mapping):
            raise SpecError(at, "must be a mapping")
        framework = _runtime(spec.get("runtimeRef"), f"{at}.runtimeRef")
        trainer = spec.get("trainer") or {}
        if not isinstance(trainer, Mapping):
            raise SpecError(f"{at}.trainer", "must be a mapping")
        timeout = None
        for key, value in spec.items():
            if key in ("runtimeRef", "trainer"):
                continue
            if key == "activeDeadlineSeconds":
                timeout = positive_seconds(value, f"{at}.{key}", reading.problems)
            elif key in _NOTES:
                reading.notes.append(f"{at}.{key}: {_NOTES[key]}")
            else:
                reading.problems.add(f"{at}.{key}", "not supported for trials here (initializers and runtime patches "
                                     "belong to the cluster)")
        for key in trainer:
            if key not in _TRAINER_FIELDS:
                reading.problems.add(f"{at}.trainer.{key}", "not a field of a TrainJob's trainer")
        nodes = trainer.get("numNodes", 1)
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
            reading.problems.add(f"{at}.trainer.numNodes", f"must be a whole number of nodes, at least 1, got {nodes!r}")
            nodes = 1
        reading.problems.raise_if_any()
        container = {"name": "node", **{k: trainer[k] for k in ("image", "command", "args", "env") if k in trainer}}
        if "resourcesPerNode" in trainer:
            container["resources"] = trainer["resourcesPerNode"]
        pod_spec: dict[str, Any] = {"containers": [container]}
        if "image" not in trainer:
            # The node runs the runtime's image, whose working directory (/workspace) is the
            # pod's own: here, a folder of the node's (so files a command writes there, as
            # Kubeflow's SDK writes a CustomTrainer's function, are not shared between trials).
            container.update(workingDir=RUNTIME_WORKDIR, volumeMounts=[{"name": "workspace", "mountPath": RUNTIME_WORKDIR}])
            pod_spec["volumes"] = [{"name": "workspace", "emptyDir": {}}]
        pod = read_pod_processes(reading, PodTemplate({"spec": pod_spec}, f"{at}.trainer",
                                                      default_container="node", default_cpu=1 if nodes == 1 else DEFAULT_REPLICA_CPU))
        reading.problems.raise_if_any()
        types = [ReplicaType("Node", nodes, pod)]
        wanted = reading.template.primary_pod_labels or {REPLICATED_JOB_LABEL: "node", COMPLETION_INDEX_LABEL: "0"}
        replicas = mark_primaries(expand(types, {}, None, trainjob=True), wanted, "trialTemplate.primaryPodLabels")
        settings = {"num_proc_per_node": _num_proc(trainer.get("numProcPerNode"), pod.main.resources)}
        # A TrainJob is Complete when every node's job is (JobSet's default success policy).
        gang = Gang(framework, replicas, tuple(r.rank for r in replicas), False, settings, reading.at)
        return trial_of(reading, replicas[0].pod if replicas[0].primary else gang.primaries[0].pod, timeout, gang)

    def pod_template(self, job_spec: Mapping[str, Any], reading: TemplateReading) -> PodTemplate:
        raise NotImplementedError  # read() builds the nodes' pod from spec.trainer


def _runtime(ref: Any, at: str) -> str:
    if not isinstance(ref, Mapping) or not ref.get("name"):
        raise SpecError(f"{at}.name", "a TrainJob names its runtime (runtimeRef.name)")
    name = str(ref["name"])
    if name not in RUNTIMES:
        raise SpecError(f"{at}.name", f"runtime {name!r} is not known here; known: {', '.join(RUNTIMES)} "
                        "(MPI-based runtimes such as deepspeed-distributed and mlx-distributed, and jax/xgboost ones, are not)")
    kind = ref.get("kind", "ClusterTrainingRuntime")
    if kind not in ("ClusterTrainingRuntime", "TrainingRuntime"):
        raise SpecError(f"{at}.kind", f"must be ClusterTrainingRuntime or TrainingRuntime, got {kind!r}")
    return RUNTIMES[name]


def _num_proc(value: Any, resources: Any) -> str:
    """PET_NPROC_PER_NODE as the torch plugin sets it: the TrainJob's numProcPerNode, else
    ``auto`` with a GPU, else the node's CPUs rounded up (at least 1)."""
    if value is not None:
        return str(value)
    if parse_count(resources.gpu):
        return "auto"
    return str(max(1, math.ceil(parse_cpu(resources.cpu))))
