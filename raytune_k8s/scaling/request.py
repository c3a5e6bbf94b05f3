"""The autoscaler request: while an experiment runs, one bundle per concurrent trial is asked of
the Ray autoscaler (so every worker pod is requested at once, not one per pending trial), through
the cluster's coordinator (:mod:`.coordinator`), and withdrawn when it ends, so idle workers go
back to zero.
"""

from __future__ import annotations

from contextlib import contextmanager
import math
from typing import Any, Iterator, Mapping

from .quota import Quota, amount, say

# ---------------------------------------------------------------- the autoscaler request


def trial_bundles(trial_resources: Mapping[str, float], parallel: int) -> list[dict[str, float]]:
    """One Ray resource bundle per concurrent trial (empty if trials need no resources)."""
    bundle = {
        key: float(trial_resources[name])
        for name, key in (("cpu", "CPU"), ("gpu", "GPU"), ("memory", "memory"))
        if trial_resources.get(name)
    }
    return [dict(bundle) for _ in range(parallel)] if bundle else []


def cluster_can_autoscale() -> bool:
    """Whether the connected Ray cluster runs an autoscaler that can add nodes.

    The check: the GCS's "autoscaler v2 enabled" flag, as ``ray.autoscaler.v2.utils.
    is_autoscaler_v2(fetch_from_server=True)`` reads it. The GCS sets it at start from
    ``RAY_enable_autoscaler_v2``, which KubeRay sets on the head of a RayCluster with
    ``autoscalerOptions.version: v2`` (ours, cluster/base/raycluster.yaml), ``ray up`` sets by
    default, and :class:`~raytune_k8s.sim.cluster.AutoscalingLocalCluster` sets. A plain
    ``ray start --head`` or an embedded ``ray.init()`` has no such flag: a fixed-size cluster.
    (A v1 autoscaler leaves no comparable mark, so a v1 cluster counts as fixed-size here: it
    still scales per pending trial, just not up front.) Fetching from the server also refreshes
    Ray's cached answer, which ``request_resources`` uses to choose between its v1 and v2 paths
    and which would otherwise still describe a cluster this process was connected to before.
    """
    from ray.autoscaler.v2.utils import is_autoscaler_v2
    from ray.exceptions import RpcError

    try:
        return bool(is_autoscaler_v2(fetch_from_server=True))
    except (RpcError, ConnectionError, TimeoutError) as exc:  # GCS unreachable: say so, scale per trial
        say(f"warning: could not ask the cluster whether it autoscales ({exc}); not requesting workers up front")
        return False


@contextmanager
def parallelism_request(bundles: list[dict[str, float]], name: str = "experiment",
                        quota: Quota | None = None, per_trial: int = 1) -> Iterator[bool]:
    """While the block runs, ask the autoscaler for ``bundles`` (one per concurrent trial) all
    at once, through the cluster's coordinator (:mod:`raytune_k8s.scaling.coordinator`), which sums the
    asks of every live experiment on the cluster and shares ``quota`` fairly between them; leave
    it at the end, however the block ends. Yields whether a request was made. On a cluster that
    cannot autoscale nothing is requested, and if the bundles need more CPUs/GPUs than it has,
    one line says how many trials will run at once (``per_trial``: bundles of one trial, a
    distributed trial's replicas)."""
    import ray

    from .coordinator import Membership

    if not bundles:
        yield False
        return
    if not cluster_can_autoscale():
        _note_fixed_capacity(bundles, ray.cluster_resources(), per_trial)
        yield False
        return
    membership = Membership(name, bundles, None if not quota else {"cpu": quota.cpu, "memory": quota.memory, "gpu": quota.gpu})
    with membership:
        if membership.granted < len(bundles):
            say(f"{name}: the tenant quota is shared with other experiments on this cluster: "
                 f"{membership.granted} of {len(bundles)} workers requested for it now")
        yield True


def _note_fixed_capacity(bundles: list[dict[str, float]], cluster: Mapping[str, float], per_trial: int = 1) -> None:
    parallel = max(1, len(bundles) // max(1, per_trial))
    for key, name in (("CPU", "cpu"), ("GPU", "gpu")):
        need = sum(b.get(key, 0.0) for b in bundles[:per_trial])
        if need <= 0:
            continue
        have = float(cluster.get(key, 0.0))
        fits = math.floor(have / need + 1e-9)
        if fits < parallel:
            say(
                f"cluster caps parallelism: {parallel} trials at once ask for {parallel} x {amount(name, need)}, "
                f"the cluster has {amount(name, have)} and does not autoscale: at most {fits} trials at once"
            )
            return
