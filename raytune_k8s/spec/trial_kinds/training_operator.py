"""The Kubeflow training operator's jobs (kubeflow.org/v1): PyTorchJob, TFJob and XGBoostJob,
with all their replica types. One replica runs as one process; several run as a gang
(:class:`~.gang.Gang`), each with the environment the operator gives its pod."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from ..errors import Problems, SpecError
from .base import POD_NOTES, ContainerTrial, PodTemplate, TemplateReading, TrialKindReader, read_pod_processes, trial_of
from .gang import JOB_ROLE_LABEL, Gang, ReplicaType, expand, mark_primaries
from .job import positive_seconds

#: cpu of a replica of a distributed trial whose container sets none (Katib's examples set none;
#: two replicas then fit the embedded Ray of a 2-core machine).
DEFAULT_REPLICA_CPU = 0.5

_RUN_POLICY_NOTES = {
    "cleanPodPolicy": "a finished trial's replicas are always ended",
    "ttlSecondsAfterFinished": "a trial's files stay in the experiment directory",
    "backoffLimit": "a failed trial is retried only by trial.retries (the whole gang)",
    "schedulingPolicy": "a trial's replicas start together in one Ray placement group (a gang)",
    "suspend": "a trial starts when Ray has room for all its replicas",
    "managedBy": "no effect here",
}


class ReplicatedJobReader(TrialKindReader):
    """A job of replica types under ``spec.<replica_specs>``, in ``order``."""

    replica_specs: ClassVar[str]
    order: ClassVar[tuple[str, ...]]
    framework: ClassVar[str]
    #: the operator's name for the training container
    container: ClassVar[str]
    #: job fields read by :meth:`settings` (others are noted)
    own_fields: ClassVar[tuple[str, ...]] = ()

    def read(self, reading: TemplateReading) -> ContainerTrial:
        job_spec = reading.trial_spec.get("spec") or {}
        if not isinstance(job_spec, Mapping):
            raise SpecError(f"{reading.at}.spec", "must be a mapping")
        at = f"{reading.at}.spec.{self.replica_specs}"
        replicas = job_spec.get(self.replica_specs) or {}
        if not isinstance(replicas, Mapping):
            raise SpecError(at, "must be a mapping of replica types")
        counts = self.counts(replicas, at, reading.problems)
        reading.problems.raise_if_any()
        self.check_types(counts, at)
        timeout = self.job_fields(job_spec, reading)
        total = sum(counts.values())
        types = [ReplicaType(name, counts[name], self.replica_pod(replicas[name], f"{at}.{name}", reading, total))
                 for name in self.order if counts.get(name)]
        reading.problems.raise_if_any()
        gang = self.gang(types, job_spec, reading)
        return trial_of(reading, gang.primaries[0].pod, timeout, gang)

    def pod_template(self, job_spec: Mapping[str, Any], reading: TemplateReading) -> PodTemplate:
        raise NotImplementedError  # read() reads every replica type's pod

    def counts(self, replicas: Mapping[str, Any], at: str, problems: Problems) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name, rep in replicas.items():
            if name not in self.order:
                problems.add(f"{at}.{name}", f"not a replica type of a {self.framework_kind} ({', '.join(self.order)})")
                continue
            counts[name] = _replica_count(rep, f"{at}.{name}.replicas", problems)
        return counts

    @property
    def framework_kind(self) -> str:
        return self.kinds[0][1]

    def check_types(self, counts: Mapping[str, int], at: str) -> None:
        """SpecError when the job's replica types cannot form a job its operator runs."""
        if not any(counts.values()):
            raise SpecError(at, f"a {self.framework_kind} needs at least one replica")

    def replica_pod(self, rep: Any, rep_at: str, reading: TemplateReading, total: int) -> Any:
        if not isinstance(rep, Mapping):
            raise SpecError(rep_at, "must be a mapping")
        for key in rep:
            if key == "restartPolicy":
                reading.notes.append(f"{rep_at}.restartPolicy: no effect here: {POD_NOTES['restartPolicy']}")
            elif key not in ("replicas", "template"):
                reading.problems.add(f"{rep_at}.{key}", "not supported for trials here")
        pod = PodTemplate(rep.get("template"), f"{rep_at}.template", default_container=self.container,
                          default_cpu=1 if total == 1 else DEFAULT_REPLICA_CPU)
        return read_pod_processes(reading, pod)

    def job_fields(self, job_spec: Mapping[str, Any], reading: TemplateReading) -> float | None:
        """The job's time limit (``runPolicy.activeDeadlineSeconds``); other fields noted or refused."""
        timeout = None
        for key, value in job_spec.items():
            key_at = f"{reading.at}.spec.{key}"
            if key == self.replica_specs or key in self.own_fields:
                continue
            if key == "runPolicy" and isinstance(value, Mapping):
                for rp_key, rp_value in value.items():
                    if rp_key == "activeDeadlineSeconds":
                        timeout = positive_seconds(rp_value, f"{key_at}.{rp_key}", reading.problems)
                    else:
                        reading.notes.append(f"{key_at}.{rp_key}: no effect here: "
                                             + _RUN_POLICY_NOTES.get(rp_key, "a trial's replicas run as a Ray gang"))
            else:
                reading.notes.append(f"{key_at}: no effect here: a trial's replicas run as a Ray gang")
        return timeout

    def master_role(self, types: list[ReplicaType]) -> str | None:
        """The replica type whose index 0 gets the operator's ``job-role: master`` label."""
        names = [t.name for t in types]
        return next((n for n in ("Chief", "Master") if n in names), "Worker" if "Worker" in names else None)

    def success(self, types: list[ReplicaType], job_spec: Mapping[str, Any], ranks: dict[str, list[int]]) -> tuple[tuple[int, ...], bool]:
        """The ranks whose success is the job's, and whether any one of them is enough."""
        role = self.master_role(types)
        if role in ("Chief", "Master"):
            return (ranks[role][0],), False
        return tuple(ranks.get("Worker", [])), False

    def settings(self, job_spec: Mapping[str, Any], reading: TemplateReading) -> dict[str, Any]:
        return {}

    def gang(self, types: list[ReplicaType], job_spec: Mapping[str, Any], reading: TemplateReading) -> Gang:
        replicas = expand(types, {t.name: t.pod.labels for t in types}, self.master_role(types))
        wanted = reading.template.primary_pod_labels or {JOB_ROLE_LABEL: "master"}
        replicas_marked = mark_primaries(replicas, wanted, "trialTemplate.primaryPodLabels")
        ranks: dict[str, list[int]] = {}
        for r in replicas_marked:
            ranks.setdefault(r.type, []).append(r.rank)
        success, any_one = self.success(types, job_spec, ranks)
        return Gang(self.framework, replicas_marked, success, any_one, self.settings(job_spec, reading), reading.at)


def _replica_count(rep_spec: Any, at: str, problems: Problems) -> int:
    """A replica type's ``replicas`` (default 1); 0 after reporting a bad one."""
    value = rep_spec.get("replicas", 1) if isinstance(rep_spec, Mapping) else 1
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.add(at, f"must be a whole number of replicas, got {value!r}")
        return 0
    return value


class PyTorchJobReader(ReplicatedJobReader):
    kinds = ((None, "PyTorchJob"),)
    replica_specs, order, framework, container = "pytorchReplicaSpecs", ("Master", "Worker"), "pytorch", "pytorch"
    own_fields = ("nprocPerNode", "elasticPolicy")

    def check_types(self, counts: Mapping[str, int], at: str) -> None:
        super().check_types(counts, at)
        if counts.get("Master", 0) > 1:
            raise SpecError(f"{at}.Master.replicas", "a PyTorchJob has at most one Master replica")

    def settings(self, job_spec: Mapping[str, Any], reading: TemplateReading) -> dict[str, Any]:
        nproc = job_spec.get("nprocPerNode")
        elastic = job_spec.get("elasticPolicy")
        if nproc is not None and elastic and elastic.get("nProcPerNode") is not None:
            raise SpecError(f"{reading.at}.spec.nprocPerNode", "set nprocPerNode or elasticPolicy.nProcPerNode, not both")
        if elastic is not None and not isinstance(elastic, Mapping):
            raise SpecError(f"{reading.at}.spec.elasticPolicy", "must be a mapping")
        return {"nproc_per_node": str(nproc) if nproc is not None else None, "elastic": dict(elastic) if elastic else None}

    def success(self, types: list[ReplicaType], job_spec: Mapping[str, Any], ranks: dict[str, list[int]]) -> tuple[tuple[int, ...], bool]:
        if "Master" in ranks:
            return (ranks["Master"][0],), False
        return tuple(ranks.get("Worker", [])), bool(job_spec.get("elasticPolicy"))

    def master_role(self, types: list[ReplicaType]) -> str | None:
        return "Master" if any(t.name == "Master" for t in types) else "Worker"


class TFJobReader(ReplicatedJobReader):
    kinds = ((None, "TFJob"),)
    replica_specs, order, framework, container = "tfReplicaSpecs", ("Chief", "Master", "PS", "Worker", "Evaluator"), "tensorflow", "tensorflow"
    own_fields = ("successPolicy",)

    def check_types(self, counts: Mapping[str, int], at: str) -> None:
        super().check_types(counts, at)
        if counts.get("Chief", 0) + counts.get("Master", 0) > 1:
            raise SpecError(at, "a TFJob has at most one Chief or Master replica")

    def success(self, types: list[ReplicaType], job_spec: Mapping[str, Any], ranks: dict[str, list[int]]) -> tuple[tuple[int, ...], bool]:
        for role in ("Chief", "Master"):
            if role in ranks:
                return (ranks[role][0],), False
        workers = ranks.get("Worker", [])
        if job_spec.get("successPolicy") == "AllWorkers":
            return tuple(workers), False
        if not workers:
            raise SpecError("trialTemplate.trialSpec.spec.tfReplicaSpecs", "a TFJob without a Chief or Master needs Worker replicas")
        return (workers[0],), False

    def settings(self, job_spec: Mapping[str, Any], reading: TemplateReading) -> dict[str, Any]:
        policy = job_spec.get("successPolicy")
        if policy not in (None, "", "AllWorkers"):
            raise SpecError(f"{reading.at}.spec.successPolicy", f"must be AllWorkers or empty, got {policy!r}")
        return {}


class XGBoostJobReader(ReplicatedJobReader):
    kinds = ((None, "XGBoostJob"),)
    replica_specs, order, framework, container = "xgbReplicaSpecs", ("Master", "Worker"), "xgboost", "xgboost"

    def check_types(self, counts: Mapping[str, int], at: str) -> None:
        if counts.get("Master", 0) != 1:
            raise SpecError(at, "an XGBoostJob needs a Master replica to run (exactly one)")

    def master_role(self, types: list[ReplicaType]) -> str | None:
        return "Master"
