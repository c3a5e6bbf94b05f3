"""The Kubeflow training operator's jobs that can run as one process: a PyTorchJob, TFJob or
XGBoostJob with one replica of its primary type and no others (no distributed training)."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from ..errors import Problems, SpecError
from .base import POD_NOTES, PodTemplate, TemplateReading, TrialKindReader
from .job import JOB_NOTES


class ReplicatedJobReader(TrialKindReader):
    """A job of replica types under ``spec.<replica_specs>``: the first of ``primaries`` present
    is the one process."""

    replica_specs: ClassVar[str]
    primaries: ClassVar[tuple[str, ...]]

    def pod_template(self, job_spec: Mapping[str, Any], reading: TemplateReading) -> PodTemplate:
        key, kind = self.replica_specs, reading.kind
        replicas_at = f"{reading.at}.spec.{key}"
        replicas = job_spec.get(key) or {}
        if not isinstance(replicas, Mapping):
            raise SpecError(replicas_at, "must be a mapping of replica types")
        primary = next((c for c in self.primaries if c in replicas), None)
        if primary is None:
            raise SpecError(replicas_at, f"a {kind} needs a {' or '.join(self.primaries)} replica to run")
        _check_single_process(kind, replicas, primary, replicas_at, reading.problems)
        rep = replicas[primary] or {}
        if not isinstance(rep, Mapping):
            raise SpecError(f"{replicas_at}.{primary}", "must be a mapping")
        for other_key in job_spec:
            if other_key != key:
                reading.notes.append(f"{reading.at}.spec.{other_key}: no effect here: {JOB_NOTES['runPolicy']}")
        _check_replica_keys(rep, f"{replicas_at}.{primary}", reading)
        return PodTemplate(rep.get("template"), f"{replicas_at}.{primary}.template")


def _check_single_process(kind: str, replicas: Mapping[str, Any], primary: str, at: str, problems: Problems) -> None:
    """One replica of ``primary``, none of the other types."""
    counts = {other: _replica_count(rep_spec, f"{at}.{other}.replicas", problems) for other, rep_spec in replicas.items()}
    for other in replicas:
        if other != primary and counts[other] > 0:
            problems.add(f"{at}.{other}", f"a {kind} with {other} replicas beside its {primary} is "
                         f"distributed training; only a single {primary} replica runs here, as one process")
    if counts[primary] not in (1, -1):  # -1: already reported
        problems.add(f"{at}.{primary}.replicas", "must be 1 (one process per trial)")


def _replica_count(rep_spec: Any, at: str, problems: Problems) -> int:
    """A replica type's ``replicas`` (default 1); -1 after reporting a bad one."""
    value = rep_spec.get("replicas", 1) if isinstance(rep_spec, Mapping) else 1
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.add(at, f"must be a whole number of replicas, got {value!r}")
        return -1
    return value


def _check_replica_keys(rep: Mapping[str, Any], rep_at: str, reading: TemplateReading) -> None:
    for rep_key in rep:
        if rep_key == "restartPolicy":
            reading.notes.append(f"{rep_at}.restartPolicy: no effect here: {POD_NOTES['restartPolicy']}")
        elif rep_key not in ("replicas", "template"):
            reading.problems.add(f"{rep_at}.{rep_key}", "not supported for trials here")


class PyTorchJobReader(ReplicatedJobReader):
    kinds = ((None, "PyTorchJob"),)
    replica_specs, primaries = "pytorchReplicaSpecs", ("Master",)


class TFJobReader(ReplicatedJobReader):
    kinds = ((None, "TFJob"),)
    replica_specs, primaries = "tfReplicaSpecs", ("Chief", "Master", "Worker")


class XGBoostJobReader(ReplicatedJobReader):
    kinds = ((None, "XGBoostJob"),)
    replica_specs, primaries = "xgbReplicaSpecs", ("Master",)
