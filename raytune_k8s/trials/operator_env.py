"""The environment each replica's container gets from its job's operator, as the operators set
it (kubeflow/training-operator v1: ``pytorch/envvar.go``, ``tensorflow/tensorflow.go``,
``xgboost/xgboost.go``; kubeflow/trainer: the torch plugin), with Ray nodes' addresses where
the operators put Service names, and free ports chosen on each replica's node where they put
their default ports (23456, 2222, 9999, 29500).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from ..spec.trial_kinds import Gang, Replica


@dataclass(frozen=True)
class Endpoint:
    """Where a replica listens: its Ray node's address and a port free there."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


def replica_env(gang: Gang, replica: Replica, endpoints: list[Endpoint]) -> dict[str, str]:
    """The variables ``replica``'s main container gets (``endpoints[rank]``: each replica's)."""
    build = _BUILDERS.get(gang.framework)
    return build(gang, replica, endpoints) if build is not None else {}


def _pytorch(gang: Gang, replica: Replica, endpoints: list[Endpoint]) -> dict[str, str]:
    settings: Mapping[str, Any] = gang.settings
    total = len(gang.replicas)
    env = {"PYTHONUNBUFFERED": "1"}
    master = next((r for r in gang.replicas if r.type == "Master"), None)
    nproc = settings.get("nproc_per_node")
    elastic = settings.get("elastic")
    if master is not None:
        try:
            per_node = int(nproc) if nproc is not None else 1
        except ValueError:  # "auto", "cpu", "gpu": the operator counts 1
            per_node = 1
        ep = endpoints[master.rank]
        env.update(MASTER_ADDR=ep.ip, MASTER_PORT=str(ep.port), PET_MASTER_ADDR=ep.ip, PET_MASTER_PORT=str(ep.port),
                   WORLD_SIZE=str(total * per_node), RANK=str(replica.rank), PET_NODE_RANK=str(replica.rank))
    if elastic:
        workers = [r for r in gang.replicas if r.type == "Worker"]
        first = endpoints[workers[0].rank] if workers else endpoints[0]
        env["PET_RDZV_ENDPOINT"] = f"{elastic.get('rdzvHost') or first.ip}:{elastic.get('rdzvPort') or first.port}"
        env["PET_RDZV_BACKEND"] = str(elastic.get("rdzvBackend") or "c10d")
        low, high = elastic.get("minReplicas", len(workers)), elastic.get("maxReplicas", len(workers))
        env["PET_NNODES"] = f"{low}:{high}"
        for key, var in (("maxRestarts", "PET_MAX_RESTARTS"), ("nProcPerNode", "PET_NPROC_PER_NODE"), ("rdzvId", "PET_RDZV_ID")):
            if elastic.get(key) is not None:
                env[var] = str(elastic[key])
        if elastic.get("rdzvConf"):
            env["PET_RDZV_CONF"] = ",".join(f"{c['key']}={c['value']}" for c in elastic["rdzvConf"])
        if elastic.get("standalone"):
            env["PET_STANDALONE"] = ""
    else:
        env["PET_NNODES"] = str(total)
    if "PET_NPROC_PER_NODE" not in env:
        env["PET_NPROC_PER_NODE"] = str(nproc if nproc is not None else "auto")
    return env


def _tensorflow(gang: Gang, replica: Replica, endpoints: list[Endpoint]) -> dict[str, str]:
    # The operator sets TF_CONFIG on the container named "tensorflow", in a job of more than one replica.
    if len(gang.replicas) < 2 or replica.pod.main.name != "tensorflow":
        return {}
    cluster: dict[str, list[str]] = {}
    for r in gang.replicas:
        cluster.setdefault(r.type.lower(), []).append(str(endpoints[r.rank]))
    config = {"cluster": cluster, "task": {"type": replica.type.lower(), "index": replica.index}, "environment": "cloud"}
    return {"TF_CONFIG": json.dumps(config)}


def _xgboost(gang: Gang, replica: Replica, endpoints: list[Endpoint]) -> dict[str, str]:
    master = next(r for r in gang.replicas if r.type == "Master")
    workers = [r for r in gang.replicas if r.type == "Worker"]
    ep = endpoints[master.rank]
    env = {"MASTER_ADDR": ep.ip, "MASTER_PORT": str(ep.port), "WORLD_SIZE": str(len(gang.replicas)),
           "RANK": str(replica.rank), "PYTHONUNBUFFERED": "1"}
    if workers:
        # One port for every worker, as the operator gives it (the Worker template's port).
        env["WORKER_PORT"] = str(endpoints[workers[0].rank].port)
        env["WORKER_ADDRS"] = ",".join(endpoints[w.rank].ip for w in workers)
    return env


def _trainer_torch(gang: Gang, replica: Replica, endpoints: list[Endpoint]) -> dict[str, str]:
    first = endpoints[0]
    return {"PET_NNODES": str(len(gang.replicas)), "PET_NPROC_PER_NODE": str(gang.settings.get("num_proc_per_node", "auto")),
            "PET_NODE_RANK": str(replica.index), "PET_MASTER_ADDR": first.ip, "PET_MASTER_PORT": str(first.port)}


_BUILDERS = {"pytorch": _pytorch, "tensorflow": _tensorflow, "xgboost": _xgboost, "trainer-torch": _trainer_torch}
