"""The Ray names the simulated cluster relies on: the private ones, all in
``raytune_k8s.sim._ray_internals``, and the autoscaler's status fields. A Ray release that moves
one of them fails here, by name, rather than somewhere deep in a cluster test."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from raytune_k8s.sim import _ray_internals


@pytest.mark.parametrize("module, name", _ray_internals.PRIVATE_NAMES)
def test_private_ray_name_exists(module, name):
    assert hasattr(importlib.import_module(module), name), f"Ray no longer has {module}.{name}"


def test_gcs_client_methods_exist(ray_head):
    client = _ray_internals._gcs_client(ray_head.address)
    missing = [m for m in _ray_internals.GCS_CLIENT_METHODS if not callable(getattr(client, m, None))]
    assert not missing, f"Ray's GcsClient no longer has {missing}"


def test_job_agent_registration_is_read_from_a_live_head(ray_head):
    # The session's head was only handed out once this said yes; ask again, directly.
    assert _ray_internals.job_agent_registered(ray_head.address) is True


def test_autoscaler_status_fields_the_cluster_reads():
    from ray.autoscaler.v2 import schema
    from ray.autoscaler.v2.sdk import get_cluster_status  # noqa: F401

    fields = {f.name for f in dataclasses.fields(schema.ClusterStatus)}
    assert {"active_nodes", "idle_nodes", "pending_launches", "pending_nodes", "resource_demands"} <= fields
    assert "cluster_constraint_demand" in {f.name for f in dataclasses.fields(schema.ResourceDemandSummary)}
    assert {"bundle", "count"} <= {f.name for f in dataclasses.fields(schema.ResourceRequestByCount)}
    assert {"ray_node_type_name", "instance_id", "node_id"} <= {f.name for f in dataclasses.fields(schema.NodeInfo)}
    assert {"ray_node_type_name", "count"} <= {f.name for f in dataclasses.fields(schema.LaunchRequest)}


def test_only_the_internals_module_imports_private_ray():
    """Everything else in the simulated cluster stands on public Ray APIs."""
    from pathlib import Path

    sim = Path(_ray_internals.__file__).parent
    for path in sim.glob("*.py"):
        if path.name == "_ray_internals.py":
            continue
        text = path.read_text()
        assert "ray._" not in text and "_private" not in text, f"{path.name} uses a private Ray name"


def test_tune_internals_names_exist():
    """Every private Tune / Train name the driver uses (``raytune_k8s/_tune/internals.py``): fails
    by name when a Ray release moves one."""
    from ray.train import Checkpoint

    from raytune_k8s._tune import internals as ti

    assert isinstance(ti.object_cache_base(), type)
    assert getattr(ti.controller_module(), ti.CONTROLLER_CACHE_FACTORY) is ti.object_cache_base()
    registry = ti.trainable_registry()
    assert all(callable(getattr(registry, name)) for name in ("get", "contains", "register", "unregister"))
    assert ti.ANALYSIS_DATAFRAMES in vars(ti.experiment_analysis_class())
    result = ti.training_result(Checkpoint.from_directory("/tmp"), {"v": 1})
    assert result.metrics == {"v": 1}
    assert ti.load_tune_state(b'{"trial_data": []}') == {"trial_data": []}
    assert callable(getattr(ti.storage_module(), ti.STORAGE_UPLOAD))
    from ray import tune

    tuner = tune.Tuner(lambda config: None, run_config=tune.RunConfig(name="names", storage_path="/tmp/rtk8s-names"))
    assert ti.restored_run_config(tuner).name == "names"


def test_only_tune_internals_package_imports_private_ray_outside_sim():
    """One quarantined module: no other module of the package (outside ``sim/``, which has its
    own) imports a private Ray module or name."""
    import ast
    from pathlib import Path

    import raytune_k8s

    package = Path(raytune_k8s.__file__).parent
    for path in package.rglob("*.py"):
        if {"_tune", "sim"} & set(path.relative_to(package).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray":
                private = [p for p in node.module.split(".") if p.startswith("_")] + \
                          [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.relative_to(package)} imports {private} from {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not any(p.startswith("_") for p in alias.name.split(".")), f"{path.name} imports {alias.name}"


def test_the_tune_state_recovery_rewrites_has_the_fields_it_expects():
    """recovery.py rewrites the concurrency limit's saved state (``live_trials``) and prunes a
    trial's tracked checkpoints (``_checkpoint_results``): both are Tune internals."""
    from ray.train import CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.tune.search import ConcurrencyLimiter, Searcher

    state = ConcurrencyLimiter(Searcher(metric="v", mode="min"), max_concurrent=2).get_state()
    assert {"live_trials", "num_unfinished_live_trials"} <= set(state), sorted(state)
    assert isinstance(_CheckpointManager(CheckpointConfig())._checkpoint_results, list)


def test_a_new_head_on_a_dead_heads_port_gets_a_new_gcs_client(monkeypatch):
    """A kept client carries the old head's cluster id; the new GCS refuses it (WrongClusterID):
    launching a head forgets any client kept for its address."""
    from raytune_k8s.sim import cluster

    monkeypatch.setitem(_ray_internals._clients, "127.0.0.1:1", object())
    _ray_internals.forget_gcs_client("127.0.0.1:1")
    assert "127.0.0.1:1" not in _ray_internals._clients
    head = cluster.LocalRayHead.__new__(cluster.LocalRayHead)
    head.port = 1
    monkeypatch.setitem(_ray_internals._clients, head.address, object())
    monkeypatch.setattr(cluster, "use_token_auth", lambda: (_ for _ in ()).throw(RuntimeError("stop here")))
    with pytest.raises(RuntimeError, match="stop here"):
        head.launch()
    assert head.address not in _ray_internals._clients
