"""One scaling coordinator per cluster: every live experiment's worker request, summed into the
single request the Ray autoscaler takes.

Ray keeps one cluster-wide ``request_resources`` value: two experiments that each set it would
replace each other's, and a driver killed with SIGKILL never withdraws its own. So no
experiment sets it. Each one joins the coordinator instead: a detached, named Ray actor on the
head node, created by the first experiment that needs it, that holds each experiment's bundles
(one per concurrent trial) and sets the autoscaler request to their sum.

An experiment leaves when it ends, however it ends. One whose driver is gone without leaving
(SIGKILL, a lost pod, a stopped job) is dropped: with its bundles the experiment hands over a
*lease*, a tiny actor its driver owns, which Ray destroys together with the driver; the
coordinator pings every lease each ``POLL_S`` and drops the experiments whose lease is dead.

The tenant quota (the head's ``RAYTUNE_K8S_QUOTA_*`` environment) is shared fairly
(:func:`fair_shares`): trials are granted one at a time, round robin over the experiments in the
order they joined, each time to an experiment that still wants more and whose trial still fits
what is left of the quota, until every ask is met or nothing more fits. Two experiments that
each ask for the whole quota get half of it each (the earlier one gets the odd trial).

The ``quota`` an experiment joins with is its own: it bounds that experiment's share only (its
granted trials together fit it, as well as what is left of the tenant quota), and changes
neither the tenant quota nor any other experiment's share. With no tenant quota on the head,
only each experiment's own quota (if any) bounds its share.

The lease watcher runs for the coordinator's whole life: an error while checking leases or
setting the request is logged (one line on the actor's stderr, once while it repeats at every
poll) and the check is tried again at the next poll; a request that could not be set is set
then.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

NAME = "raytune_k8s_scaling_coordinator"
NAMESPACE = "raytune_k8s"
#: Seconds between lease checks: a dead driver's workers are released this long after it dies.
POLL_S = 1.0
#: Seconds a lease may take to answer before it counts as busy (alive), not dead.
PING_TIMEOUT_S = 10.0
#: The Ray resource on the head node (Ray adds it there): the coordinator lives where the
#: autoscaler never removes a node.
HEAD_RESOURCE = "node:__internal_head__"

Bundle = dict[str, float]
#: Quota keys as :class:`raytune_k8s.scaling.quota.Quota` has them -> Ray resource names.
_QUOTA_RESOURCES = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}


QuotaMap = Mapping[str, "float | None"]


def _limits(quota: QuotaMap | None) -> dict[str, float]:
    return {_QUOTA_RESOURCES[k]: float(v) for k, v in (quota or {}).items() if v is not None and k in _QUOTA_RESOURCES}


def fair_shares(asks: Sequence[Sequence[Bundle]], quota: QuotaMap | None,
                own: Sequence[QuotaMap | None] | None = None) -> list[int]:
    """How many of its bundles each experiment gets (``asks`` in the order they joined):
    round robin, one trial at a time, within ``quota`` (the shared one: ``cpu``/``gpu``/
    ``memory``; None or a missing key: no limit) and, for experiment ``i``, within its own
    quota ``own[i]``, which bounds its share alone."""
    left = _limits(quota)
    own_left = [_limits(q) for q in own] if own is not None else [{} for _ in asks]
    granted = [0] * len(asks)
    progress = True
    while progress:
        progress = False
        for i, bundles in enumerate(asks):
            if granted[i] >= len(bundles):
                continue
            bundle = bundles[granted[i]]
            if any(bundle.get(r, 0.0) > limit[r] + 1e-9 for limit in (left, own_left[i]) for r in limit):
                continue
            for limit in (left, own_left[i]):
                for r in limit:
                    limit[r] -= bundle.get(r, 0.0)
            granted[i] += 1
            progress = True
    return granted


@dataclass
class _Experiment:
    name: str
    bundles: list[Bundle]
    lease: Any
    #: the experiment's own quota: bounds its share only (module docstring)
    quota: dict[str, float | None] | None = None
    joined: float = field(default_factory=time.time)


class ScalingCoordinator:
    """The actor (see the module docstring); use :func:`coordinator` to reach it."""

    def __init__(self, poll_s: float = POLL_S):
        self._lock = threading.Lock()
        self._experiments: dict[str, _Experiment] = {}
        # On our RayCluster the head's environment states the tenant's trial quota, shared by all.
        from .quota import quota_from_env

        env_quota = quota_from_env()
        self._quota: dict[str, float | None] | None = (
            {"cpu": env_quota.cpu, "memory": env_quota.memory, "gpu": env_quota.gpu} if env_quota else None
        )
        self._request: list[Bundle] = []
        self._dropped: list[str] = []
        threading.Thread(target=self._watch, args=(poll_s,), daemon=True).start()

    def join(self, experiment_id: str, name: str, bundles: list[Bundle], lease: list[Any],
             quota: dict[str, float | None] | None = None) -> int:
        """Add an experiment (``lease``: a one-element list holding its lease actor, so Ray
        passes the handle, not a call on it); returns how many of its bundles are requested.
        ``quota``: the experiment's own, which bounds its share alone (module docstring)."""
        with self._lock:
            self._experiments[experiment_id] = _Experiment(name, list(bundles), lease[0], dict(quota) if quota else None)
            try:
                return self._update()[experiment_id]
            except BaseException:
                del self._experiments[experiment_id]  # not joined: its bad quota must not break the others
                raise

    def leave(self, experiment_id: str) -> None:
        with self._lock:
            if self._experiments.pop(experiment_id, None) is not None:
                self._update()

    def state(self) -> dict[str, Any]:
        """What it holds: each experiment's name, bundles asked and granted and own quota, the
        request, the experiments dropped because their driver was gone, and the tenant quota."""
        with self._lock:
            shares = self._shares()
            return {
                "experiments": {i: {"name": e.name, "asked": len(e.bundles), "granted": shares[i], "quota": e.quota}
                                for i, e in self._experiments.items()},
                "request": list(self._request),
                "dropped": list(self._dropped),
                "quota": self._quota,
            }

    # ---- internals

    def _shares(self) -> dict[str, int]:
        ids = list(self._experiments)
        granted = fair_shares([self._experiments[i].bundles for i in ids], self._quota,
                              [self._experiments[i].quota for i in ids])
        return dict(zip(ids, granted))

    def _update(self) -> dict[str, int]:
        """Recompute the shares and set the autoscaler request to their sum (lock held)."""
        from ray.autoscaler.sdk import request_resources

        shares = self._shares()
        request = [b for i, n in shares.items() for b in self._experiments[i].bundles[:n]]
        if request != self._request:
            request_resources(bundles=request)
            self._request = request  # only once set: a request that failed is set at the next poll
        return shares

    def _watch(self, poll_s: float) -> None:
        """Every ``poll_s``: drop the experiments whose lease is dead. Runs for good: any error
        is logged and the check is tried again at the next poll."""
        logged: set[str] = set()  # the errors of the last poll: each is logged once while it lasts
        while True:
            time.sleep(poll_s)
            errors: list[str] = []
            try:
                self._check_leases(errors)
            except Exception as error:  # noqa: BLE001 - the watcher must outlive any error
                errors.append(f"lease check failed, watching on: {_one_line(error)}")
            for message in errors:
                if message not in logged:
                    print(f"raytune-k8s scaling coordinator: {message}", file=sys.stderr, flush=True)
            logged = set(errors)

    def _check_leases(self, errors: list[str]) -> None:
        """Drop the experiments whose lease is dead and set the request; ``errors`` gets a line
        for each lease whose check failed otherwise (kept: not known dead)."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        with self._lock:
            leases = {i: e.lease for i, e in self._experiments.items()}
        gone = []
        for experiment_id, lease in leases.items():
            try:
                ray.get(lease.ping.remote(), timeout=PING_TIMEOUT_S)
            except RayActorError:
                gone.append(experiment_id)
            except GetTimeoutError:
                pass  # busy, not dead
            except Exception as error:  # noqa: BLE001 - not known dead: kept; the other leases are checked
                errors.append(f"lease of {experiment_id} failed its check, kept: {_one_line(error)}")
        with self._lock:
            for experiment_id in gone:
                experiment = self._experiments.pop(experiment_id, None)
                if experiment is not None:
                    self._dropped.append(experiment.name)
            self._update()  # also sets a request that an earlier update failed to set


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:500]}"


class Lease:
    """An experiment's token of life: owned by its driver, so Ray destroys it with the driver."""

    def ping(self) -> None:
        return None


def coordinator() -> Any:
    """The cluster's coordinator actor, created on the head node if it is not there yet."""
    import ray

    actor = ray.remote(ScalingCoordinator).options(
        name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, resources={HEAD_RESOURCE: 0.001}, max_concurrency=8,
    )
    return actor.remote()


class Membership:
    """This experiment's place in the coordinator: ``join`` on enter, ``leave`` on exit."""

    def __init__(self, name: str, bundles: list[Bundle], quota: Mapping[str, float | None] | None = None):
        self.name = name
        self.bundles = bundles
        self.quota = dict(quota) if quota else None
        self.experiment_id = f"{name}-{uuid.uuid4().hex[:8]}"
        self.granted = 0
        self._coordinator: Any = None
        self._lease: Any = None

    def __enter__(self) -> "Membership":
        import ray

        self._coordinator = coordinator()
        self._lease = ray.remote(Lease).options(num_cpus=0, resources={HEAD_RESOURCE: 0.001}).remote()
        try:
            self.granted = ray.get(self._coordinator.join.remote(
                self.experiment_id, self.name, self.bundles, [self._lease], self.quota))
        except BaseException:
            ray.kill(self._lease)  # a join that failed half way must not keep the bundles requested
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        import sys

        import ray
        from ray.exceptions import RayError

        try:
            ray.get(self._coordinator.leave.remote(self.experiment_id), timeout=30)
        except (RayError, ConnectionError, TimeoutError) as error:
            # The cluster may be gone: nothing is left to withdraw from. Otherwise the dead
            # lease makes the coordinator drop this experiment within a second anyway.
            print(f"warning: could not leave the scaling coordinator: {error}", file=sys.stderr, flush=True)
        finally:
            # However leaving went: a driver that lives on (a notebook, a service) must not keep
            # its workers requested through a live lease.
            try:
                ray.kill(self._lease)
            except (RayError, ConnectionError, ValueError) as error:
                print(f"warning: could not end this experiment's lease: {error}", file=sys.stderr, flush=True)
