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


#: Private Ray names used outside ``sim/`` (each guarded where it is used): recovery.py reads
#: Tune's saved state and puts a newer checkpoint back on a trial; warm_actors.py keeps idle
#: trial actors; registry_cache.py remembers the trainable look-ups; unread_dataframes.py skips
#: the analysis's DataFrames (a method of a public class: pinned below).
OUTSIDE_SIM = (("ray.train._internal.session", "_TrainingResult"), ("ray.tune.utils.object_cache", "_ObjectCache"),
               ("ray.tune.utils.serialization", "_loads_with_cloudpickle"), ("ray.tune.registry", "_global_registry"))


@pytest.mark.parametrize("module, name", OUTSIDE_SIM)
def test_private_ray_name_used_outside_sim_exists(module, name):
    """Fails loudly when a Ray release moves a name that recovery or warm actors rely on."""
    import importlib

    assert hasattr(importlib.import_module(module), name), f"{module}.{name} is gone: see recovery.py / warm_actors.py / registry_cache.py"


def test_the_analysis_method_unread_dataframes_replaces_exists():
    from ray.tune.analysis.experiment_analysis import ExperimentAnalysis

    assert "_fetch_trial_dataframes" in vars(ExperimentAnalysis), "see unread_dataframes.py"


def test_the_tune_state_recovery_rewrites_has_the_fields_it_expects():
    """recovery.py rewrites the concurrency limit's saved state (``live_trials``) and prunes a
    trial's tracked checkpoints (``_checkpoint_results``): both are Tune internals."""
    from ray.train import CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.tune.search import ConcurrencyLimiter, Searcher

    state = ConcurrencyLimiter(Searcher(metric="v", mode="min"), max_concurrent=2).get_state()
    assert {"live_trials", "num_unfinished_live_trials"} <= set(state), sorted(state)
    assert isinstance(_CheckpointManager(CheckpointConfig())._checkpoint_results, list)
