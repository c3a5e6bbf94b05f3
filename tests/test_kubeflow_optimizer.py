"""Kubeflow's unified SDK optimizer runs here with its own code: ``optimize`` with a
``CustomTrainer`` function (the SDK writes the function's source into the TrainJob's command,
which runs under ``torchrun`` with the torch runtime's ``PET_*`` environment), then the SDK's
own reads: ``wait_for_job_status``, ``get_best_results``, ``get_job``, ``list_jobs``,
``get_job_logs``, ``get_job_events``, ``delete_job``."""

from __future__ import annotations

import pytest
from kubeflow.optimizer import GridSearch, Objective, OptimizationJob, RandomSearch, Result, Search, TrialConfig
from kubeflow.trainer import CustomTrainer, TrainJobTemplate
from kubeflow.trainer.types.types import TrainJob

from raytune_k8s.kubeflow import OptimizerClient
from raytune_k8s.spec import SpecError

STEPS = 20


def train(lr):
    # Katib passes the parameters as text. A real (tiny) training: gradient descent on (w - 3)^2.
    import os

    lr, w = float(lr), 0.0
    for _ in range(20):
        w -= lr * 2 * (w - 3)
    print(f"node {os.environ.get('RANK')} of {os.environ.get('WORLD_SIZE')} (torchrun)")
    print(f"loss={(w - 3) ** 2}")


def expected_loss(lr: float) -> float:
    return 9 * (1 - 2 * lr) ** (2 * STEPS)


def test_kubeflow_optimizer_runs_a_custom_trainer_search_here(ray_connected, tmp_path):
    client = OptimizerClient(storage_path=tmp_path, address=ray_connected.address)
    name = client.optimize(
        TrainJobTemplate(trainer=CustomTrainer(func=train)),
        trial_config=TrialConfig(num_trials=4, parallel_trials=2),
        search_space={"lr": Search.loguniform(0.001, 0.1)},
        objectives=[Objective(metric="loss", direction="minimize")],
        algorithm=RandomSearch(),
    )
    job = client.wait_for_job_status(name, status={"Complete"}, polling_interval=1, timeout=300)
    assert isinstance(job, OptimizationJob) and job.status == "Complete" and len(job.trials) == 4
    assert all(t.trainjob.status == "Complete" and [s.name for s in t.trainjob.steps] == ["node-0"] for t in job.trials)
    assert job.trial_config.num_trials == 4 and job.objectives[0].metric == "loss"

    best = client.get_best_results(name)
    assert isinstance(best, Result)
    lr = float(best.parameters["lr"])
    loss = {m.name: float(m.latest) for m in best.metrics}["loss"]
    assert loss == pytest.approx(expected_loss(lr))
    # Minimizing: the best trial has the largest learning rate of the four.
    assert lr == max(float(t.parameters["lr"]) for t in job.trials)

    again = client.get_job(name)
    assert again.name == name and again.status == "Complete"
    trainjob = again.trials[0].trainjob
    assert isinstance(trainjob, TrainJob) and trainjob.num_nodes == 1
    assert trainjob.runtime.name == "torch-distributed" and trainjob.runtime.trainer.framework == "torch"
    assert [j.name for j in client.list_jobs()] == [name]

    logs = list(client.get_job_logs(name))  # the best trial's node-0
    assert f"loss={loss}" in [line.strip() for line in logs], logs
    assert any("of 1 (torchrun)" in line for line in logs), logs
    events = client.get_job_events(name)  # what Katib's controllers would have recorded, in order
    assert [(e.involved_object_kind, e.reason) for e in events[:1] + events[-1:]] == [
        ("Experiment", "ExperimentCreated"), ("Experiment", "ExperimentSucceeded")]
    trial_events = [(e.involved_object_name, e.reason) for e in events if e.involved_object_kind == "Trial"]
    assert sorted(trial_events) == sorted([(t.name, r) for t in job.trials for r in ("TrialCreated", "TrialSucceeded")])
    assert [e.event_time for e in events] == sorted(e.event_time for e in events)

    client.delete_job(name)
    assert client.list_jobs() == []


def train_ddp(lr):
    # Two nodes, one process each (torchrun, PET_* from the torch runtime): a real all-reduce.
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    total = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(total)  # 1 + 2 on every rank
    print(f"rank {dist.get_rank()} of {dist.get_world_size()}: loss={float(lr) * total.item()}")
    dist.destroy_process_group()


def test_a_multi_node_custom_trainer_runs_as_a_gang(ray_connected, tmp_path):
    client = OptimizerClient(storage_path=tmp_path, address=ray_connected.address)
    name = client.optimize(
        TrainJobTemplate(trainer=CustomTrainer(func=train_ddp, num_nodes=2, resources_per_node={"cpu": 0.5})),
        trial_config=TrialConfig(num_trials=1),  # one gang of two torch processes: enough for 2 cores
        search_space={"lr": Search.choice([0.1, 0.2])},
        algorithm=GridSearch(),
    )
    job = client.wait_for_job_status(name, polling_interval=1, timeout=300)
    [trial] = job.trials
    assert trial.parameters == {"lr": "0.1"} and trial.trainjob.num_nodes == 2 and trial.trainjob.status == "Complete"
    assert [(s.name, s.status, s.device, s.device_count) for s in trial.trainjob.steps] == [
        ("node-0", "Succeeded", "cpu", "0.5"), ("node-1", "Succeeded", "cpu", "0.5")]
    # node-0's metrics only (the primary), its sum made with node-1's rank
    assert client.get_best_results(name).metrics[0].latest == str(0.1 * 3)
    assert "rank 0 of 2: loss=0.30000000000000004" in list(client.get_job_logs(name))
    node_1 = list(client.backend.trainer_backend.get_job_logs(trial.name, step="node-1"))
    assert "rank 1 of 2: loss=0.30000000000000004" in node_1, node_1
    client.delete_job(name)


def test_an_unknown_runtime_is_one_error_before_anything_starts(tmp_path):
    client = OptimizerClient(storage_path=tmp_path)
    with pytest.raises(ValueError, match="runtime 'deepspeed-distributed' is not known here"):
        client.optimize(TrainJobTemplate(trainer=CustomTrainer(func=train), runtime="deepspeed-distributed"),
                        search_space={"lr": Search.loguniform(0.001, 0.1)})
    with pytest.raises(SpecError) as info:  # the project's checks of the Experiment the SDK built
        client.optimize(TrainJobTemplate(trainer=CustomTrainer(func=train)), search_space={"lr": Search.uniform(0.5, 0.1)})
    assert info.value.field == "spec.parameters[0].feasibleSpace" and "greater than max" in info.value.reason
    assert client.list_jobs() == []
    assert not any(tmp_path.iterdir())
