"""Katib v1beta1 Experiment manifests: read as Katib reads them, or refused with one line naming
the field. No Ray is needed to check a spec."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from raytune_k8s.cli import main
from raytune_k8s.spec import SpecError, load_document
from raytune_k8s.trials import command_trial

from .helpers import REPO

KATIB_EXAMPLES = sorted((REPO / "examples" / "katib").glob("*.yaml"))
RANDOM: dict[str, Any] = yaml.safe_load((REPO / "examples" / "katib" / "random.yaml").read_text())


def _manifest(edit=None) -> dict[str, Any]:
    doc = copy.deepcopy(RANDOM)
    if edit:
        edit(doc)
    return doc


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]


_C = "spec.trialTemplate.trialSpec.spec.template.spec.containers[0]"


def _job(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["trialTemplate"]["trialSpec"]["spec"]


def _error(doc: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_document(doc)
    return info.value


@pytest.mark.parametrize("path", KATIB_EXAMPLES, ids=[p.name for p in KATIB_EXAMPLES])
def test_our_katib_examples_validate_without_ray(path):
    code = subprocess.run(
        [sys.executable, "-c", "import sys, raytune_k8s.spec as s; s.load_document(sys.argv[1]); "
         "assert 'ray' not in sys.modules, 'validating a spec imported ray'", str(path)],
        capture_output=True, text=True,
    )
    assert code.returncode == 0, code.stderr


def test_manifest_becomes_the_spec_katib_means():
    loaded = load_document(REPO / "examples" / "katib" / "random.yaml")
    spec = loaded.spec
    assert loaded.katib_manifest
    assert (spec.name, spec.namespace) == ("katib-random", "user1")
    assert [p.space.min for p in spec.parameters] == [0.01, 0.5]  # Katib's strings are numbers
    assert spec.objective.strategy("loss") == "min"  # Katib's default for minimize
    assert spec.max_failed_trials == 3 and spec.parallel_trials == 3
    trial = command_trial(spec)
    assert trial.argv[:2] == ("python3", "/opt/pytorch-mnist/mnist.py")
    assert trial.references == {"learningRate": "lr", "momentum": "momentum"}
    from raytune_k8s.experiment.runner import trial_resources

    assert trial_resources(spec) == {"cpu": 0.5, "gpu": 0.0, "memory": float(2**30)}  # limits, as no requests


def test_katib_defaults_and_optional_fields():
    def edit(doc):
        for key in ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"):
            del doc["spec"][key]
        doc["spec"]["objective"]["type"] = "maximize"
        doc["spec"]["parameters"].append({"name": "batch", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32"]}})
        doc["spec"]["parameters"].append({"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "1"}})
    spec = load_document(_manifest(edit)).spec
    assert spec.parallel_trials == 3 and spec.max_trials is None and spec.max_failed_trials is None
    assert spec.objective.strategy("loss") == "max"
    assert spec.parameters[2].space.values == [16, 32]
    from raytune_k8s.search.space import SearchSpace

    assert SearchSpace.from_spec(spec).dimensions[3].values == (1,)  # min == max is one value, as in Katib


def test_leading_separator_is_fine_but_two_documents_are_not(tmp_path):
    text = (REPO / "examples" / "katib" / "random.yaml").read_text()
    assert text.lstrip().startswith("#") and "\n---\n" in text
    two = tmp_path / "two.yaml"
    two.write_text(text + "\n---\n" + text)
    err = _error(str(two))
    assert err.lines() == [f"{two}: the file holds 2 YAML documents; give one experiment per file"]


@pytest.mark.parametrize("edit, field, words", [
    (lambda d: d.update(apiVersion="kubeflow.org/v1alpha3"), "apiVersion", "expected 'kubeflow.org/v1beta1'"),
    (lambda d: d.update(kind="Suggestion"), "kind", "expected 'Experiment'"),
    (lambda d: d["metadata"].pop("name"), "metadata.name", "required field is missing"),
    (lambda d: d["spec"].update(parallelTrials=2), "spec.parallelTrials", "unknown field"),
    (lambda d: d["spec"]["objective"].update(metricStrategies=[{"name": "loss", "value": "mean"}]),
     "spec.objective.metricStrategies[0].value", "Input should be"),
    (lambda d: d["spec"]["trialTemplate"]["trialParameters"][0].update(reference="learning_rate"),
     "spec.trialTemplate.trialParameters[0].reference", "neither a parameter"),
    (lambda d: d["spec"]["trialTemplate"].update(primaryContainerName="main"),
     "spec.trialTemplate.primaryContainerName", "no container is named 'main'"),
    (lambda d: _container(d).update(command=["python3", "x.py", "--a=${trialParameters.batch}"]),
     "spec.trialTemplate.trialSpec.spec.template.spec.containers[0]", "${trialParameters.batch} names no trialParameter"),
    (lambda d: _container(d).update(env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a']"}}}]),
     "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "has no value here"),
    (lambda d: _container(d).update(volumeMounts=[{"name": "data", "mountPath": "/data"}]),
     "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].volumeMounts[0].name", "no volume of the pod is named 'data'"),
    (lambda d: d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"].update(volumes=[{"name": "data"}]),
     "spec.trialTemplate.trialSpec.spec.template.spec.volumes[0]", "give one source of emptyDir"),
    (lambda d: d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x"}),
     "spec.trialTemplate.trialSpec.spec.template.spec.containers[1]", "only the primary container runs here"),
    (lambda d: _container(d)["resources"]["limits"].update(cpu="nan"),
     "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].resources.limits.cpu", "not a CPU quantity"),
    (lambda d: _container(d)["resources"]["limits"].update({"google.com/tpu": 1}),
     "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].resources.limits.google.com/tpu", "not supported"),
    (lambda d: d["spec"]["trialTemplate"].update(successCondition='status.phase=="Done"'),
     "spec.trialTemplate.successCondition", "only the trial object's own"),
    (lambda d: d["spec"]["trialTemplate"].update(configMap={"configMapName": "tpl", "templatePath": "job.yaml"}, trialSpec=None),
     "spec.trialTemplate.configMap", "only reachable when the run is inside a pod"),
    (lambda d: d["spec"].update(metricsCollectorSpec={"collector": {"kind": "Custom", "customCollector": {"image": "x"}}}),
     "spec.metricsCollectorSpec.collector.kind", "Custom collectors run a sidecar"),
    (lambda d: d["spec"].update(metricsCollectorSpec={"collector": {"kind": "PrometheusMetric"}}),
     "spec.metricsCollectorSpec.collector.kind", "PrometheusMetric is not supported"),
    (lambda d: d["spec"].update(metricsCollectorSpec={"collector": {"kind": "File"}}),
     "spec.metricsCollectorSpec.source.fileSystemPath", "needs the path"),
    (lambda d: d["spec"].update(metricsCollectorSpec={"source": {"fileSystemPath": {"path": "logs/m.log", "kind": "File"}}, "collector": {"kind": "File"}}),
     "spec.metricsCollectorSpec.source.fileSystemPath.path", "absolute path"),
    (lambda d: d["spec"].update(metricsCollectorSpec={"source": {"filter": {"metricsFormat": ["([a-z]+"]}}}),
     "spec.metricsCollectorSpec.source.filter.metricsFormat[0]", "not a regular expression"),
    (lambda d: d["spec"].update(metricsCollectorSpec={"source": {"filter": {"metricsFormat": ["loss=([0-9.]+)"]}}}),
     "spec.metricsCollectorSpec.source.filter.metricsFormat[0]", "needs two groups"),
    (lambda d: d["spec"].update(resumePolicy="Sometimes"), "spec.resumePolicy", "Input should be"),
    # NaN and infinity in Katib's numbers (written as strings), and shapes Kubernetes would refuse
    (lambda d: d["spec"]["parameters"][0]["feasibleSpace"].update(min="nan"), "spec.parameters[0].feasibleSpace", "must be finite"),
    (lambda d: d["spec"]["parameters"][1]["feasibleSpace"].update(max="inf"), "spec.parameters[1].feasibleSpace", "must be finite"),
    (lambda d: d["spec"]["parameters"][0]["feasibleSpace"].update(step="nan"), "spec.parameters[0].feasibleSpace.step", "positive finite"),
    (lambda d: d["spec"]["objective"].update(goal="nan"), "spec.objective.goal", "must be a finite number"),
    (lambda d: d["spec"].update(parallelTrialCount="inf"), "spec.parallelTrialCount", "valid integer"),
    (lambda d: d["spec"].update(maxTrialCount=10**12), "spec.maxTrialCount", "less than or equal to 10000000"),
    (lambda d: _job(d).update(activeDeadlineSeconds="nan"), "spec.trialTemplate.trialSpec.spec.activeDeadlineSeconds", "positive number of seconds"),
    (lambda d: _job(d).update(activeDeadlineSeconds="ten minutes"), "spec.trialTemplate.trialSpec.spec.activeDeadlineSeconds", "positive number of seconds"),
    (lambda d: _job(d).update(activeDeadlineSeconds=-5), "spec.trialTemplate.trialSpec.spec.activeDeadlineSeconds", "positive number of seconds"),
    (lambda d: _container(d)["resources"]["limits"].update(memory="nan"), f"{_C}.resources.limits.memory", "not a memory quantity"),
    (lambda d: _container(d)["resources"]["limits"].update(cpu="inf"), f"{_C}.resources.limits.cpu", "not a finite CPU quantity"),
    (lambda d: _container(d)["resources"]["limits"].update({"nvidia.com/gpu": "inf"}), f"{_C}.resources.limits.nvidia.com/gpu", "not a finite GPU quantity"),
    (lambda d: _container(d)["resources"]["limits"].update({"nvidia.com/gpu": "-1"}), f"{_C}.resources.limits.nvidia.com/gpu", "must not be negative"),
    (lambda d: _container(d)["resources"]["limits"].update(memory="-1Gi"), f"{_C}.resources.limits.memory", "must not be negative"),
    (lambda d: _container(d)["resources"].update(requests="lots"), f"{_C}.resources.requests", "must be a mapping"),
    (lambda d: _container(d)["resources"].update(claims=[{"name": "gpu"}]), f"{_C}.resources.claims", "unknown field"),
    (lambda d: _container(d).update(command=5), f"{_C}.command", "must be a list of strings"),
    (lambda d: _container(d).update(env="LR=0.1"), f"{_C}.env", "must be a list"),
    (lambda d: _container(d).update(envFrom=[{"configMapRef": {}}]), f"{_C}.envFrom[0]", "give one secretRef or configMapRef"),
    (lambda d: d["spec"]["trialTemplate"]["trialParameters"].append({"name": "momentum", "reference": "momentum"}),
     "spec.trialTemplate.trialParameters[2].name", "duplicate trialParameter"),
    (lambda d: d["spec"]["trialTemplate"].update(failureCondition="status.phase == 'Error'"), "spec.trialTemplate.failureCondition", "only the trial object's own"),
    (lambda d: d["metadata"].update(generateName="x-"), "metadata.generateName", "not supported"),
    (lambda d: d["spec"].update(earlyStopping={"algorithmName": ""}), "spec.earlyStopping.algorithmName", "at least 1 character"),
    (lambda d: d["spec"].update(nasConfig={"graphConfig": {"numLayers": 2}, "operations": [{"operationType": "skip_connection"}]}), "spec.nasConfig", "only used by the darts and enas"),
    (lambda d: d["spec"].update(metricsCollectorSpec={"source": {"fileSystemPath": {"path": "/m", "kind": "Directory"}}, "collector": {"kind": "File"}}),
     "spec.metricsCollectorSpec.source.fileSystemPath.kind", "the File collector reads a File"),
    (lambda d: d["spec"].update(metricsCollectorSpec={"source": {"httpGet": {"port": 8080}}}), "spec.metricsCollectorSpec.source.httpGet", "not supported"),
    (lambda d: d["spec"]["trialTemplate"]["trialSpec"].update(apiVersion="batch/v2"), "spec.trialTemplate.trialSpec.kind", "not a trial kind"),
    (lambda d: _job(d).pop("template"), "spec.trialTemplate.trialSpec.spec.template", "required field is missing"),
], ids=lambda v: v if isinstance(v, str) and "." in v else None)
def test_what_cannot_be_honoured_is_one_line_naming_the_field(edit, field, words):
    err = _error(_manifest(edit))
    assert len(err.problems) == 1, err.problems
    assert err.field == field
    assert words in err.reason


TRIAL_KINDS = {
    "PyTorchJob": ("kubeflow.org/v1", {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": None}}}),
    "TFJob": ("kubeflow.org/v1", {"tfReplicaSpecs": {"Worker": {"replicas": 1, "template": None}}}),
    "XGBoostJob": ("kubeflow.org/v1", {"xgbReplicaSpecs": {"Master": {"replicas": 1, "template": None}}}),
}


@pytest.mark.parametrize("kind", list(TRIAL_KINDS))
def test_single_process_job_kinds_run_their_primary_replica(kind):
    api, body = TRIAL_KINDS[kind]
    def edit(doc):
        pod = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
        replica = next(iter(body.values()))
        next(iter(replica.values()))["template"] = pod
        doc["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": api, "kind": kind, "spec": copy.deepcopy(body)}
        next(iter(doc["spec"]["trialTemplate"]["trialSpec"]["spec"].values())).update(copy.deepcopy(replica))
    spec = load_document(_manifest(edit)).spec
    assert command_trial(spec).argv[1] == "/opt/pytorch-mnist/mnist.py"
    assert command_trial(spec).kind == kind


@pytest.mark.parametrize("kind, spec_body, field, words", [
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {"replicas": "many", "template": {"spec": {"containers": [{"name": "trainer", "command": ["x"]}]}}}}},
     "spec.trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Master.replicas", "whole number of replicas"),
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {"containers": [{"name": "trainer", "command": ["x"]}]}}},
                                            "Worker": {"replicas": float("nan")}}},
     "spec.trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Worker.replicas", "whole number of replicas"),
    ("XGBoostJob", {"xgbReplicaSpecs": {"Worker": {"replicas": 1}}}, "spec.trialTemplate.trialSpec.spec.xgbReplicaSpecs", "needs a Master replica"),
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {"containers": [{"name": "trainer", "command": ["x"]}]}}},
                                            "Worker": {"replicas": 2, "template": {}}}},
     "spec.trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Worker.template", "required field is missing"),
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Master": {"replicas": 2, "template": {"spec": {"containers": [{"name": "trainer", "command": ["x"]}]}}}}},
     "spec.trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Master.replicas", "at most one Master"),
    ("PyTorchJob", {"pytorchReplicaSpecs": {"Launcher": {"replicas": 1}}},
     "spec.trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Launcher", "not a replica type of a PyTorchJob"),
    ("MPIJob", {}, "spec.trialTemplate.trialSpec.kind", "MPIJob is not supported here"),
    ("Workflow", {}, "spec.trialTemplate.trialSpec.kind", "Argo Workflow"),
    ("PipelineRun", {}, "spec.trialTemplate.trialSpec.kind", "Tekton PipelineRun"),
    ("Deployment", {}, "spec.trialTemplate.trialSpec.kind", "not a trial kind this project can run"),
])
def test_job_kinds_that_cannot_run_are_refused_naming_the_field(kind, spec_body, field, words):
    def edit(doc):
        doc["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": "x/v1", "kind": kind, "spec": spec_body}
    err = _error(_manifest(edit))
    assert len(err.problems) == 1 and err.field == field and words in err.reason, err.problems


def test_every_problem_in_the_file_is_reported(tmp_path, capsys):
    def edit(doc):
        doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.5", "max": "0.1"}
        doc["spec"]["parameters"][1]["feasibleSpace"]["max"] = "inf"
        doc["spec"]["parallelTrialCount"] = 20
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_manifest(edit)))
    assert main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"error: {path}: spec.parallelTrialCount: 20 is greater than maxTrialCount 12",
        f"error: {path}: spec.parameters[0].feasibleSpace: min 0.5 is greater than max 0.1",
        f"error: {path}: spec.parameters[1].feasibleSpace: min and max must be finite numbers",
    ]


def test_fields_without_effect_are_noted_not_ignored(tmp_path, capsys):
    def edit(doc):
        doc["metadata"]["labels"] = {"team": "vision"}
        doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
        doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["backoffLimit"] = 2
    path = tmp_path / "noted.yaml"
    path.write_text(yaml.safe_dump(_manifest(edit)))
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    for field in ("metadata.labels", "spec.template.spec.restartPolicy", "spec.trialTemplate.trialSpec.spec.backoffLimit"):
        assert "note: " in err and field in err, err


def test_active_deadline_is_the_trial_timeout():
    def edit(doc):
        doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 600
    assert command_trial(load_document(_manifest(edit)).spec).timeout_s == 600


# ---------------------------------------------------------------- issue 25: real Katib files

_ALL_COMMENTED = """\
  objective:
    type: minimize
    goal: 0.001
    objectiveMetricName: loss
    additionalMetricNames:
      # - accuracy
    metricStrategies:
      # - {name: loss, value: min}
  algorithm:
    algorithmName: random
    algorithmSettings:
      # - {name: random_state, value: "1"}
"""


def test_a_list_with_every_item_commented_out_is_empty_as_in_katib(tmp_path):
    """YAML reads a key whose items are all commented out as null; Katib's Go slices take it as
    empty, and so do we, in a manifest and in the short format, for every list field."""
    text = (REPO / "examples" / "katib" / "random.yaml").read_text()
    head, rest = text.split("  objective:\n", 1)
    rest = rest.split("  parallelTrialCount:", 1)[1]
    path = tmp_path / "commented.yaml"
    path.write_text(head + _ALL_COMMENTED + "  parallelTrialCount:" + rest)
    assert yaml.safe_load(path.read_text())["spec"]["objective"]["additionalMetricNames"] is None
    spec = load_document(str(path)).spec
    assert spec.objective.additional_metrics == [] and spec.objective.metric_strategies == []
    assert spec.algorithm.settings == [] and spec.objective.metrics == ["loss"]

    def nulls(doc):
        doc["spec"]["trialTemplate"]["trialParameters"] = None
        doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
            "python3", "/opt/pytorch-mnist/mnist.py", "--lr=0.01"]
        doc["spec"]["earlyStopping"] = {"algorithmName": "medianstop", "algorithmSettings": None}
        doc["spec"]["metricsCollectorSpec"] = {"source": {"filter": {"metricsFormat": None}}}
    spec = load_document(_manifest(nulls)).spec
    assert spec.trial_template.trial_parameters == [] and spec.early_stopping.settings == []
    assert spec.metrics_collector.source.filter.metrics_format == []
    # nasConfig's lists too (operations may not be empty, so it is the usual error, not a type error)
    err = _error(_manifest(lambda d: d["spec"].update(nasConfig={"graphConfig": {"numLayers": 2, "inputSizes": None}, "operations": None})))
    assert err.field == "spec.nasConfig.operations" and "at least 1 item" in err.reason, err.problems
    assert "valid list" not in str(err)

    short = (REPO / "examples" / "mnist-mxnet-random.yaml").read_text()
    assert "additionalMetricNames: [Train-accuracy]" in short
    loaded = load_document(short.replace("additionalMetricNames: [Train-accuracy]", "additionalMetricNames: ", 1))
    assert loaded.spec.objective.additional_metrics == []
    err = _error({**yaml.safe_load(short), "parameters": None})
    assert (err.field, err.reason) == ("parameters", "needs at least one parameter (or a nasConfig, for neural architecture search)")


def test_a_metric_strategy_for_no_metric_of_the_objective_is_a_warning_not_an_error(tmp_path, capsys):
    """Katib ignores a metricStrategies entry naming no metric of the objective (a typo); we say so."""
    def edit(doc):
        doc["spec"]["objective"]["additionalMetricNames"] = ["accuracy"]
        doc["spec"]["objective"]["metricStrategies"] = [{"name": "loss", "value": "latest"}, {"name": "acuracy", "value": "max"}]
    loaded = load_document(_manifest(edit))
    assert loaded.spec.objective.strategy("loss") == "latest" and loaded.spec.objective.strategy("accuracy") == "latest"
    assert loaded.warnings == ["spec.objective.metricStrategies[1]: 'acuracy' is not the objective metric or an "
                               "additional metric; ignored"]
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(_manifest(edit)))
    assert main(["validate", str(path)]) == 0
    assert "warning: spec.objective.metricStrategies[1]: 'acuracy' is not the objective metric or an additional metric; " \
           "ignored\n" in capsys.readouterr().err
    short = {**yaml.safe_load((REPO / "examples" / "mnist-mxnet-random.yaml").read_text())}
    short["objective"] = {**short["objective"], "metricStrategies": [{"name": "Validation-acuracy", "value": "max"}]}
    assert load_document(short).warnings == [
        "objective.metricStrategies[0]: 'Validation-acuracy' is not the objective metric or an additional metric; ignored"]


def test_a_configmap_template_outside_a_pod_is_our_one_line_error(monkeypatch, tmp_path):
    """With KUBERNETES_SERVICE_HOST set but no service-account files (not a pod), loading the
    in-cluster configuration fails: that is our one-line error, not the client's exception."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert not Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()
    err = _error(_manifest(lambda d: d["spec"]["trialTemplate"].update(
        configMap={"configMapName": "tpl", "templatePath": "job.yaml"}, trialSpec=None)))
    assert len(err.problems) == 1 and err.field == "spec.trialTemplate.configMap", err.problems
    assert err.reason.startswith("cannot load the in-cluster Kubernetes configuration") and "\n" not in err.reason, err.reason
