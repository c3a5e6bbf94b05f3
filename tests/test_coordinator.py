"""The scaling coordinator (raytune_k8s.scaling.coordinator) on the session's Ray: its lease watcher
outlives errors, each experiment's own quota bounds only its own share, and an experiment that
fails to leave still ends its lease. The coordinator object runs in this process (so an error
can be injected where it calls Ray), with real lease actors and the real autoscaler request."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import ray
import ray.autoscaler.sdk
from ray.exceptions import RayActorError

from raytune_k8s.scaling import coordinator, request
from raytune_k8s.scaling import quota as quotas
from raytune_k8s.scaling.coordinator import Lease, Membership, ScalingCoordinator, fair_shares

from .helpers import wait_for

ONE = {"CPU": 1.0}


_until = functools.partial(wait_for, interval=0.1)  # (predicate, timeout, what)


def _lease() -> Any:
    return ray.remote(Lease).options(num_cpus=0).remote()


@pytest.fixture
def no_tenant_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (quotas.QUOTA_CPU_ENV, quotas.QUOTA_MEMORY_ENV, quotas.QUOTA_GPU_ENV):
        monkeypatch.delenv(name, raising=False)


def test_lease_watcher_outlives_errors_and_still_drops_dead_drivers(ray_connected, no_tenant_quota, monkeypatch, capfd):
    class FlakyLease:
        """A lease whose first check fails with an error that is not a dead actor."""

        def __init__(self) -> None:
            self.pings = 0

        def ping(self) -> None:
            self.pings += 1
            if self.pings == 1:
                raise ValueError("the lease check broke once")

        def count(self) -> int:
            return self.pings

    flaky = ray.remote(FlakyLease).options(num_cpus=0).remote()
    first, second = _lease(), _lease()
    ray.get([flaky.count.remote(), first.ping.remote(), second.ping.remote()])
    coord = ScalingCoordinator(poll_s=0.1)
    assert coord.join("flaky", "flaky", [ONE], [flaky]) == 1
    assert coord.join("first", "first", [ONE] * 2, [first]) == 2
    assert coord.join("second", "second", [ONE] * 3, [second]) == 3
    _until(lambda: ray.get(flaky.count.remote()) >= 3, 30, "the watcher checked the flaky lease again after it failed")

    # The next autoscaler request fails once, on the watcher's own path: dropping a dead driver.
    real = ray.autoscaler.sdk.request_resources
    sent: list[Any] = []

    def fails_once(**kwargs: Any) -> None:
        if not sent:
            sent.append("failed")
            raise ConnectionError("GCS unavailable for a moment")
        sent.append(kwargs["bundles"])
        real(**kwargs)

    monkeypatch.setattr(ray.autoscaler.sdk, "request_resources", fails_once)
    ray.kill(first)
    _until(lambda: "first" in coord.state()["dropped"], 30, "the dead 'first' driver was dropped")
    _until(lambda: coord.state()["request"] == [ONE] * 4, 30, "the request that failed was set at a later poll")
    assert sent[:2] == ["failed", [ONE] * 4]

    ray.kill(second)  # the watcher still runs after both errors
    _until(lambda: "second" in coord.state()["dropped"], 30, "the dead 'second' driver was dropped")
    assert coord.state()["request"] == [ONE] and sent[-1] == [ONE]

    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("raytune-k8s scaling coordinator:")]
    assert len([line for line in lines if "the lease check broke once" in line]) == 1, err
    assert len([line for line in lines if "GCS unavailable for a moment" in line]) == 1, err
    assert all("\n" not in line for line in lines)

    ray.kill(flaky)
    _until(lambda: coord.state()["experiments"] == {}, 30, "every experiment dropped")


def test_own_quota_bounds_only_its_own_share():
    # Pure arithmetic: an experiment's own quota caps its share, the shared one caps the sum.
    assert fair_shares([[ONE] * 4, [ONE] * 4], None, [None, {"cpu": 1}]) == [4, 1]
    assert fair_shares([[ONE] * 6, [ONE] * 6], {"cpu": 6}, [None, {"cpu": 2}]) == [4, 2]
    assert fair_shares([[ONE] * 6, [ONE] * 6], {"cpu": 6}, [{"cpu": 8}, {"cpu": 8}]) == [3, 3]
    assert fair_shares([[{"CPU": 1.0, "GPU": 1.0}] * 3, [ONE] * 3], None, [{"gpu": 2, "cpu": None}, None]) == [2, 3]


def test_joining_quota_does_not_leak_to_other_experiments(ray_connected, monkeypatch):
    monkeypatch.setenv(quotas.QUOTA_CPU_ENV, "6")  # the head's tenant quota, shared by all
    monkeypatch.delenv(quotas.QUOTA_MEMORY_ENV, raising=False)
    monkeypatch.delenv(quotas.QUOTA_GPU_ENV, raising=False)
    leases = [_lease() for _ in range(3)]
    coord = ScalingCoordinator(poll_s=0.2)
    try:
        assert coord.join("big", "big", [ONE] * 6, [leases[0]]) == 6
        # A small own quota bounds the newcomer only; the tenant quota is still 6, not 2.
        assert coord.join("small", "small", [ONE] * 6, [leases[1]], {"cpu": 2, "memory": None, "gpu": None}) == 2
        state = coord.state()
        assert state["quota"] == {"cpu": 6.0, "memory": None, "gpu": None}
        assert [e["granted"] for e in state["experiments"].values()] == [4, 2]
        assert state["request"] == [ONE] * 6
        # A larger own quota does not lift the tenant's either: the 6 vCPU are shared by three.
        assert coord.join("large", "large", [ONE] * 6, [leases[2]], {"cpu": 100}) == 2
        assert [e["granted"] for e in coord.state()["experiments"].values()] == [2, 2, 2]
        assert coord.state()["request"] == [ONE] * 6
        coord.leave("big")
        assert [e["granted"] for e in coord.state()["experiments"].values()] == [2, 4]
        assert coord.state()["request"] == [ONE] * 6
    finally:
        for lease in leases:
            ray.kill(lease)
    _until(lambda: coord.state()["experiments"] == {}, 30, "every experiment dropped")
    assert coord.state()["request"] == []


def test_failed_leave_still_ends_the_lease(ray_connected, no_tenant_quota, capfd):
    membership = Membership("leave-fails", [ONE])
    with membership:
        assert membership.granted == 1
        lease = membership._lease
        assert ray.get(lease.ping.remote(), timeout=30) is None
        # The coordinator goes away, so leaving fails.
        ray.kill(ray.get_actor(coordinator.NAME, namespace=coordinator.NAMESPACE), no_restart=True)
    err = capfd.readouterr().err
    assert "warning: could not leave the scaling coordinator" in err, err
    _until(lambda: _dead(lease), 30, "the lease ended after a failed leave")  # ray.kill is asynchronous


def _dead(actor: Any) -> bool:
    try:
        ray.get(actor.ping.remote(), timeout=30)
    except RayActorError:
        return True
    return False


def test_failed_join_leaves_nothing_behind(ray_connected, no_tenant_quota):
    membership = Membership("join-fails", [ONE], {"cpu": "lots"})  # type: ignore[dict-item]
    with pytest.raises(ray.exceptions.RayTaskError, match="could not convert string to float"):
        membership.__enter__()
    _until(lambda: _dead(membership._lease), 30, "the lease ended after a failed join")
    actor = ray.get_actor(coordinator.NAME, namespace=coordinator.NAMESPACE)
    assert "join-fails" not in [e["name"] for e in ray.get(actor.state.remote())["experiments"].values()]
    with Membership("joins-after", [ONE]) as after:  # the coordinator still works for the others
        assert after.granted == 1
