"""The interface every trial kind's reader has, and what they share: the trial template being
read, and the pod template each kind holds somewhere (read the same way for every kind)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from ..errors import Problems, SpecError
from ..models import KatibTrialTemplate, Resources
from .container import read_container
from .gang import Gang
from .pod import ContainerProcess, PodProcesses, Volume, read_volumes

PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")

POD_NOTES = {
    "restartPolicy": "a trial's process is never restarted in place; a lost trial is retried by trial.retries",
    "serviceAccountName": "trials run in the Ray worker's identity",
    "nodeSelector": "placement is Ray's (trial resources decide the worker)",
    "tolerations": "placement is Ray's (trial resources decide the worker)",
    "affinity": "placement is Ray's (trial resources decide the worker)",
    "securityContext": "trials run under the Ray worker's security context",
    "imagePullSecrets": "trials run in the Ray worker's image",
    "priorityClassName": "trials run in Ray worker pods, whose priority the cluster sets",
    "schedulerName": "placement is Ray's",
    "terminationGracePeriodSeconds": "a stopped trial's process gets SIGTERM, then SIGKILL after a few seconds",
    "dnsPolicy": "trials share the Ray worker's network",
    "hostNetwork": "trials share the Ray worker's network",
}


@dataclass(frozen=True)
class ContainerTrial:
    """What a Katib trial's primary container runs, as a process in a Ray trial actor."""

    kind: str
    api_version: str
    image: str | None
    argv: tuple[str, ...]
    env: Mapping[str, str]
    working_dir: str | None
    resources: Resources
    #: trialParameter name -> a parameter name or a ``${trialSpec.*}`` metadata reference
    references: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    #: Where the primary container's resources are, for errors about them.
    resources_at: str = "trialTemplate.trialSpec"
    #: The primary pod: its init containers, volumes and env from the Kubernetes API.
    pod: PodProcesses | None = None
    #: A distributed trial's replicas (None: one process).
    gang: Gang | None = None


@dataclass
class TemplateReading:
    """One trial template being read: what every kind's reader shares."""

    template: KatibTrialTemplate
    trial_spec: Mapping[str, Any]
    #: trialParameter name -> reference (checked before)
    references: dict[str, str]
    problems: Problems
    notes: list[str]
    at: str = "trialTemplate.trialSpec"

    @property
    def kind(self) -> str:
        return str(self.trial_spec.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.trial_spec.get("apiVersion", ""))


@dataclass(frozen=True)
class PodTemplate:
    """Where a trial kind keeps the pod its primary container is in (not yet checked)."""

    template: Any
    at: str
    #: the kind's own time limit (a Job's activeDeadlineSeconds)
    timeout_s: float | None = None
    #: the operator's name for the main container, when the pod has several
    default_container: str | None = None
    #: a replica's cpu when its container sets none
    default_cpu: float | str = 1


class TrialKindReader(ABC):
    """Reads one Katib trial kind: ``kinds`` lists its (apiVersion, kind) pairs (apiVersion
    None: any); :meth:`read` gives the :class:`ContainerTrial`, or SpecError naming each field
    that cannot be honoured."""

    kinds: ClassVar[tuple[tuple[str | None, str], ...]] = ()

    def read(self, reading: TemplateReading) -> ContainerTrial:
        job_spec = reading.trial_spec.get("spec") or {}
        if not isinstance(job_spec, Mapping):
            raise SpecError(f"{reading.at}.spec", "must be a mapping")
        return read_pod(reading, self.pod_template(job_spec, reading))

    @abstractmethod
    def pod_template(self, job_spec: Mapping[str, Any], reading: TemplateReading) -> PodTemplate:
        """Where the primary container's pod template is in the kind's ``spec``, once the
        kind's own fields are checked."""


def read_pod(reading: TemplateReading, pod: PodTemplate) -> ContainerTrial:
    """The trial the pod template's primary container runs."""
    processes = read_pod_processes(reading, pod)
    reading.problems.raise_if_any()
    return trial_of(reading, processes, pod.timeout_s)


def trial_of(reading: TemplateReading, primary: PodProcesses, timeout_s: float | None, gang: Gang | None = None) -> ContainerTrial:
    """The trial whose primary pod is ``primary`` (the whole gang's when ``gang``)."""
    meta = reading.trial_spec.get("metadata") or {}
    _note_metadata(meta, reading.at, reading.notes)
    main = primary.main
    return ContainerTrial(
        kind=reading.kind, api_version=reading.api_version, image=main.image, argv=main.argv, env=main.env,
        working_dir=main.working_dir, resources=main.resources, references=reading.references,
        labels=dict(meta.get("labels") or {}), annotations=dict(meta.get("annotations") or {}), timeout_s=timeout_s,
        resources_at=f"{main.at}.resources", pod=primary, gang=gang,
    )


def read_pod_processes(reading: TemplateReading, pod: PodTemplate) -> PodProcesses:
    """What the pod template runs: init containers, the main container (the trial's
    ``primaryContainerName``), volumes; problems go into ``reading.problems``."""
    problems = reading.problems
    pod_spec = _pod_spec(pod, reading.notes)
    _check_pod_keys(pod_spec, pod.at, problems, reading.notes)
    volumes = read_volumes(pod_spec, f"{pod.at}.spec", problems)
    containers = pod_spec.get("containers") or []
    name = reading.template.primary_container_name
    if pod.default_container is not None and isinstance(containers, list) and name not in [
            c.get("name") for c in containers if isinstance(c, Mapping)]:
        name = pod.default_container if len(containers) > 1 else None
    index = _primary_container(containers, name, f"{pod.at}.spec.containers", problems)
    problems.raise_if_any()
    c_at = f"{pod.at}.spec.containers[{index}]"
    main = read_container(containers[index], c_at, problems, reading.notes, volumes, pod.default_cpu)
    _check_placeholders([*main.argv, *main.env.values(), main.working_dir or ""], reading.references, c_at, problems)
    init = _init_containers(pod_spec, pod, reading, volumes)
    meta = pod.template.get("metadata") if isinstance(pod.template, Mapping) else None
    labels = dict(meta.get("labels") or {}) if isinstance(meta, Mapping) else {}
    return PodProcesses(main=main, init=init, volumes=volumes, labels=labels)


def _init_containers(pod_spec: Mapping[str, Any], pod: PodTemplate, reading: TemplateReading,
                     volumes: tuple[Volume, ...]) -> tuple[ContainerProcess, ...]:
    items = pod_spec.get("initContainers") or []
    at = f"{pod.at}.spec.initContainers"
    if not isinstance(items, list) or not all(isinstance(c, Mapping) for c in items):
        reading.problems.add(at, "must be a list of containers")
        return ()
    out = []
    for i, c in enumerate(items):
        process = read_container(c, f"{at}[{i}]", reading.problems, reading.notes, volumes, 0)
        _check_placeholders([*process.argv, *process.env.values(), process.working_dir or ""], reading.references,
                            f"{at}[{i}]", reading.problems)
        out.append(process)
    return tuple(out)


def _pod_spec(pod: PodTemplate, notes: list[str]) -> Mapping[str, Any]:
    template = pod.template
    if not isinstance(template, Mapping) or not isinstance(template.get("spec"), Mapping):
        raise SpecError(pod.at, "required field is missing (a pod template with spec.containers)")
    for key in template.get("metadata") or {}:
        if key != "labels":
            notes.append(f"{pod.at}.metadata.{key}: no effect here (trials are processes in Ray worker pods, not pods)")
    return template["spec"]


def _check_pod_keys(pod_spec: Mapping[str, Any], pod_at: str, problems: Problems, notes: list[str]) -> None:
    for key in pod_spec:
        if key in ("containers", "initContainers", "volumes"):
            continue
        if key == "restartPolicy" and pod_spec[key] == "Never":
            continue  # the same meaning here: a trial's process is not restarted in place
        if key in POD_NOTES:
            notes.append(f"{pod_at}.spec.{key}: no effect here: {POD_NOTES[key]}")
        else:
            problems.add(f"{pod_at}.spec.{key}", "not supported: a trial runs as a process in a Ray worker, which has no "
                         "such pod setting")


def _primary_container(containers: Any, name: str | None, at: str, problems: Problems) -> int:
    if not isinstance(containers, list) or not containers or not all(isinstance(c, Mapping) for c in containers):
        problems.add(at, "needs at least one container")
        return 0
    names = [c.get("name") for c in containers]
    if name is None:
        if len(containers) == 1:
            return 0
        problems.add("trialTemplate.primaryContainerName", "required when the pod has several containers")
        return 0
    if name not in names:
        problems.add("trialTemplate.primaryContainerName", f"no container is named {name!r} (containers: {', '.join(map(str, names))})")
        return 0
    index = names.index(name)
    for i, other in enumerate(names):
        if i != index:
            problems.add(f"{at}[{i}]", f"container {other!r}: only the primary container runs here (sidecars are not supported)")
    return index


def _check_placeholders(texts: list[str], refs: Mapping[str, str], at: str, problems: Problems) -> None:
    for name in {m.group(1) for text in texts for m in PLACEHOLDER.finditer(text)}:
        if name not in refs:
            problems.add(f"{at}", f"${{trialParameters.{name}}} names no trialParameter; known: {', '.join(sorted(refs)) or 'none'}")


def _note_metadata(meta: Mapping[str, Any], spec_at: str, notes: list[str]) -> None:
    for key in meta:
        if key not in ("labels", "annotations", "name", "namespace"):
            notes.append(f"{spec_at}.metadata.{key}: no effect here")
