"""A trial of several replicas (a distributed job): the replicas, which of them are the trial's
primary ones, and when the whole succeeds, as the job's operator defines it.

The replicas run as a gang (one Ray placement group per trial, see :mod:`raytune_k8s.trials.gang`);
this module only says what they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import SpecError
from .pod import PodProcesses

#: The frameworks whose operator environment a replica gets (``none``: no variables).
FRAMEWORKS = ("pytorch", "tensorflow", "xgboost", "trainer-torch", "none")

REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"
JOB_ROLE_LABEL = "training.kubeflow.org/job-role"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


@dataclass(frozen=True)
class ReplicaType:
    """One replica type of a job: ``count`` pods of ``pod``."""

    name: str
    count: int
    pod: PodProcesses


@dataclass(frozen=True)
class Replica:
    """One replica of a trial: its type and index, its place in the gang (``rank``), the labels
    its operator gives its pod, and whether its metrics are the trial's."""

    type: str
    index: int
    rank: int
    pod: PodProcesses
    labels: Mapping[str, str] = field(default_factory=dict)
    primary: bool = False

    @property
    def name(self) -> str:
        """``master-0``, ``worker-1``: the pod name's tail (and its log file's name)."""
        return f"{self.type.lower()}-{self.index}"


@dataclass(frozen=True)
class Gang:
    """The replicas of a distributed trial, in rank order (master or chief first)."""

    framework: str
    replicas: tuple[Replica, ...]
    #: the replicas whose exit with status 0 ends the trial as a success ...
    success_ranks: tuple[int, ...]
    #: ... each of them (False) or any one of them (True)
    success_any: bool = False
    #: framework settings: nproc_per_node, elastic policy, ...
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: Where the gang is declared, for errors about it.
    at: str = "trialTemplate.trialSpec"

    @property
    def primaries(self) -> tuple[Replica, ...]:
        return tuple(r for r in self.replicas if r.primary)

    def succeeded(self, exited_ok: set[int]) -> bool:
        """Whether the trial succeeded once the replicas of ``exited_ok`` (ranks) exited with 0."""
        hits = [rank in exited_ok for rank in self.success_ranks]
        return any(hits) if self.success_any else all(hits)

    def bundles(self) -> list[dict[str, float]]:
        """One Ray resource bundle per replica (its main container's resources)."""
        from ..quantities import parse_count, parse_cpu, parse_memory

        out = []
        for r in self.replicas:
            res = r.pod.main.resources
            bundle = {"CPU": float(parse_cpu(res.cpu)), "GPU": float(parse_count(res.gpu))}
            if res.memory is not None:
                bundle["memory"] = float(parse_memory(res.memory))
            out.append({k: v for k, v in bundle.items() if v})
        return out


def expand(types: list[ReplicaType], pod_labels: Mapping[str, Mapping[str, str]], master_role: str | None,
           trainjob: bool = False) -> list[Replica]:
    """Every replica of ``types`` (in that order), with its operator's pod labels."""
    replicas: list[Replica] = []
    for t in types:
        for index in range(t.count):
            if trainjob:
                labels = {REPLICATED_JOB_LABEL: t.name.lower(), COMPLETION_INDEX_LABEL: str(index), "jobset.sigs.k8s.io/job-index": "0"}
            else:
                labels = {REPLICA_TYPE_LABEL: t.name.lower(), REPLICA_INDEX_LABEL: str(index)}
                if t.name == master_role and index == 0:
                    labels[JOB_ROLE_LABEL] = "master"
            replicas.append(Replica(t.name, index, len(replicas), t.pod, {**pod_labels.get(t.name, {}), **labels}))
    return replicas


def mark_primaries(replicas: list[Replica], wanted: Mapping[str, str], at: str) -> tuple[Replica, ...]:
    """The replicas whose pod labels match ``wanted`` (Katib's ``primaryPodLabels``) marked
    primary; SpecError at ``at`` when none does."""
    out = tuple(Replica(r.type, r.index, r.rank, r.pod, r.labels, all(r.labels.get(k) == v for k, v in wanted.items()))
                for r in replicas)
    if not any(r.primary for r in out):
        pods = "; ".join(f"{r.name}: {', '.join(f'{k}={v}' for k, v in r.labels.items())}" for r in out)
        raise SpecError(at, f"no replica's pod has the labels {dict(wanted)} (pods here: {pods})")
    return out


#: The short format's replica types per framework: (type of replica 0, type of the others).
_SHORTHAND_TYPES = {"pytorch": ("Master", "Worker"), "tensorflow": ("Chief", "Worker"), "xgboost": ("Master", "Worker"),
                    "none": ("Master", "Worker")}


def shorthand_gang(framework: str, replicas: int, pod: PodProcesses) -> Gang:
    """The short format's ``trial.replicas`` copies of one command: replica 0 (the master or
    chief) is the primary, and the trial succeeds when it does."""
    first, others = _SHORTHAND_TYPES[framework]
    types = [ReplicaType(first, 1, pod)] + ([ReplicaType(others, replicas - 1, pod)] if replicas > 1 else [])
    expanded = expand(types, {}, first)
    marked = tuple(Replica(r.type, r.index, r.rank, r.pod, r.labels, r.rank == 0) for r in expanded)
    return Gang(framework, marked, (0,), False, {}, "trial.replicas")
