"""A pod template read as the processes a trial runs: its init containers, its main container,
its volumes and where they are mounted, and env values that come from the Kubernetes API.

Every trial kind's pod ends here (a Job's one pod, each replica type's pod of a distributed job).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import Problems
from ..models import Resources

#: Volume sources whose data must already be where the trial runs (a worker pod's mount).
MOUNTED_SOURCES = ("persistentVolumeClaim", "nfs", "hostPath", "secret", "configMap", "csi", "projected",
                   "downwardAPI", "ephemeral")
VOLUME_SOURCES = ("emptyDir", *MOUNTED_SOURCES)


@dataclass(frozen=True)
class EnvSource:
    """An env value Kubernetes would fill in: ``kind`` is ``fieldRef``, ``secretKeyRef``,
    ``configMapKeyRef`` (one variable ``name``) or ``secretRef``, ``configMapRef`` (``envFrom``:
    every key, ``name`` is the prefix)."""

    name: str
    kind: str
    #: fieldRef: the fieldPath; the others: the Secret's or ConfigMap's name
    ref: str
    key: str | None = None
    optional: bool = False
    at: str = ""


@dataclass(frozen=True)
class VolumeMount:
    volume: str
    mount_path: str
    sub_path: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class Volume:
    name: str
    #: one of :data:`VOLUME_SOURCES`
    source: str
    #: the source's own fields (a claim name, an NFS server and path, ...)
    detail: Mapping[str, Any] = field(default_factory=dict)
    at: str = ""


@dataclass(frozen=True)
class ContainerProcess:
    """One container, as the process that runs it."""

    name: str | None
    image: str | None
    argv: tuple[str, ...]
    env: Mapping[str, str]
    working_dir: str | None
    resources: Resources
    env_sources: tuple[EnvSource, ...] = ()
    mounts: tuple[VolumeMount, ...] = ()
    at: str = ""
    #: False when the container gives only args (the image's entrypoint runs them)
    has_command: bool = True


@dataclass(frozen=True)
class PodProcesses:
    """What one pod of a trial runs: ``init`` in order, then ``main``."""

    main: ContainerProcess
    init: tuple[ContainerProcess, ...] = ()
    volumes: tuple[Volume, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def env_sources(self) -> tuple[EnvSource, ...]:
        return tuple(s for c in (*self.init, self.main) for s in c.env_sources)

    @property
    def mounts(self) -> tuple[VolumeMount, ...]:
        return tuple(m for c in (*self.init, self.main) for m in c.mounts)


def read_volumes(pod_spec: Mapping[str, Any], at: str, problems: Problems) -> tuple[Volume, ...]:
    """The pod's ``volumes``: each with one known source."""
    items = pod_spec.get("volumes") or []
    if not isinstance(items, list):
        problems.add(f"{at}.volumes", "must be a list of volumes")
        return ()
    volumes: list[Volume] = []
    for i, item in enumerate(items):
        v_at = f"{at}.volumes[{i}]"
        if not isinstance(item, Mapping) or not item.get("name"):
            problems.add(v_at, "a volume needs a name")
            continue
        sources = [k for k in item if k != "name"]
        known = [k for k in sources if k in VOLUME_SOURCES]
        if len(sources) != 1 or not known:
            problems.add(v_at, f"volume {item['name']!r}: give one source of {', '.join(VOLUME_SOURCES)}"
                         + (f" (got {', '.join(map(str, sources))})" if sources else ""))
            continue
        detail = item[known[0]] if isinstance(item[known[0]], Mapping) else {}
        volumes.append(Volume(str(item["name"]), known[0], dict(detail), v_at))
    return tuple(volumes)


def read_mounts(container: Mapping[str, Any], at: str, volumes: tuple[Volume, ...], problems: Problems) -> tuple[VolumeMount, ...]:
    """A container's ``volumeMounts``: each names a volume of the pod."""
    items = container.get("volumeMounts") or []
    if not isinstance(items, list):
        problems.add(f"{at}.volumeMounts", "must be a list of mounts")
        return ()
    names = {v.name for v in volumes}
    mounts: list[VolumeMount] = []
    for i, item in enumerate(items):
        m_at = f"{at}.volumeMounts[{i}]"
        if not isinstance(item, Mapping) or not item.get("name") or not str(item.get("mountPath", "")).startswith("/"):
            problems.add(m_at, "a mount needs a name and an absolute mountPath")
            continue
        if item["name"] not in names:
            problems.add(f"{m_at}.name", f"no volume of the pod is named {item['name']!r} (volumes: {', '.join(sorted(names)) or 'none'})")
            continue
        if item.get("mountPropagation"):
            problems.add(f"{m_at}.mountPropagation", "not supported")
        mounts.append(VolumeMount(str(item["name"]), str(item["mountPath"]), item.get("subPath"), bool(item.get("readOnly", False))))
    return tuple(mounts)


def read_env_source(item: Mapping[str, Any], at: str, problems: Problems) -> EnvSource | None:
    """An ``env`` entry's ``valueFrom``."""
    value_from = item.get("valueFrom")
    name = str(item["name"])
    if not isinstance(value_from, Mapping) or len(value_from) != 1:
        problems.add(f"{at}.valueFrom", "give one of fieldRef, secretKeyRef, configMapKeyRef")
        return None
    kind, ref = next(iter(value_from.items()))
    ref = ref if isinstance(ref, Mapping) else {}
    if kind == "fieldRef":
        path = str(ref.get("fieldPath", ""))
        if path not in FIELD_PATHS:
            problems.add(f"{at}.valueFrom.fieldRef.fieldPath", f"{path!r} has no value here; known: {', '.join(FIELD_PATHS)}")
            return None
        return EnvSource(name, kind, path, at=f"{at}.valueFrom.fieldRef")
    if kind in ("secretKeyRef", "configMapKeyRef"):
        if not ref.get("name") or not ref.get("key"):
            problems.add(f"{at}.valueFrom.{kind}", "needs a name and a key")
            return None
        return EnvSource(name, kind, str(ref["name"]), str(ref["key"]), bool(ref.get("optional", False)), f"{at}.valueFrom.{kind}")
    problems.add(f"{at}.valueFrom.{kind}", "not supported here (fieldRef, secretKeyRef, configMapKeyRef)")
    return None


def read_env_from(container: Mapping[str, Any], at: str, problems: Problems) -> tuple[EnvSource, ...]:
    """A container's ``envFrom``: every key of a Secret or ConfigMap."""
    items = container.get("envFrom") or []
    if not isinstance(items, list):
        problems.add(f"{at}.envFrom", "must be a list")
        return ()
    out: list[EnvSource] = []
    for i, item in enumerate(items):
        e_at = f"{at}.envFrom[{i}]"
        kinds = [k for k in ("secretRef", "configMapRef") if isinstance(item, Mapping) and isinstance(item.get(k), Mapping)]
        if len(kinds) != 1 or not item[kinds[0]].get("name"):
            problems.add(e_at, "give one secretRef or configMapRef with a name")
            continue
        ref = item[kinds[0]]
        out.append(EnvSource(str(item.get("prefix", "")), kinds[0], str(ref["name"]), None, bool(ref.get("optional", False)),
                             f"{e_at}.{kinds[0]}"))
    return tuple(out)


#: fieldRef paths a trial's process gets a value for (the pod it stands for).
FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "status.podIP", "status.hostIP", "spec.nodeName",
               "spec.serviceAccountName")

