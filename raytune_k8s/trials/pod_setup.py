"""What a pod gives its containers before they run, done for a trial's process: volumes (an
``emptyDir`` is a folder of the trial's; other sources must already be mounted where the trial
runs), env values Kubernetes fills in (``fieldRef`` from the trial's own metadata; Secrets and
ConfigMaps read before the run, :mod:`.env_sources`), and the init containers, run in order.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ..spec.trial_kinds import ContainerProcess, PodProcesses, Volume

#: Text of an env value the driver read from the Kubernetes API: (source's field path) -> values.
ResolvedSources = Mapping[str, Mapping[str, str]]


class PodSetupError(RuntimeError):
    """A volume that is not where the trial runs, or an init container that failed."""


@dataclass(frozen=True)
class PodIdentity:
    """The pod a trial's process stands for: what ``fieldRef`` reads."""

    name: str
    namespace: str
    ip: str = "127.0.0.1"
    node: str = ""
    service_account: str = "default"

    def field(self, path: str) -> str:
        return {"metadata.name": self.name, "metadata.namespace": self.namespace, "metadata.uid": self.name,
                "status.podIP": self.ip, "status.hostIP": self.ip, "spec.nodeName": self.node or self.ip,
                "spec.serviceAccountName": self.service_account}[path]


@dataclass
class PreparedPod:
    """The pod's folders made and its volumes checked: ``local`` rewrites a text's mount paths."""

    pod: PodProcesses
    base_dir: Path
    identity: PodIdentity
    resolved: ResolvedSources = field(default_factory=dict)
    #: mount path -> the folder that stands for it
    mounts: dict[str, str] = field(default_factory=dict)

    def local(self, text: str) -> str:
        """``text`` with each emptyDir mount path (as a whole path, or a folder above a path in
        it) replaced by the trial's folder for it."""
        for mount_path, folder in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            pattern = r"(?<![\w.~/-])" + re.escape(mount_path.rstrip("/")) + r"(?![\w.~-])"
            text = re.sub(pattern, lambda _: folder, text)
        return text

    def env_of(self, container: ContainerProcess) -> dict[str, str]:
        """The values of the container's env sources."""
        out: dict[str, str] = {}
        for source in container.env_sources:
            if source.kind == "fieldRef":
                out[source.name] = self.identity.field(source.ref)
            elif source.key is not None:  # secretKeyRef, configMapKeyRef
                values = self.resolved.get(source.at, {})
                if source.key in values:
                    out[source.name] = values[source.key]
            else:  # envFrom: every key, after the prefix
                out.update({f"{source.name}{k}": v for k, v in self.resolved.get(source.at, {}).items()})
        return out


def prepare_pod(pod: PodProcesses, base_dir: Path, identity: PodIdentity, resolved: ResolvedSources | None = None) -> PreparedPod:
    """Make the pod's emptyDir folders under ``base_dir/volumes`` and check that every other
    mounted volume is there (raises :class:`PodSetupError` naming the volume)."""
    prepared = PreparedPod(pod, base_dir, identity, resolved or {})
    volumes = {v.name: v for v in pod.volumes}
    for mount in pod.mounts:
        volume = volumes[mount.volume]
        if volume.source == "emptyDir":
            folder = base_dir / "volumes" / volume.name / (mount.sub_path or "")
            folder.mkdir(parents=True, exist_ok=True)
            prepared.mounts[mount.mount_path] = str(folder)
        elif not os.path.exists(mount.mount_path):
            raise PodSetupError(missing_mount_line(volume, mount.mount_path))
    return prepared


def missing_mount_line(volume: Volume, mount_path: str) -> str:
    """The line a trial fails with when a mounted volume is not where it runs."""
    return (f"volume {volume.name!r} ({volume.source}) is not mounted at {mount_path} on this Ray worker: mount it "
            "in the worker pods (`raytune-k8s cluster volumes EXPERIMENT.yaml` prints the kustomize patch, "
            "cluster/README.md 'Volumes'), or, on one machine, create the folder")


def run_init_containers(prepared: PreparedPod, render: Callable[[str], str], echo: Callable[[str], None],
                        environ: Mapping[str, str]) -> None:
    """Run the pod's init containers in order, each to its end (``render``: a text as the
    trial's, placeholders filled and paths moved); the first that fails raises
    :class:`PodSetupError` naming it, with its last lines."""
    for i, container in enumerate(prepared.pod.init):
        argv = [render(a) for a in container.argv]
        env = {**environ, **{k: render(v) for k, v in container.env.items()}, **prepared.env_of(container)}
        cwd = render(container.working_dir) if container.working_dir else str(prepared.base_dir)
        name = container.name or f"initContainers[{i}]"
        try:
            done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  errors="replace", check=False)
        except OSError as exc:
            raise PodSetupError(f"init container {name!r} could not start: {exc}") from None
        for line in done.stdout.splitlines():
            echo(f"[init {name}] {line}")
        if done.returncode != 0:
            tail = " | ".join(done.stdout.strip().splitlines()[-5:])
            raise PodSetupError(f"init container {name!r} exited with status {done.returncode}; last output: {tail}")
