"""Local Ray clusters that this process starts and stops: for development, tests and benchmarks.

``LocalRayHead`` runs ``ray start --head --block`` in its own temp dir with free ports. Stopping
it sends SIGTERM to that one ``ray start`` process, which takes down exactly the Ray processes it
started (unlike ``ray stop --force``, which kills every Ray process on the machine).
Token authentication stays on: clients get ``RAY_AUTH_MODE=token`` and the token file, and this
process's own clients (the readiness checks) use it too, whatever the shell set
(:func:`use_token_auth`). A start-up that fails, or is interrupted, stops every process it
started before it returns.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from ..scaling.quota import FAILED_STARTS_ENV
from ..scaling.quota import WORKER_CPU_ENV, WORKER_MEMORY_ENV

__all__ = [
    "TOKEN_FILE", "PROVIDER", "HEAD_NODE_TYPE", "WORKER_NODE_TYPE", "STATE_FILE", "STATE_ENV", "NODE_STOP_GRACE_S",
    "free_port", "use_token_auth", "ensure_auth_token", "state_file_path", "LocalRayHead", "AutoscalingLocalCluster",
    "start_background_cluster", "stop_background_cluster",
]

TOKEN_FILE = Path("~/.ray/auth_token").expanduser()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def use_token_auth() -> None:
    """Make this process a token-authenticated Ray client, as the heads started here are.

    Ray reads ``RAY_AUTH_MODE`` once, when it is imported; a shell without it (the default) would
    leave our readiness checks with "RAY_AUTH_MODE is currently 'disabled'". So set it before
    the first ``import ray``; if Ray is already imported with another mode, refresh its cached
    config the way Ray itself does when it turns token auth on for a local cluster.
    """
    if os.environ.get("RAY_AUTH_MODE") == "token":
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    if "ray" in sys.modules:
        from ._ray_internals import reload_auth_config

        reload_auth_config()


def ensure_auth_token(ray_cli: str) -> None:
    """Token authentication needs a token before ``ray start --head``: on a machine that has
    none yet (no ~/.ray/auth_token, no RAY_AUTH_TOKEN[_PATH]), generate one the documented way."""
    if TOKEN_FILE.exists() or os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    subprocess.run([ray_cli, "get-auth-token", "--generate"], check=True, capture_output=True, timeout=60)


class LocalRayHead:
    """A Ray head node started with ``ray start --head --block``; use as a context manager."""

    def __init__(self, num_cpus: float = 2, *, extra_args: Sequence[str] = (), env: dict[str, str] | None = None):
        self.num_cpus = num_cpus
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.dashboard_port = free_port()
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rtk8s-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.temp_dir / "ray-start.log"

    @property
    def address(self) -> str:
        """The GCS address, for ``ray.init(address=...)`` and ``--address``."""
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The Jobs API address, for ``ray job submit --address``."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def client_env(self) -> dict[str, str]:
        """Environment for a client of this cluster (token authentication on)."""
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env["RAY_AUTH_MODE"] = "token"
        if TOKEN_FILE.exists() and "RAY_AUTH_TOKEN" not in env:
            env["RAY_AUTH_TOKEN_PATH"] = str(TOKEN_FILE)
        return env

    def start(self, timeout: float = 90) -> "LocalRayHead":
        """Start the head and wait until it takes jobs; on any failure or interrupt (Ctrl-C),
        stop whatever was started, then raise."""
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Run ``ray start --head --block`` (returns at once; see :meth:`wait_ready`)."""
        from ._ray_internals import forget_gcs_client
        from .provider import ray_count

        forget_gcs_client(self.address)  # its port may be a dead head's: not that head's client

        use_token_auth()
        ray_cli = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
        ensure_auth_token(ray_cli)
        cmd = [
            ray_cli, "start", "--head", "--block", "--disable-usage-stats",
            f"--port={self.port}", f"--dashboard-port={self.dashboard_port}",
            "--dashboard-host=127.0.0.1", "--include-dashboard=true",
            f"--num-cpus={ray_count(self.num_cpus, '--num-cpus')}", f"--temp-dir={self.temp_dir}",
            f"--ray-client-server-port={free_port()}",
            # Its default (52365) is one port per machine: a second head's agent could not start,
            # and without it `ray job submit` answers "No available agent".
            f"--dashboard-agent-listen-port={free_port()}",
            *self.extra_args,
        ]
        # Ray 2.60's `ray start` drains its node on SIGTERM for up to 30 s, for Ray Serve's
        # proxies; the head's detached actors hold leases, so the drain always runs out and every
        # stop() took 30 s. Nothing on a local head needs draining (Ray's own knob; 0 = off).
        env = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", **self.client_env(), **self.extra_env}
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self, timeout: float = 90) -> None:
        """Wait until the head runs and its dashboard agent takes jobs. Raises RuntimeError if
        ``ray start`` exits, TimeoutError after ``timeout`` s; stops nothing itself."""
        from ._ray_internals import forget_gcs_client

        assert self._proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"ray start exited with {self._proc.returncode}:\n{self._log.read_text()[-3000:]}")
                if "Ray runtime started" in self._log.read_text(errors="replace") and self._agent_ready_or_not_yet():
                    return
                time.sleep(0.5)
        finally:
            # The readiness checks' GCS client is not kept: a client of a GCS that later dies (a
            # head killed as a lost pod) gives up after 60 s by ending this whole process (exit 1).
            forget_gcs_client(self.address)
        log = self._log.read_text(errors="replace")[-3000:]
        raise TimeoutError(f"Ray head (and its dashboard agent) did not start within {timeout:g}s:\n{log}")

    def _agent_ready_or_not_yet(self) -> bool:
        """:meth:`_job_agent_ready`, where a GCS that does not answer yet (or any more: the loop
        then sees ``ray start`` exit) counts as not ready; an authentication error is raised."""
        from ray.exceptions import RpcError

        try:
            return self._job_agent_ready()
        except (RpcError, ConnectionError, TimeoutError):
            return False

    def _job_agent_ready(self) -> bool:
        """Whether the head's dashboard agent has registered: ``ray job submit`` fails with "No
        available agent" until it has, seconds after "Ray runtime started" (more on a busy machine)."""
        from ._ray_internals import job_agent_registered

        return job_agent_registered(self.address)

    def stop(self, timeout: float = 30) -> None:
        """Stop the head (SIGTERM to its ``ray start``, which takes down what it started), then
        kill whatever is left under this cluster's temp dir (worker nodes, or the rest of a
        start-up that failed half way). Nothing outside this cluster is touched."""
        if self._proc is None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            return
        survivors = _cluster_processes(self.temp_dir)
        if self._proc.poll() is None:
            self._disconnect_driver()
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        _kill_trees(survivors + _cluster_processes(self.temp_dir), graceful_s=NODE_STOP_GRACE_S)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _disconnect_driver(self) -> None:
        """A driver still connected to this head when it goes (an error left a ``with`` block
        early) would wait a minute for the GCS and then abort: disconnect it first."""
        import ray

        if ray.is_initialized() and ray.get_runtime_context().gcs_address.rsplit(":", 1)[-1] == str(self.port):
            ray.shutdown()

    def __enter__(self) -> "LocalRayHead":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ---------------------------------------------------------------- a simulated autoscaling cluster

#: Our node provider (Ray's public ``NodeProvider`` interface), loaded by the autoscaler as an
#: external provider: each "pod" it creates is a ``ray start`` on this machine joined to the head.
PROVIDER = "raytune_k8s.sim.provider.PodProvider"
HEAD_NODE_TYPE = "ray.head.default"
WORKER_NODE_TYPE = "worker"
STATE_FILE = Path("~/.raytune_k8s/cluster.json").expanduser()
#: Overrides :data:`STATE_FILE` (tests and scripts that must not touch the user's cluster).
STATE_ENV = "RAYTUNE_K8S_CLUSTER_STATE"
#: Seconds the worker nodes get between SIGTERM and SIGKILL when the cluster stops: nothing on a
#: simulated node needs saving.
NODE_STOP_GRACE_S = 1.0


def _source_tree_path() -> dict[str, str]:
    """The head's monitor imports :data:`PROVIDER`; when this package runs from a source
    tree that is not installed (or whose editable install points elsewhere), put the tree on
    the head's PYTHONPATH, else the monitor fails and takes the head down with it."""
    root = Path(__file__).resolve().parents[2]
    if root.name in ("site-packages", "dist-packages"):
        return {}
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}


class AutoscalingLocalCluster(LocalRayHead):
    """A Ray head running the real Ray autoscaler (v2, as KubeRay runs it) with a node provider
    whose "pods" are local Ray nodes: a local stand-in for an autoscaling KubeRay cluster.

    The head has 0 CPUs (like ours on Kubernetes), so trials only run on workers; there is one
    worker type with ``worker_cpus`` CPUs, 0..``max_workers`` of them, removed after
    ``idle_timeout_s`` idle. The nodes of one autoscaler decision are created together, as
    KubeRay creates pods, and each starts Ray ``pod_start_s`` after it is asked for (a pod's
    scheduling and image pull), at most ``max_starting`` at once (default: no limit; see
    :mod:`.provider`). Each node has its own temp directory; they share this machine's filesystem
    otherwise, where a real cluster needs shared storage (``storage_path`` on NFS or object
    storage) for the same thing to work.

    ``stop()`` stops the head (SIGTERM to its ``ray start``) and then kills whatever is left of
    the worker nodes: the autoscaler's monitor starts them, not the head's ``ray start``, and they
    outlive it otherwise. Nothing outside this cluster is touched.
    """

    def __init__(
        self,
        worker_cpus: float = 1,
        max_workers: int = 4,
        *,
        idle_timeout_s: float = 60.0,
        pod_start_s: float = 0.0,
        max_starting: int | None = None,
        object_store_mb: int = 100,
        update_interval_s: int = 1,
        worker_start_args: Sequence[str] = (),
    ):
        if max_workers < 1 or worker_cpus <= 0:
            raise ValueError("a cluster needs max_workers >= 1 and worker_cpus > 0")
        if float(worker_cpus) != int(worker_cpus):
            raise ValueError(f"worker CPUs must be a whole number (Ray starts a node with whole CPUs), not {worker_cpus:g}")
        if pod_start_s < 0:
            raise ValueError("pod_start_s must be >= 0")
        from .provider import FAILED_STARTS_FILE, HEAD_INSTANCE_ID


        super().__init__(
            num_cpus=0,
            extra_args=[f"--object-store-memory={object_store_mb * 2**20}"],
            env={
                "RAY_enable_autoscaler_v2": "1",
                # As KubeRay sets them on a pod: autoscaler v2 matches Ray nodes to instances by them.
                "RAY_CLOUD_INSTANCE_ID": HEAD_INSTANCE_ID,
                "RAY_NODE_TYPE_NAME": HEAD_NODE_TYPE,
                "AUTOSCALER_UPDATE_INTERVAL_S": str(int(update_interval_s)),
                # What one worker offers, for drivers on the head (`ray job submit`), as our
                # RayCluster's head has it: a trial asking for more is bad input.
                # The simulated workers advertise no memory: a trial asking for any never fits.
                WORKER_CPU_ENV: f"{worker_cpus:g}", WORKER_MEMORY_ENV: "0",
                **_source_tree_path(),
            },
        )
        nodes_dir = self.temp_dir / "nodes"
        # Drivers on the head (and clients given client_env()) report workers that fail to start.
        self.failed_starts_file = nodes_dir / FAILED_STARTS_FILE
        self.extra_env[FAILED_STARTS_ENV] = str(self.failed_starts_file)
        self.worker_start_args = [str(a) for a in worker_start_args]
        self.worker_cpus = worker_cpus
        self.max_workers = max_workers
        self.idle_timeout_s = idle_timeout_s
        self.pod_start_s = pod_start_s
        self.max_starting = max_starting
        self.object_store_mb = object_store_mb
        self.config_path = self.temp_dir / "autoscaler.yaml"
        self.extra_args.append(f"--autoscaling-config={self.config_path}")

    def client_env(self) -> dict[str, str]:
        """A client's environment: token authentication, and the worker size (for drivers)."""
        return {**super().client_env(), WORKER_CPU_ENV: f"{self.worker_cpus:g}", WORKER_MEMORY_ENV: "0",
                FAILED_STARTS_ENV: str(self.failed_starts_file)}

    def autoscaler_config(self) -> dict[str, Any]:
        """The autoscaler's cluster config: the head type and one worker type."""
        from .provider import HEAD_INSTANCE_ID

        worker_resources: dict[str, float] = {"CPU": self.worker_cpus}
        worker_resources["object_store_memory"] = self.object_store_mb * 2**20
        return {
            "cluster_name": f"raytune-k8s-{self.temp_dir.name}",
            "max_workers": self.max_workers,
            # Launch everything that is asked for at once (like KubeRay's "Aggressive" mode).
            "upscaling_speed": 1000.0,
            "idle_timeout_minutes": self.idle_timeout_s / 60.0,
            "provider": {
                "type": "external",
                "module": PROVIDER,
                "gcs_address": self.address,
                "head_node_id": HEAD_INSTANCE_ID,
                "head_node_type": HEAD_NODE_TYPE,
                "node_dir": str(self.failed_starts_file.parent),
                "worker_start_args": self.worker_start_args,
                "pod_start_s": self.pod_start_s,
                "max_starting": self.max_starting,
                "disable_launch_config_check": True,
            },
            "head_node_type": HEAD_NODE_TYPE,
            "available_node_types": {
                HEAD_NODE_TYPE: {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
                WORKER_NODE_TYPE: {
                    "resources": worker_resources,
                    "node_config": {},
                    "min_workers": 0,
                    "max_workers": self.max_workers,
                },
            },
            # Fields the autoscaler's config loader expects; nothing is run over SSH here.
            "auth": {"ssh_user": "ray"},
            "docker": {},
            "file_mounts": {},
            "cluster_synced_files": [],
            "file_mounts_sync_continuously": False,
            "initialization_commands": [],
            "setup_commands": [],
            "head_setup_commands": [],
            "worker_setup_commands": [],
            "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
        }

    def launch(self) -> None:
        import yaml

        self.config_path.write_text(yaml.safe_dump(self.autoscaler_config(), sort_keys=False))
        super().launch()

    def start(self, timeout: float = 90) -> "AutoscalingLocalCluster":
        super().start(timeout)
        return self

    # ---- the cluster's nodes, as the autoscaler's public status reports them

    def status(self) -> Any:
        """The autoscaler's view of the cluster (``ray.autoscaler.v2.sdk.get_cluster_status``)."""
        from ray.autoscaler.v2.sdk import get_cluster_status

        return get_cluster_status(self.address)

    def worker_nodes(self) -> list[dict[str, Any]]:
        """Alive worker nodes: ``node_id`` (hex), ``cpus`` and ``instance_id``."""
        status = self.status()
        return [
            {"node_id": n.node_id, "cpus": n.total_resources().get("CPU", 0.0), "instance_id": n.instance_id}
            for n in [*status.active_nodes, *status.idle_nodes]
            if n.ray_node_type_name == WORKER_NODE_TYPE
        ]

    def worker_count(self) -> int:
        """How many worker nodes are alive now."""
        return len(self.worker_nodes())

    def pending_workers(self) -> int:
        """Worker nodes the autoscaler has decided to launch that are not up yet (queued or
        being launched), from its own status report."""
        status = self.status()
        launches = sum(r.count for r in status.pending_launches if r.ray_node_type_name == WORKER_NODE_TYPE)
        return launches + sum(n.ray_node_type_name == WORKER_NODE_TYPE for n in status.pending_nodes)

    def resource_request(self) -> list[dict[str, float]]:
        """The standing ``request_resources`` bundles the autoscaler sees (one dict per bundle;
        empty when nothing is requested)."""
        return [
            dict(r.bundle)
            for demand in self.status().resource_demands.cluster_constraint_demand
            for r in demand.bundles_by_count
            for _ in range(r.count)
        ]

    def wait_for_workers(self, n: int, timeout: float = 120, poll_s: float = 0.25) -> float:
        """Wait until exactly ``n`` workers are alive and the autoscaler is launching no more;
        return the seconds waited."""
        start = time.monotonic()
        count = pending = -1
        while time.monotonic() - start < timeout:
            count = self.worker_count()
            if count == n:
                pending = self.pending_workers()
                if pending == 0:
                    return time.monotonic() - start
            time.sleep(poll_s)
        raise TimeoutError(f"{count} worker nodes ({pending} launching) after {timeout:.0f}s, waiting for {n}")

    def kill_worker(self, node_id: str | None = None) -> str:
        """Kill one worker node's whole process tree (raylet, agents, trial workers) with
        SIGKILL, like a pod that dies; ``node_id`` (hex), or any worker. Returns the node id."""
        workers = self.worker_nodes()
        if node_id is None:
            if not workers:
                raise RuntimeError("no worker node to kill")
            node_id = workers[0]["node_id"]
        elif node_id not in {w["node_id"] for w in workers}:
            raise ValueError(f"{node_id} is not an alive worker node of this cluster")
        raylets = [p for p in _cluster_processes(self.temp_dir) if f"--node_id={node_id}" in _cmdline(p)]
        if not raylets:
            raise RuntimeError(f"found no raylet process for node {node_id}")
        _kill_trees(raylets, graceful_s=0)
        return node_id

    def __enter__(self) -> "AutoscalingLocalCluster":
        return self.start()

    # ---- background use (``raytune-k8s cluster up`` / ``down``)

    def state(self) -> dict[str, Any]:
        assert self._proc is not None, "not started"
        return {
            "address": self.address,
            "dashboard_url": self.dashboard_url,
            "pid": self._proc.pid,
            "temp_dir": str(self.temp_dir),
            "worker_cpus": self.worker_cpus,
            "max_workers": self.max_workers,
            "idle_timeout_s": self.idle_timeout_s,
            "pod_start_s": self.pod_start_s,
            "log": str(self._log),
            "failed_starts": str(self.failed_starts_file),
        }


def _cmdline(proc: Any) -> str:
    import psutil

    try:
        return " ".join(proc.cmdline())
    except psutil.Error:  # gone, a zombie, or not ours to read; anything else is a bug to see
        return ""


def _cluster_processes(temp_dir: Path) -> list[Any]:
    """Processes started for the cluster whose files live in ``temp_dir``: every Ray process of
    its nodes names that directory (``--temp-dir``, ``--session-dir``, socket paths)."""
    import psutil

    marker = str(temp_dir)
    return [p for p in psutil.process_iter() if p.pid != os.getpid() and marker in _cmdline(p)]


def _kill_trees(roots: Sequence[Any], graceful_s: float) -> None:
    """Signal ``roots`` and all their descendants (collected first, so that children reparented
    by a parent's death are not missed): SIGTERM, then SIGKILL after ``graceful_s``."""
    import psutil

    procs: dict[int, Any] = {}
    for root in roots:
        try:
            for p in [root, *root.children(recursive=True)]:
                procs[p.pid] = p
        except psutil.Error:
            continue
    if not procs:
        return
    if graceful_s > 0:
        for p in procs.values():
            try:
                p.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(list(procs.values()), timeout=graceful_s)
    else:
        alive = list(procs.values())
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def state_file_path() -> Path:
    """Where ``cluster up`` records its cluster: ``$RAYTUNE_K8S_CLUSTER_STATE``, else
    :data:`STATE_FILE` (one cluster per user)."""
    return Path(os.environ.get(STATE_ENV) or STATE_FILE).expanduser()


def start_background_cluster(
    worker_cpus: float, max_workers: int, idle_timeout_s: float = 60.0, state_file: Path | None = None,
    pod_start_s: float = 0.0, timeout: float = 90,
) -> dict[str, Any]:
    """Start an :class:`AutoscalingLocalCluster` that outlives this process; record it in
    ``state_file`` (default :func:`state_file_path`) for :func:`stop_background_cluster`.

    The cluster is recorded as soon as ``ray start`` runs, before the wait for it to be ready, so
    ``cluster down`` finds it even if this process is killed while waiting. If the start fails or
    is interrupted (KeyboardInterrupt), everything it started is stopped and the record removed.
    """
    state_file = state_file or state_file_path()
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if _head_process(state) is not None:
            raise RuntimeError(
                f"a cluster is already up at {state['address']} ({state_file}); stop it with 'raytune-k8s cluster down'"
            )
        stop_background_cluster(state_file)  # a stale record: stop what is left of that cluster
    cluster = AutoscalingLocalCluster(worker_cpus, max_workers, idle_timeout_s=idle_timeout_s, pod_start_s=pod_start_s)
    try:
        cluster.launch()
        state = {**cluster.state(), "state_file": str(state_file)}
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps(state, indent=2))
        cluster.wait_ready(timeout)
    except BaseException:
        cluster.stop()
        state_file.unlink(missing_ok=True)
        raise
    return state


def stop_background_cluster(state_file: Path | None = None, timeout: float = 30) -> dict[str, Any] | None:
    """Stop the cluster recorded in ``state_file`` (exactly its processes); None if none was up."""
    import psutil

    state_file = state_file or state_file_path()
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    temp_dir = Path(state["temp_dir"])
    head = _head_process(state)
    workers = _cluster_processes(temp_dir)
    if head is not None:
        head.terminate()  # `ray start --block` stops the head's processes on SIGTERM
        try:
            head.wait(timeout)
        except psutil.TimeoutExpired:
            _kill_trees([head], graceful_s=0)
    _kill_trees(workers + _cluster_processes(temp_dir), graceful_s=NODE_STOP_GRACE_S)
    shutil.rmtree(temp_dir, ignore_errors=True)
    state_file.unlink()
    return state


def _head_process(state: dict[str, Any]) -> Any:
    """The recorded ``ray start`` process, if it is still that process (not a reused pid)."""
    import psutil

    try:
        proc = psutil.Process(state["pid"])
    except psutil.Error:
        return None
    return proc if state["temp_dir"] in _cmdline(proc) else None
