"""The tenant's quota and the workers' size: how many trials fit, and whether one trial fits at all.

A leaf: it imports nothing of ours but ``spec`` (quantities and the error type), so both the
autoscaler request (:mod:`.request`) and the per-cluster coordinator (:mod:`.coordinator`) use it.

* :func:`quota_parallelism` is the arithmetic: how many trials of a given size fit a quota.
* :func:`read_namespace_quota` reads the tenant's trial ResourceQuota from the Kubernetes API
  when running in a pod (our RayCluster's head sets ``RAYTUNE_K8S_NAMESPACE`` and
  ``RAYTUNE_K8S_RESOURCEQUOTA``); outside a pod there is none.
* :func:`effective_parallelism` combines them for a spec, saying once when the quota caps it.
* :func:`known_worker_size` says what one worker offers (the largest, where groups differ), and
  :func:`check_fits_worker` refuses a trial no worker could run, which would otherwise wait for
  ever: from ``RAYTUNE_K8S_WORKER_CPU``/``_MEMORY``/``_GPU`` (set on our RayCluster's head by
  ``cluster/``, and by the simulated cluster), else this machine for an embedded Ray; unknown
  (not checked) for another cluster joined by address.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from ..spec import SpecError, parse_cpu, parse_memory

NAMESPACE_ENV = "RAYTUNE_K8S_NAMESPACE"
QUOTA_ENV = "RAYTUNE_K8S_RESOURCEQUOTA"
#: The tenant's trial quota as the cluster's overlay writes it into the head's environment
#: (Kubernetes quantities), so the driver needs no API access to read it.
QUOTA_CPU_ENV, QUOTA_MEMORY_ENV, QUOTA_GPU_ENV = "RAYTUNE_K8S_QUOTA_CPU", "RAYTUNE_K8S_QUOTA_MEMORY", "RAYTUNE_K8S_QUOTA_GPU"
DEFAULT_QUOTA_NAME = "raytune-trials"
#: What the largest worker of the cluster offers, as Kubernetes quantities.
WORKER_CPU_ENV, WORKER_MEMORY_ENV, WORKER_GPU_ENV = "RAYTUNE_K8S_WORKER_CPU", "RAYTUNE_K8S_WORKER_MEMORY", "RAYTUNE_K8S_WORKER_GPU"
#: A file of workers that failed to start (JSON lines: instance, node, time, reason), which the
#: simulated cluster's provider writes and its head's environment names; the run reports them.
FAILED_STARTS_ENV = "RAYTUNE_K8S_FAILED_STARTS"

# ResourceQuota keys per resource; a pod must satisfy every one that is set, so the smallest wins.
_CPU_KEYS = ("limits.cpu", "requests.cpu", "cpu")
_MEMORY_KEYS = ("limits.memory", "requests.memory", "memory")
_GPU_KEYS = ("requests.nvidia.com/gpu", "limits.nvidia.com/gpu")


@dataclass(frozen=True)
class Quota:
    """What the tenant's trials may use in total: ``cpu`` in cores, ``memory`` in bytes,
    ``gpu`` in devices; None where the quota sets no limit."""

    cpu: float | None = None
    memory: int | None = None
    gpu: float | None = None

    @classmethod
    def parse(cls, cpu: float | str | None = None, memory: int | str | None = None, gpu: float | str | None = None) -> "Quota":
        """From Kubernetes quantities (``"6"``, ``"1500m"``, ``"12Gi"``); ValueError if malformed."""
        return cls(
            cpu=None if cpu is None else parse_cpu(cpu),
            memory=None if memory is None else parse_memory(memory),
            gpu=None if gpu is None else float(gpu),
        )

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.cpu, self.memory, self.gpu))


# ---------------------------------------------------------------- arithmetic


def quota_parallelism(parallel: int, trial_resources: Mapping[str, float], quota: Quota | None) -> int:
    """How many of ``parallel`` trials, each needing ``trial_resources`` (``cpu`` cores,
    ``memory`` bytes, ``gpu``: as :func:`raytune_k8s.experiment.runner.trial_resources` gives them),
    fit ``quota`` at once. Raises SpecError naming the field when not even one trial fits."""
    return _quota_limit(parallel, trial_resources, quota)[0]


def _quota_limit(parallel: int, trial_resources: Mapping[str, float], quota: Quota | None) -> tuple[int, str | None]:
    """The number of trials that fit, and which resource caps it (None if nothing does)."""
    fits, capped_by = parallel, None
    if not quota:
        return fits, None
    for name, allowed in (("cpu", quota.cpu), ("memory", quota.memory), ("gpu", quota.gpu)):
        need = float(trial_resources.get(name) or 0)
        if allowed is None or need <= 0:
            continue  # no limit, or a trial that asks for none of it
        n = math.floor(allowed / need + 1e-9)
        if n < 1:
            raise SpecError(
                f"trial.resources.{name}",
                f"{amount(name, need)} per trial does not fit the tenant quota of {amount(name, allowed)}",
            )
        if n < fits:
            fits, capped_by = n, name
    return fits, capped_by


def quota_note(parallel: int, trial_resources: Mapping[str, float], quota: Quota, fits: int, capped_by: str) -> str:
    need = float(trial_resources[capped_by])
    allowed = {"cpu": quota.cpu, "memory": quota.memory, "gpu": quota.gpu}[capped_by]
    assert allowed is not None  # the resource that caps parallelism is one the quota limits
    return (
        f"quota caps parallelism: parallelTrialCount {parallel} asks for {parallel} x {amount(capped_by, need)}, "
        f"the tenant quota allows {amount(capped_by, float(allowed))}: running {fits} trials at once"
    )


def amount(resource: str, value: float) -> str:
    if resource == "cpu":
        return f"{value:g} vCPU"
    if resource == "gpu":
        return f"{value:g} GPU"
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size:
            return f"{value / size:.4g}{unit} memory"
    return f"{value:.0f} bytes memory"


def effective_parallelism(
    parallel: int,
    trial_resources: Mapping[str, float],
    quota: Quota | Mapping[str, Any] | None = None,
    *,
    read_quota: bool = True,
) -> int:
    """``parallelTrialCount`` capped by the quota: the explicit ``quota`` (a :class:`Quota` or a
    dict like ``{"cpu": 6, "memory": "12Gi"}``), else (``read_quota``) the namespace's
    ResourceQuota when running in a pod. Prints one line when it caps."""
    if isinstance(quota, Mapping):
        try:
            quota = Quota.parse(**quota)
        except (TypeError, ValueError) as exc:
            raise SpecError("quota", str(exc)) from None
    if quota is None and read_quota:
        quota = read_namespace_quota()
    fits, capped_by = _quota_limit(parallel, trial_resources, quota)
    if capped_by is not None and quota is not None:
        say(quota_note(parallel, trial_resources, quota, fits, capped_by))
    return fits


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- what one worker offers


@dataclass(frozen=True)
class WorkerSize:
    """What one worker offers (``cpu`` cores, ``memory`` bytes, ``gpu``; None: not known), and
    where that was learnt (``environment`` or ``this machine``), for the error message."""

    cpu: float | None = None
    memory: int | None = None
    gpu: float | None = None
    source: str = ""


def worker_size_from_env(environ: Mapping[str, str] = os.environ) -> WorkerSize | None:
    """The worker size the environment states (``RAYTUNE_K8S_WORKER_CPU``/``_MEMORY``/``_GPU``),
    or None when none is set; a malformed value is bad input naming the variable."""
    size: dict[str, Any] = {}
    for key, env, parse in (("cpu", WORKER_CPU_ENV, parse_cpu), ("memory", WORKER_MEMORY_ENV, parse_memory),
                            ("gpu", WORKER_GPU_ENV, parse_cpu)):
        if environ.get(env):
            try:
                size[key] = parse(environ[env])
            except ValueError as exc:
                raise SpecError(f"${env}", str(exc)) from None
    return WorkerSize(**size, source="environment") if size else None


def this_machine() -> WorkerSize:
    """An embedded Ray's one node: this machine's CPUs (those this process may use) and memory."""
    import psutil

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return WorkerSize(cpu=float(cpus), memory=int(psutil.virtual_memory().total), source="this machine")


def known_worker_size(address: str | None = None) -> WorkerSize | None:
    """What one worker offers where the experiment will run: the environment's statement, else
    this machine when Ray will be embedded (no ``address``, no ``$RAY_ADDRESS``, not connected),
    else None (a cluster joined by address that states nothing: not known before connecting)."""
    stated = worker_size_from_env()
    if stated is not None:
        return stated
    connected = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    if address or os.environ.get("RAY_ADDRESS") or connected:
        return None
    return this_machine()


def check_fits_worker(trial_resources: Mapping[str, float], worker: WorkerSize | None, field: str, unit: str = "trial") -> None:
    """SpecError naming ``field.<resource>`` when one trial (``unit``: or one replica of a
    distributed trial) asks for more than one worker offers."""
    if worker is None:
        return
    for name in ("cpu", "memory", "gpu"):
        need, offered = float(trial_resources.get(name) or 0), getattr(worker, name)
        if offered is not None and need > offered * (1 + 1e-9):
            where = (f"${dict(cpu=WORKER_CPU_ENV, memory=WORKER_MEMORY_ENV, gpu=WORKER_GPU_ENV)[name]}"
                     if worker.source == "environment" else "this machine, where Ray runs embedded")
            raise SpecError(f"{field}.{name}", f"{amount(name, need)} per {unit} is more than one worker offers "
                            f"({amount(name, offered)}, {where}): no worker could ever run it")


# ---------------------------------------------------------------- the tenant's ResourceQuota


def quota_from_resourcequota(resource_quota: Any) -> Quota:
    """A :class:`Quota` from a ``kubernetes.client.V1ResourceQuota``: its ``status.hard`` (what
    the API server enforces), else ``spec.hard``; of ``limits.*``/``requests.*`` the smaller."""
    status = getattr(resource_quota, "status", None)
    spec = getattr(resource_quota, "spec", None)
    hard = (status.hard if status is not None and status.hard else None) or (spec.hard if spec is not None else None) or {}

    def smallest(keys: tuple[str, ...], parse: Any) -> Any:
        values = [parse(hard[k]) for k in keys if k in hard]
        return min(values) if values else None

    return Quota(
        cpu=smallest(_CPU_KEYS, parse_cpu),
        memory=smallest(_MEMORY_KEYS, parse_memory),
        gpu=smallest(_GPU_KEYS, lambda v: float(parse_cpu(v))),
    )


def quota_from_env(environ: Mapping[str, str] = os.environ) -> Quota | None:
    """The trial quota the head's environment states (``RAYTUNE_K8S_QUOTA_CPU``/``_MEMORY``/
    ``_GPU``), or None when none is set; a malformed value is bad input naming the variable."""
    values = {key: environ.get(env) for key, env in (("cpu", QUOTA_CPU_ENV), ("memory", QUOTA_MEMORY_ENV), ("gpu", QUOTA_GPU_ENV))}
    if not any(values.values()):
        return None
    try:
        return Quota.parse(**{k: v for k, v in values.items() if v})
    except ValueError as exc:
        raise SpecError("quota", f"{exc} (from ${QUOTA_CPU_ENV}/${QUOTA_MEMORY_ENV}/${QUOTA_GPU_ENV})") from None


def read_namespace_quota(namespace: str | None = None, name: str | None = None) -> Quota | None:
    """The tenant's trial quota: from the head's environment (:func:`quota_from_env`), else read
    through the Kubernetes API with the pod's service account where one may. None when not
    running in a pod, or when ``RAYTUNE_K8S_NAMESPACE`` is not set; a quota that cannot be read
    is reported and ignored."""
    from_env = quota_from_env()
    if from_env is not None:
        return from_env
    namespace = namespace or os.environ.get(NAMESPACE_ENV)
    name = name or os.environ.get(QUOTA_ENV) or DEFAULT_QUOTA_NAME
    if not namespace or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        return None
    try:
        resource_quota = client.CoreV1Api().read_namespaced_resource_quota(name, namespace, _request_timeout=10)
    except Exception as exc:  # RBAC, network, no such quota: run without the cap, but say so
        reason = getattr(exc, "reason", None) or exc
        say(f"warning: could not read ResourceQuota {namespace}/{name} ({reason}); parallelism is not capped by it")
        return None
    return quota_from_resourcequota(resource_quota)
