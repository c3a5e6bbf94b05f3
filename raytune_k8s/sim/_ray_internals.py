"""Every private Ray name the simulated cluster uses, in one place (``tests/test_ray_internals.py``
fails loudly when a Ray release moves one of them).

Two are left. Turning token authentication on in a process that imported Ray without it
(``cluster up`` from a shell without ``RAY_AUTH_MODE``): Ray caches its config at import, and
refreshes it with ``ray._raylet.Config.initialize`` as its own local-cluster code does. And the
main one: knowing when a local head's dashboard agent has registered. ``ray job submit``
answers "No available agent" until it has, seconds after ``ray start`` prints "Ray runtime
started" (more on a busy machine), and no public API says so: the Jobs API, the state API and
``ray status`` all answer before it. The agent's registration is a key in the GCS's internal KV
store (namespace ``dashboard``, key ``<prefix><head node id>``), read here with Ray's own GCS client.
"""

from __future__ import annotations

from typing import Any

#: (module, attribute) pairs this module relies on; the test imports each one.
PRIVATE_NAMES = (
    ("ray._raylet", "GcsClient"),
    ("ray._private.ray_constants", "KV_NAMESPACE_DASHBOARD"),
    ("ray.dashboard.consts", "DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX"),
    ("ray._raylet", "Config"),
)
#: Methods of ``GcsClient`` used here.
GCS_CLIENT_METHODS = ("get_all_node_info", "internal_kv_get")

_clients: dict[str, Any] = {}


def _gcs_client(address: str) -> Any:
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # Ray's _raylet.pyi stub lacks it

    if address not in _clients:
        _clients[address] = GcsClient(address=address)
    return _clients[address]


def forget_gcs_client(address: str) -> None:
    """A new head is starting on ``address`` (a port a dead head had, free again): a client kept
    for the old one carries its cluster id, and the new GCS refuses it (``WrongClusterID``)."""
    _clients.pop(address, None)


def job_agent_registered(gcs_address: str) -> bool:
    """Whether the head node's dashboard agent (which runs submitted jobs) has registered."""
    from ray._private.ray_constants import KV_NAMESPACE_DASHBOARD
    from ray.dashboard.consts import DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX

    gcs = _gcs_client(gcs_address)
    heads = [n for n in gcs.get_all_node_info(timeout=10).values() if n.is_head_node]
    if not heads:
        return False
    key = f"{DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX}{heads[0].node_id.hex()}".encode()
    return bool(gcs.internal_kv_get(key, KV_NAMESPACE_DASHBOARD, timeout=10))


def reload_auth_config() -> None:
    """Make an already imported Ray re-read ``RAY_AUTH_MODE`` (set by the caller)."""
    from ray._raylet import Config  # type: ignore[attr-defined]  # Ray's _raylet.pyi stub lacks it

    Config.initialize("")
