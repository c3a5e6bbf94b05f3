"""Kubeflow's SDKs installed beside Ray, as scripts/setup-dev.sh installs them: the unified SDK
(``kubeflow``, from the lock) and Katib's (``kubeflow-katib``, without its dependencies, see
requirements-katib-sdk.txt). Every module of theirs that a notebook or this project touches
imports and works with the lock's protobuf, and Ray's own generated code still does."""

from __future__ import annotations

import importlib
from importlib.metadata import version

import google.protobuf


def test_protobuf_stays_the_one_ray_needs():
    assert int(google.protobuf.__version__.split(".")[0]) >= 6, google.protobuf.__version__
    importlib.import_module("google.api.annotations_pb2")  # googleapis-common-protos, which Ray's dashboard imports
    from ray.core.generated import gcs_service_pb2

    assert gcs_service_pb2.GetAllNodeInfoRequest.FromString(gcs_service_pb2.GetAllNodeInfoRequest().SerializeToString()) is not None


def test_katibs_sdk_imports_and_its_generated_grpc_code_works():
    assert version("kubeflow-katib") == "0.19.0" and version("kubeflow-training") == "1.9.0"
    import kubeflow.katib as katib
    from kubeflow.katib import KatibClient, katib_api_pb2, katib_api_pb2_grpc, models, search

    assert callable(katib.report_metrics) and callable(KatibClient.tune)
    spec = search.double(min=0.01, max=0.1)
    assert isinstance(spec, models.V1beta1ParameterSpec) and spec.feasible_space.max == "0.1"
    # Katib 0.19's own helper puts a categorical's choices in `distribution`, not `list` (it calls
    # V1beta1FeasibleSpace positionally): what its tune() sends, so what our client must read.
    assert search.categorical(["sgd", "adam"]).feasible_space.distribution == ["sgd", "adam"]
    request = katib_api_pb2.ReportObservationLogRequest(
        trial_name="t1", observation_log=katib_api_pb2.ObservationLog(metric_logs=[
            katib_api_pb2.MetricLog(time_stamp="2026-01-01T00:00:00Z", metric=katib_api_pb2.Metric(name="loss", value="0.5"))]))
    again = katib_api_pb2.ReportObservationLogRequest.FromString(request.SerializeToString())
    assert again.observation_log.metric_logs[0].metric.value == "0.5"
    assert hasattr(katib_api_pb2_grpc, "DBManagerStub")
    experiment = models.V1beta1Experiment(metadata={"name": "e"}, spec=models.V1beta1ExperimentSpec(max_trial_count=3))
    assert katib.ApiClient().sanitize_for_serialization(experiment)["spec"]["maxTrialCount"] == 3


def test_kubeflows_unified_sdk_imports_with_its_types():
    assert version("kubeflow") == "0.5.0"
    from kubeflow.optimizer import GridSearch, Objective, OptimizerClient, RandomSearch, Search, TrialConfig
    from kubeflow.trainer import CustomTrainer, TrainJobTemplate

    space = Search.loguniform(0.001, 0.1)
    assert (space.parameter_type, space.feasible_space.distribution) == ("double", "logUniform")
    assert TrialConfig().num_trials == 10 and Objective().metric
    assert all(callable(getattr(OptimizerClient, m)) for m in ("optimize", "get_job", "list_jobs", "get_best_results"))
    assert RandomSearch() is not None and GridSearch() is not None
    def train() -> None:
        pass

    assert TrainJobTemplate(trainer=CustomTrainer(func=train)).trainer.func is train
