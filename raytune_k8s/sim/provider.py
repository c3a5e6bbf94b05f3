"""The node provider of the simulated cluster (:class:`raytune_k8s.sim.AutoscalingLocalCluster`):
each "pod" it creates is one ``ray start --address=<head> --block`` process on this machine.

It implements Ray's public ``NodeProvider`` interface, which the real autoscaler (v2) loads as an
``external`` provider inside the head's monitor process. Like KubeRay creating pods, a create
call creates every node it is asked for at once and returns: their ``pod_start_s`` (standing in
for scheduling and image pull) runs concurrently. Starting Ray on a node then takes about 2.5
CPU-seconds (a raylet and Ray's Python agents), and all the "pods" share this machine's cores.
``max_starting`` (default: no limit) caps how many start Ray at once. A node's raylet aborts
when its dashboard agent has not written its port file within 15 s, a wait hard-coded in Ray
2.60 (``WaitForPersistedPort``'s default; ``RAY_agent_register_timeout_ms``, which nodes get as
:data:`AGENT_REGISTER_TIMEOUT_MS`, does not reach it). On a machine busy enough that the agents'
Python imports take longer, nodes started all at once fail and are replaced: measured here, a
raylet of the quota benchmark aborted 15.3 s after it started, still waiting for
``dashboard_agent_listen_port``. At a load average of 30, 9 nodes were all up 29 s after the
request with no limit and 74 s with at most 4 at once.

Like a pod, a node:

* joins the head's GCS with ``RAY_CLOUD_INSTANCE_ID`` (its instance id) and
  ``RAY_NODE_TYPE_NAME`` in its environment, the two variables KubeRay sets on a worker pod and
  by which autoscaler v2 matches Ray nodes to instances;
* has its own temp directory (its "disk"): its own session, logs and runtime-env directory, so a
  job's ``working_dir`` unpacked on one node is never overwritten by another;
* is deleted as a whole: SIGTERM to its process group (``ray start --block`` stops the node's
  processes), SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ray.autoscaler.node_provider import NodeProvider
from ray.autoscaler.tags import (
    NODE_KIND_HEAD,
    NODE_KIND_WORKER,
    STATUS_UP_TO_DATE,
    TAG_RAY_NODE_KIND,
    TAG_RAY_NODE_NAME,
    TAG_RAY_NODE_STATUS,
    TAG_RAY_USER_NODE_TYPE,
)

#: How long a node's raylet waits for its agents to register (not the 15 s port-file wait).
AGENT_REGISTER_TIMEOUT_MS = "300000"
#: Where a node that failed to start is recorded (one JSON line each), under ``node_dir``: the
#: head's environment names the file (:data:`raytune_k8s.scaling.quota.FAILED_STARTS_ENV`) for drivers.
FAILED_STARTS_FILE = "failed_starts.jsonl"
#: After consecutive failed starts, the next start waits 2**(n-1) s, at most this long.
MAX_BACKOFF_S = 30.0


def ray_count(value: float, flag: str) -> str:
    """``value`` as ``ray start`` takes it for ``flag`` (a whole number: ``--num-cpus 1.0`` is
    refused by Ray's CLI); ValueError naming the flag for a fractional value."""
    if float(value) != int(value):
        raise ValueError(f"{flag}: Ray starts a node with a whole number, not {value:g}")
    return str(int(value))


def last_line(log: Path) -> str:
    """The last non-empty line of a log file ("" when it has none)."""
    try:
        lines = log.read_bytes().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def free_port() -> int:
    """A port free on this machine now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Instance ids: the head's, and workers' as this prefix plus a counter (any unique string works).
HEAD_INSTANCE_ID = "rtk8s-head"
WORKER_PREFIX = "rtk8s-pod-"
#: Seconds a deleted node gets between SIGTERM and SIGKILL (nothing on it needs saving).
DELETE_GRACE_S = 1.0
#: What ``ray start`` prints once its node has registered, and how long a start may hold its slot.
STARTED = b"Ray runtime started"
START_TIMEOUT_S = 120.0


def ray_cli() -> str:
    """The ``ray`` command of this Python environment."""
    return shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray") or "ray"


class PodProvider(NodeProvider):
    """Starts and deletes simulated worker pods. ``provider_config`` keys: ``gcs_address``,
    ``head_node_id``, ``node_dir`` (nodes' temp directories go under it), ``pod_start_s``."""

    def __init__(self, provider_config: dict[str, Any], cluster_name: str):
        super().__init__(provider_config, cluster_name)
        self._gcs_address = provider_config["gcs_address"]
        self._node_dir = Path(provider_config["node_dir"])
        self._pod_start_s = float(provider_config.get("pod_start_s", 0.0))
        self._starting = threading.BoundedSemaphore(int(provider_config.get("max_starting") or 1_000_000))
        head_id = provider_config.get("head_node_id", HEAD_INSTANCE_ID)
        self._lock = threading.RLock()
        self._count = 0
        self._failed_in_a_row = 0  # consecutive failed starts: the next start backs off
        self._extra_start_args = [str(a) for a in provider_config.get("worker_start_args") or []]
        self._nodes: dict[str, dict[str, Any]] = {
            head_id: {"tags": {TAG_RAY_NODE_KIND: NODE_KIND_HEAD, TAG_RAY_NODE_NAME: head_id,
                               TAG_RAY_USER_NODE_TYPE: provider_config.get("head_node_type", "ray.head.default"),
                               TAG_RAY_NODE_STATUS: STATUS_UP_TO_DATE}, "proc": None},
        }

    # ---- what the autoscaler reads

    def non_terminated_nodes(self, tag_filters: dict[str, str]) -> list[str]:
        with self._lock:
            self._forget_exited()
            return [i for i, n in self._nodes.items() if all(n["tags"].get(k) == v for k, v in tag_filters.items())]

    def _forget_exited(self) -> None:
        """A node whose ``ray start`` exited (it failed to start, or its raylet died) is a pod
        that is gone: the autoscaler then sees it terminated and launches another if needed."""
        for instance_id, node in list(self._nodes.items()):
            proc = node["proc"]
            if proc is not None and proc.poll() is not None:
                del self._nodes[instance_id]
                delete_pod(proc)  # whatever of its process group is left

    def is_running(self, node_id: str) -> bool:
        with self._lock:
            return node_id in self._nodes

    def is_terminated(self, node_id: str) -> bool:
        return not self.is_running(node_id)

    def node_tags(self, node_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._nodes[node_id]["tags"])

    def set_node_tags(self, node_id: str, tags: dict[str, str]) -> None:
        with self._lock:
            self._nodes[node_id]["tags"].update(tags)

    def external_ip(self, node_id: str) -> str:
        return "127.0.0.1"

    def internal_ip(self, node_id: str) -> str:
        return "127.0.0.1"

    @staticmethod
    def bootstrap_config(cluster_config: dict[str, Any]) -> dict[str, Any]:
        return cluster_config

    # ---- creating and deleting pods

    def create_node(self, node_config: dict[str, Any], tags: dict[str, str], count: int) -> None:
        self.create_node_with_resources_and_labels(node_config, tags, count, {}, {})

    def create_node_with_resources_and_labels(
        self, node_config: dict[str, Any], tags: dict[str, str], count: int, resources: dict[str, float],
        labels: dict[str, str],
    ) -> None:
        """Create ``count`` nodes at once; returns without waiting for any of them."""
        for _ in range(count):
            with self._lock:
                self._count += 1
                instance_id = f"{WORKER_PREFIX}{self._count}"
                node_dir = self._node_dir / f"n{self._count}"  # short: Unix socket paths live under it
                self._nodes[instance_id] = {
                    "tags": {**tags, TAG_RAY_NODE_KIND: NODE_KIND_WORKER, TAG_RAY_NODE_NAME: instance_id,
                             TAG_RAY_NODE_STATUS: STATUS_UP_TO_DATE},
                    "proc": None,  # not started yet
                }
            args = (instance_id, tags[TAG_RAY_USER_NODE_TYPE], node_dir, dict(resources), dict(labels))
            threading.Thread(target=self._boot, args=args, daemon=True).start()

    def _boot(self, instance_id: str, node_type: str, node_dir: Path, resources: dict[str, float],
              labels: dict[str, str]) -> None:
        """The pod's start: ``pod_start_s`` (plus a back-off after failed starts), then Ray on it
        (at most ``max_starting`` at once). A node whose ``ray start`` exits before its node
        registered is recorded as failed, with its log's last line (:meth:`_record_failed_start`)."""
        with self._lock:
            backoff = min(MAX_BACKOFF_S, 2.0 ** (self._failed_in_a_row - 1)) if self._failed_in_a_row else 0.0
        time.sleep(self._pod_start_s + backoff)
        with self._starting:
            with self._lock:
                if instance_id not in self._nodes:
                    return  # deleted before it started
                node_dir.mkdir(parents=True, exist_ok=True)
                try:
                    proc = self._start(instance_id, node_type, node_dir, resources, labels)
                except (OSError, ValueError) as exc:
                    del self._nodes[instance_id]  # gone: the autoscaler sees it terminated
                    self._record_failed_start(instance_id, node_dir, str(exc))
                    return
                self._nodes[instance_id]["proc"] = proc
            log = node_dir / "pod.log"
            deadline = time.monotonic() + START_TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline:
                if STARTED in log.read_bytes():
                    with self._lock:
                        self._failed_in_a_row = 0
                    return
                time.sleep(0.2)
            if proc.poll() is not None and STARTED not in log.read_bytes():
                self._record_failed_start(instance_id, node_dir, last_line(log) or f"ray start exited with {proc.returncode}")

    def _record_failed_start(self, instance_id: str, node_dir: Path, reason: str) -> None:
        """Append ``{"instance", "node", "time", "reason"}`` to :data:`FAILED_STARTS_FILE` (what a
        driver reports to the user) and count the failure for the next start's back-off."""
        with self._lock:
            self._failed_in_a_row += 1
            record = {"instance": instance_id, "node": node_dir.name, "time": time.time(), "reason": reason}
            self._node_dir.mkdir(parents=True, exist_ok=True)
            with open(self._node_dir / FAILED_STARTS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def _start(self, instance_id: str, node_type: str, node_dir: Path, resources: dict[str, float],
               labels: dict[str, str]) -> subprocess.Popen[bytes]:
        cmd = [
            ray_cli(), "start", f"--address={self._gcs_address}", "--block", "--disable-usage-stats",
            f"--temp-dir={node_dir}",
            f"--num-cpus={ray_count(resources.pop('CPU', 0), '--num-cpus')}",
            f"--num-gpus={ray_count(resources.pop('GPU', 0), '--num-gpus')}",
            # Many nodes share this machine's ports: any free port for workers, and for the agents
            # ports chosen here (their defaults are one per machine).
            "--min-worker-port=0", "--max-worker-port=0",
            f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
        ]
        object_store = resources.pop("object_store_memory", None)
        if object_store:
            cmd.append(f"--object-store-memory={int(object_store)}")
        resources.pop("memory", None)
        if resources:
            cmd.append(f"--resources={json.dumps(resources)}")
        if labels:
            cmd.append(f"--labels={','.join(f'{k}={v}' for k, v in labels.items())}")
        cmd += self._extra_start_args
        env = {**os.environ, "RAY_CLOUD_INSTANCE_ID": instance_id, "RAY_NODE_TYPE_NAME": node_type}
        # A pod has CPUs of its own; these nodes share this machine's, so the agents may need
        # longer to register (the 15 s wait for the agent's port file stays: see the module doc).
        env.setdefault("RAY_agent_register_timeout_ms", AGENT_REGISTER_TIMEOUT_MS)
        with open(node_dir / "pod.log", "wb") as log:
            return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def terminate_node(self, node_id: str) -> None:
        with self._lock:
            node = self._nodes.pop(node_id, None)
        if node is not None and node["proc"] is not None:
            delete_pod(node["proc"])

    def terminate_nodes(self, node_ids: list[str]) -> None:
        for node_id in node_ids:
            self.terminate_node(node_id)


def delete_pod(proc: subprocess.Popen[bytes], grace_s: float = DELETE_GRACE_S) -> None:
    """SIGTERM to the node's process group, SIGKILL after ``grace_s``; waits on a thread, so
    that deleting many nodes takes one grace period, not one each."""

    def signal_group(sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def reap() -> None:
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
        signal_group(signal.SIGKILL)  # whatever of the group outlived SIGTERM
        proc.wait()

    signal_group(signal.SIGTERM)
    threading.Thread(target=reap, daemon=True).start()
