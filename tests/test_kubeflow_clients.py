"""Kubeflow's clients run here with their own code: Katib's ``KatibClient.tune`` example from
Katib's documentation, with only the import line changed, on the session's Ray."""

from __future__ import annotations

import json
import subprocess
import sys

import kubeflow.katib as katib
import pytest
from kubernetes.client.rest import ApiException

from raytune_k8s.kubeflow import KatibClient
from raytune_k8s.spec import SpecError


def objective(parameters):
    # Katib's documentation example: the objective prints `name=value`.
    import time
    time.sleep(0.5)
    result = 4 * int(parameters["a"]) - float(parameters["b"]) ** 2
    print(f"result={result}")


def test_katib_sdk_tune_runs_here_with_only_the_import_changed(ray_connected, tmp_path):
    parameters = {"a": katib.search.int(min=10, max=20), "b": katib.search.double(min=0.1, max=0.2),
                  "optimizer": katib.search.categorical(["sgd", "adam"])}  # Katib 0.19 sends its choices oddly: read
    client = KatibClient(storage_path=tmp_path, address=ray_connected.address)
    client.tune(name="tune-experiment", objective=objective, parameters=parameters, objective_metric_name="result",
                max_trial_count=4, parallel_trial_count=2, resources_per_trial={"cpu": "0.5"})
    # tune() returns once the experiment is created, as Katib's does; its driver runs on.
    assert client.is_experiment_created("tune-experiment")
    experiment = client.wait_for_experiment_condition("tune-experiment", polling_interval=1, timeout=300)
    assert client.is_experiment_succeeded("tune-experiment", experiment=experiment)
    best = client.get_optimal_hyperparameters("tune-experiment")
    assignments = {p.name: p.value for p in best.parameter_assignments}
    assert set(assignments) == {"a", "b", "optimizer"} and assignments["optimizer"] in ("sgd", "adam")
    metric = best.observation.metrics[0]
    assert metric.name == "result" and float(metric.latest) == pytest.approx(4 * int(assignments["a"]) - float(assignments["b"]) ** 2)
    trials = client.list_trials("tune-experiment")
    assert len(trials) == 4 and all(t.status.conditions[-1].type == "Succeeded" for t in trials)
    logs = client.get_trial_metrics(best.best_trial_name)
    assert [(m.metric.name, float(m.metric.value)) for m in logs] == [("result", float(metric.latest))]
    printed = [line for line in client.get_job_logs("tune-experiment", best.best_trial_name) if line.startswith("result=")]
    assert [float(line.split("=", 1)[1]) for line in printed] == [float(metric.latest)]  # what the trial printed
    assert [e.metadata.name for e in client.list_experiments()] == ["tune-experiment"]
    # A second process finds it by name, as Katib's API server would show it.
    other = subprocess.run([sys.executable, "-c", (
        "import sys; from raytune_k8s.kubeflow import KatibClient\n"
        "c = KatibClient(storage_path=sys.argv[1])\n"
        "print(c.get_experiment_conditions('tune-experiment')[-1].type, c.get_optimal_hyperparameters('tune-experiment').best_trial_name)"),
        str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert other.stdout.split() == ["Succeeded", best.best_trial_name], other.stderr
    summary = json.loads((tmp_path / "tune-experiment" / "summary.json").read_text())
    assert summary["best"]["params"]["a"] == int(assignments["a"])
    client.delete_experiment("tune-experiment")
    assert client.list_experiments() == []


def pushing_objective(parameters):
    # Trial code written for Katib's Push collector: Katib's own report_metrics, unchanged.
    import kubeflow.katib as katib
    for step in range(1, 3):
        katib.report_metrics({"loss": float(parameters["lr"]) / step})


def test_katibs_report_metrics_in_a_trial_on_the_embedded_ray(ray_connected, tmp_path):
    client = KatibClient(storage_path=tmp_path, address=ray_connected.address)
    client.tune(name="push-experiment", objective=pushing_objective, parameters={"lr": katib.search.double(min=0.1, max=0.9)},
                objective_metric_name="loss", objective_type="minimize", max_trial_count=2, parallel_trial_count=2,
                resources_per_trial={"cpu": "0.5"}, metrics_collector_config={"kind": "Push"})
    experiment = client.wait_for_experiment_condition("push-experiment", polling_interval=1, timeout=300)
    assert client.is_experiment_succeeded("push-experiment", experiment=experiment)
    for trial in client.list_trials("push-experiment"):
        lr = float(next(p.value for p in trial.spec.parameter_assignments if p.name == "lr"))
        pushed = [float(m.metric.value) for m in client.get_trial_metrics(trial.metadata.name)]
        assert pushed == pytest.approx([lr, lr / 2])  # both reports, through Katib's gRPC call


def test_what_cannot_run_is_one_error_before_anything_starts(tmp_path):
    client = KatibClient(storage_path=tmp_path)
    with pytest.raises(SpecError) as info:
        client.tune(name="bad", objective=objective, parameters={"a": katib.search.int(min=20, max=10)},
                    objective_metric_name="result", max_trial_count=4)
    assert info.value.field == "spec.parameters[0].feasibleSpace" and "greater than max" in info.value.reason
    with pytest.raises(ValueError, match="HuggingFace models"):
        client.tune(name="llm", model_provider_parameters=object(), dataset_provider_parameters=object(),
                    trainer_parameters=object())
    with pytest.raises(ApiException) as missing:
        client.custom_api.get_namespaced_custom_object("kubeflow.org", "v1beta1", "default", "experiments", "nope")
    assert missing.value.status == 404
    assert not any(tmp_path.iterdir())


_PUSH_WITH_KATIB = """
import kubeflow.katib as katib  # Katib's own code throughout, its namespace lookup included
for step in range(3):
    katib.report_metrics({"loss": 0.5 / (step + 1), "accuracy": 0.8})
"""


def test_katibs_report_metrics_reaches_the_push_collector(tmp_path):
    """kubeflow.katib.report_metrics, with its default DB manager address, sends its gRPC request
    to the trial's Push collector (through the proxy gRPC reads from grpc_proxy), outside a pod
    too (no namespace file here: the trial's sitecustomize answers Katib's lookup)."""
    import os

    from raytune_k8s.collectors.push import PushCollector

    collector = PushCollector(["loss", "accuracy"], tmp_path / "pushed.jsonl")
    collector.prepare()
    try:
        env = {**os.environ, **collector.env(), "KATIB_TRIAL_NAME": "push-abc"}
        assert not os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/namespace")  # not a pod
        run = subprocess.run([sys.executable, "-c", _PUSH_WITH_KATIB], env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        bare = subprocess.run([sys.executable, "-c", _PUSH_WITH_KATIB], env={**env, "PYTHONPATH": ""}, capture_output=True,
                              text=True, timeout=60)
        assert "serviceaccount/namespace" in bare.stderr  # Katib's SDK alone, outside a pod
        groups = collector.flush()
    finally:
        collector.close()
    assert [dict(group) for group in groups] == [{"loss": 0.5, "accuracy": 0.8}, {"loss": 0.25, "accuracy": 0.8},
                                                 {"loss": 0.5 / 3, "accuracy": 0.8}]


def test_on_a_cluster_the_experiment_is_a_ray_job(ray_connected, tmp_path):
    """With the cluster's dashboard address, tune()'s experiment runs as a Ray job (its driver on
    the cluster's head, not in the notebook's process tree)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = KatibClient(storage_path=tmp_path, address=ray_connected.dashboard_url)
    client.tune(name="as-a-job", objective=objective, parameters={"a": katib.search.int(min=10, max=20),
                                                                  "b": katib.search.double(min=0.1, max=0.2)},
                objective_metric_name="result", max_trial_count=2, parallel_trial_count=2, resources_per_trial={"cpu": "0.5"})
    driver = json.loads((tmp_path / ".kubeflow" / "default" / "as-a-job" / "driver.json").read_text())
    client.wait_for_experiment_condition("as-a-job", polling_interval=1, timeout=300)
    assert JobSubmissionClient(ray_connected.dashboard_url).get_job_status(driver["job_id"]) == JobStatus.SUCCEEDED
    assert len(client.list_trials("as-a-job")) == 2


_OTHER_GRPC = """
import sys
import grpc
from kubeflow.katib import katib_api_pb2 as pb, katib_api_pb2_grpc as pbg
# Another gRPC server at an address of its own: the trial's proxy passes the call through.
stub = pbg.DBManagerStub(grpc.insecure_channel(sys.argv[1]))
stub.ReportObservationLog(pb.ReportObservationLogRequest(trial_name="t", observation_log=pb.ObservationLog(
    metric_logs=[pb.MetricLog(time_stamp="", metric=pb.Metric(name="loss", value="0.125"))])), timeout=30)
"""


def test_the_trials_other_grpc_traffic_goes_where_it_was_sent(tmp_path):
    import os

    from raytune_k8s.collectors.katib_db import KatibDBStandIn

    trials, elsewhere = KatibDBStandIn(tmp_path / "trial.jsonl"), KatibDBStandIn(tmp_path / "elsewhere.jsonl")
    try:
        env = {**os.environ, **trials.env()}
        run = subprocess.run([sys.executable, "-c", _OTHER_GRPC, f"127.0.0.1:{elsewhere._grpc_port}"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
    finally:
        trials.close()
        elsewhere.close()
    assert json.loads((tmp_path / "elsewhere.jsonl").read_text())["loss"] == 0.125
    assert not (tmp_path / "trial.jsonl").exists()
    # It went through the trial's proxy (not around it), which connected it where it was sent.
    assert trials.tunnelled == [f"127.0.0.1:{elsewhere._grpc_port}"]
