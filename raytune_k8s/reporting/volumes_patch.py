"""The kustomize patch that mounts an experiment's volumes in the Ray worker pods.

A trial's ``emptyDir`` volume is a folder of the trial's own; every other volume source
(``persistentVolumeClaim``, ``nfs``, ``hostPath``, ``secret``, ``configMap``, ...) must already be
mounted where the trial runs, at the same path, or the trial fails saying so. On KubeRay that is
the worker pods of the tenant's RayCluster (``cluster/base/raycluster.yaml``): :func:`volumes_patch`
writes the RFC 6902 (JSON6902) patch that adds those volumes to a worker group's pod template
and mounts them in its ``ray-worker`` container, for the tenant overlay's ``patches:``.

JSON6902 rather than a strategic merge patch: RayCluster is a custom resource, for which
kustomize knows no merge keys, so a strategic merge patch would replace the whole
``workerGroupSpecs`` list (and each ``volumes`` list) instead of adding to it. ``test`` operations
make the patch fail to apply, rather than land in the wrong place, when the worker group or its
container is not where it was.

Reads the spec only: no Ray, no Kubernetes API.

>>> print(volumes_patch("examples/mnist-torch-ddp.yaml"))  # doctest: +SKIP
# experiment mnist-torch-ddp: no volume to mount in the Ray worker pods ...
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..spec import ExperimentSpec, SpecError, container_trial, load_document
from ..spec.trial_kinds import PodProcesses, Volume

#: The RayCluster of cluster/base, and its worker groups in the order they are in its
#: ``workerGroupSpecs`` (gpu1 comes from components/gpu-workers, after cpu2).
RAY_CLUSTER = "raytune"
WORKER_GROUPS: dict[str, int] = {"cpu2": 0, "gpu1": 1}
WORKER_CONTAINER = "ray-worker"
#: What every worker pod mounts already: volume name -> (mount path, its source).
WORKER_MOUNTS: dict[str, tuple[str, tuple[str, dict[str, Any]]]] = {
    "experiments": ("/mnt/experiments", ("persistentVolumeClaim", {"claimName": "raytune-experiments"})),
}
#: Sources the tenant namespaces' Pod Security level ("restricted") refuses in a pod.
NOT_RESTRICTED = ("hostPath", "nfs")


@dataclass
class WorkerVolume:
    """One volume the worker pods need: its source, its name there, where it is mounted, and
    which replicas of a trial mount it."""

    volume: Volume
    name: str
    #: (mountPath, subPath) -> readOnly
    mounts: dict[tuple[str, str | None], bool]
    users: list[str]


def trial_pods(spec: ExperimentSpec) -> list[tuple[str, PodProcesses]]:
    """Each pod a trial of ``spec`` has (a replica's name, or ``trial``), each pod template once."""
    if spec.trial_template is None:
        return []  # the short format: commands, functions and built-ins have no volumes
    trial = container_trial(spec.trial_template, None, [], namespace=spec.namespace)
    if trial.gang is None:
        return [("trial", trial.pod)] if trial.pod is not None else []
    seen: dict[int, tuple[list[str], PodProcesses]] = {}
    for replica in trial.gang.replicas:
        seen.setdefault(id(replica.pod), ([], replica.pod))[0].append(replica.name)
    return [(", ".join(names), pod) for names, pod in seen.values()]


def worker_volumes(spec: ExperimentSpec) -> list[WorkerVolume]:
    """The volumes a worker pod must mount for ``spec``'s trials, in the order the trial's
    replicas mount them; SpecError when one worker pod cannot mount them all."""
    by_source: dict[str, WorkerVolume] = {}
    taken = set(WORKER_MOUNTS)
    paths: dict[str, tuple[str, str | None]] = {path: (name, None) for name, (path, _) in WORKER_MOUNTS.items()}
    for users, pod in trial_pods(spec):
        volumes = {v.name: v for v in pod.volumes}
        for mount in pod.mounts:
            volume = volumes[mount.volume]
            path = mount.mount_path.rstrip("/") or "/"
            if volume.source == "emptyDir":
                continue  # a folder of the trial's own
            if any(path == where and (volume.source, dict(volume.detail)) == source and not mount.sub_path
                   for where, source in WORKER_MOUNTS.values()):
                continue  # the worker pods mount it there already
            key = json.dumps([volume.source, volume.detail], sort_keys=True, default=str)
            wanted = by_source.get(key)
            if wanted is None:
                name = _free_name(volume.name, taken)
                taken.add(name)
                wanted = by_source[key] = WorkerVolume(volume, name, {}, [])
            if users not in wanted.users:
                wanted.users.append(users)
            there = paths.setdefault(path, (wanted.name, mount.sub_path))
            if there != (wanted.name, mount.sub_path):
                what = f"the worker pods' own volume {there[0]!r}" if there[0] in WORKER_MOUNTS else "another volume"
                raise SpecError(f"{volume.at}", f"volume {volume.name!r} ({volume.source}) is mounted at {path}, where "
                                f"{what} is mounted too: one worker pod cannot mount both there; mount it elsewhere")
            # writable if any replica writes to it
            wanted.mounts[(path, mount.sub_path)] = wanted.mounts.get((path, mount.sub_path), True) and mount.read_only
    return list(by_source.values())


def _free_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when the worker pod has a volume of that name."""
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def volumes_patch(source: str | os.PathLike[str], worker_group: str = "cpu2") -> str:
    """The JSON6902 patch (YAML text, with comments) adding the volumes of the experiment file
    ``source`` to the worker group's pods; only comments when it has none. SpecError on a file
    that does not load, or volumes one worker pod cannot mount."""
    if worker_group not in WORKER_GROUPS:
        raise SpecError("--worker-group", f"{worker_group!r} is not a worker group of RayCluster {RAY_CLUSTER} "
                        f"(cluster/base, components/gpu-workers): {', '.join(WORKER_GROUPS)}")
    loaded = load_document(Path(source))
    spec = loaded.spec
    try:
        needed = worker_volumes(spec)
    except SpecError as exc:
        raise loaded.relabel(exc) from None
    if not needed:
        return (f"# experiment {spec.name}: its trials mount no volume that the Ray worker pods must have (an emptyDir "
                "is a folder of each trial's own): nothing to patch\n")
    group = f"/spec/workerGroupSpecs/{WORKER_GROUPS[worker_group]}"
    container = f"{group}/template/spec/containers/0"
    lines = [
        f"# JSON6902 patch of RayCluster {RAY_CLUSTER}: the volumes of experiment {spec.name} in the Ray worker pods",
        f"# of worker group {worker_group}, mounted in {WORKER_CONTAINER} where its trials mount them. Save it as",
        f"# cluster/tenants/<tenant>/patches/volumes-{spec.name}.yaml and add to that kustomization.yaml:",
        f"#   patches:",
        f"#     - path: patches/volumes-{spec.name}.yaml",
        f"#       target: {{group: ray.io, version: v1, kind: RayCluster, name: {RAY_CLUSTER}}}",
        "# then `kubectl apply -k cluster/tenants/<tenant>` (cluster/README.md, \"Volumes\").",
    ]
    ops: list[tuple[list[str], dict[str, Any]]] = [
        ([], {"op": "test", "path": f"{group}/groupName", "value": worker_group}),
        ([], {"op": "test", "path": f"{container}/name", "value": WORKER_CONTAINER}),
    ]
    for wanted in needed:
        v = wanted.volume
        notes = [f"# volume {v.name!r} ({v.source}) of {', '.join(wanted.users)}"
                 + (f", named {wanted.name!r} here (the worker pod has a volume {v.name!r})" if wanted.name != v.name else "")]
        notes += [f"# {line}" for line in _source_notes(v)]
        ops.append((notes, {"op": "add", "path": f"{group}/template/spec/volumes/-",
                            "value": {"name": wanted.name, v.source: dict(v.detail)}}))
        for (path, sub_path), read_only in wanted.mounts.items():
            mount: dict[str, Any] = {"name": wanted.name, "mountPath": path}
            if sub_path:
                mount["subPath"] = sub_path
            if read_only:
                mount["readOnly"] = True
            ops.append(([], {"op": "add", "path": f"{container}/volumeMounts/-", "value": mount}))
    for notes, op in ops:
        lines += notes
        lines.append(yaml.safe_dump([op], sort_keys=False, default_flow_style=None, width=120).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _source_notes(volume: Volume) -> list[str]:
    """What the cluster must have for this source."""
    if volume.source in NOT_RESTRICTED:
        return [f"warning: {volume.source} volumes are refused in the tenant namespaces, whose Pod Security level is "
                "\"restricted\": use a persistentVolumeClaim (an NFS or hostPath PersistentVolume behind it) there"]
    if volume.source == "persistentVolumeClaim":
        claim = volume.detail.get("claimName", "?")
        return [f"the claim {claim!r} must exist in the tenant's namespace (quota raytune-objects counts claims)"]
    if volume.source in ("secret", "configMap"):
        name = volume.detail.get("secretName" if volume.source == "secret" else "name", "?")
        return [f"the {volume.source} {name!r} must exist in the tenant's namespace"]
    if volume.source in ("downwardAPI", "projected"):
        return ["its downward-API fields describe the worker pod, not the trial"]
    return []


def warnings_of(patch: str) -> list[str]:
    """The patch's ``# warning:`` comments, for the terminal."""
    return [line[2:] for line in patch.splitlines() if line.startswith("# warning: ")]
