"""Kubeflow Trainer OptimizationJob manifests (trainer.kubeflow.org/v1alpha1): read into the
experiment they mean, upstream's validation rules each refused with one line naming the
manifest's field, parameters reaching the trial as KUBEFLOW_TRAINER_OPT_<NAME>. No Ray is started."""

from __future__ import annotations

import ast
import copy
import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from raytune_k8s.cli import main
from raytune_k8s.results.summary import optimization_job_status
from raytune_k8s.spec import SpecError, load_document
from raytune_k8s.spec.optimization_job import EXTENSION, EXTENSION_ALGORITHMS, env_name
from raytune_k8s.trials import command_trial
from raytune_k8s.trials.command import render, trial_values

from .helpers import REPO

EXAMPLE = REPO / "examples" / "optimization-job.yaml"
JOB: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
_TRAINER = "spec.trainJobTemplate.spec.trainer"


def _job(edit=None) -> dict[str, Any]:
    doc = copy.deepcopy(JOB)
    if edit:
        edit(doc)
    return doc


def _spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]


def _trainer(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["trainJobTemplate"]["spec"]["trainer"]


def _space(doc: dict[str, Any], i: int) -> dict[str, Any]:
    return doc["spec"]["parameters"][i]["searchSpace"]


def _error(doc: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_document(doc)
    return info.value


# ---------------------------------------------------------------- reading


def test_the_example_becomes_the_experiment_it_means():
    loaded = load_document(EXAMPLE)
    spec = loaded.spec
    assert loaded.format == "Kubeflow Trainer OptimizationJob" and not loaded.katib_manifest
    assert loaded.notes == [] and loaded.warnings == []
    assert spec.name == "optimization-job-mnist"
    assert (spec.objective.type, spec.objective.metric) == ("minimize", "loss")
    assert spec.algorithm.name == "random" and spec.algorithm.settings_dict() == {"random_state": 7}
    lr, momentum = spec.parameters
    assert (lr.name, lr.type, lr.space.min, lr.space.max, lr.space.distribution) == ("lr", "double", 0.005, 0.2, "logUniform")
    assert (momentum.type, momentum.space.min, momentum.space.max, momentum.space.distribution) == ("double", 0.5, 0.95, "uniform")
    assert (spec.max_trials, spec.parallel_trials, spec.max_failed_trials) == (4, 2, None)
    assert spec.metrics_collector.collector.kind == "StdOut"
    assert spec.trial_template is not None and spec.trial_template.trial_spec is not None
    assert spec.trial_template.trial_spec["kind"] == "TrainJob"
    assert spec.trial_template.trial_spec["apiVersion"] == "trainer.kubeflow.org/v1alpha1"


def test_reading_needs_no_ray():
    code = subprocess.run(
        [sys.executable, "-c", "import sys, raytune_k8s.spec as s; s.load_document(sys.argv[1]); "
         "assert 'ray' not in sys.modules, 'reading an OptimizationJob imported ray'", str(EXAMPLE)],
        capture_output=True, text=True,
    )
    assert code.returncode == 0, code.stderr


def test_upstream_defaults_and_each_search_space():
    def minimal(doc):
        spec = _spec(doc)
        del spec["searchAlgorithm"], spec["numTrials"], spec["parallelTrials"], spec["objectives"][0]["direction"]
        spec["parameters"] = [
            {"name": "layers", "searchSpace": {"uniform": {"min": "1", "max": "4", "type": "Int"}}},
            {"name": "width", "searchSpace": {"logUniform": {"min": "16", "max": "256", "type": "Int"}}},
            {"name": "decay", "searchSpace": {"logUniform": {"min": "1e-5", "max": "1e-2"}}},
            {"name": "optimizer", "searchSpace": {"categorical": {"choices": ["sgd", "adam"]}}},
        ]

    spec = load_document(_job(minimal)).spec
    assert spec.algorithm.name == "random" and spec.algorithm.settings == []  # default: random, no seed
    assert (spec.max_trials, spec.parallel_trials, spec.objective.type) == (1, 1, "minimize")
    kinds = [(p.type, p.space.distribution, p.space.min, p.space.max, p.space.values) for p in spec.parameters]
    assert kinds == [("int", "uniform", 1, 4, None), ("int", "logUniform", 16, 256, None),
                     ("double", "logUniform", 1e-5, 1e-2, None), ("categorical", "uniform", None, None, ["sgd", "adam"])]


def test_grid_over_categorical_parameters_and_direction_maximize():
    def grid(doc):
        _spec(doc)["searchAlgorithm"] = {"grid": {}}
        _spec(doc)["objectives"] = [{"metric": "accuracy", "direction": "Maximize"}]
        _spec(doc)["parameters"] = [{"name": "lr", "searchSpace": {"categorical": {"choices": ["0.01", "0.1"]}}}]

    spec = load_document(_job(grid)).spec
    assert spec.algorithm.name == "grid" and spec.objective.type == "maximize"


def test_num_trials_is_not_capped_at_upstreams_100():
    assert load_document(_job(lambda d: _spec(d).update(numTrials=500))).spec.max_trials == 500


def test_a_negative_seed_is_taken_modulo_2_64():
    spec = load_document(_job(lambda d: _spec(d).update(searchAlgorithm={"random": {"seed": -1}}))).spec
    assert spec.algorithm.settings_dict() == {"random_state": 2**64 - 1}


def test_load_spec_and_the_python_api_take_the_dict():
    import raytune_k8s

    assert raytune_k8s.load_spec(_job()).name == "optimization-job-mnist"


# ---------------------------------------------------------------- the trial's variables


@pytest.mark.parametrize("name, variable", [("lr", "KUBEFLOW_TRAINER_OPT_LR"), ("learning_rate", "KUBEFLOW_TRAINER_OPT_LEARNING_RATE"),
                                            ("batch-size", "KUBEFLOW_TRAINER_OPT_BATCH_SIZE"), ("w.decay", "KUBEFLOW_TRAINER_OPT_W_DECAY")])
def test_variable_names_are_the_parameter_in_capitals(name, variable):
    assert env_name(name) == variable


def test_each_parameter_reaches_every_node_as_its_variable():
    def two_nodes(doc):
        _trainer(doc).update(numNodes=2, env=[{"name": "DATA", "value": "/data"}],
                             args=["--seed=$(SEED)", "--lr=$(KUBEFLOW_TRAINER_OPT_LR)", "$$(KUBEFLOW_TRAINER_OPT_LR)"])
        _trainer(doc)["env"].append({"name": "SEED", "value": "3"})

    spec = load_document(_job(two_nodes)).spec
    trial = command_trial(spec)
    assert trial is not None and trial.gang is not None and len(trial.gang.replicas) == 2
    wanted = {"KUBEFLOW_TRAINER_OPT_LR": "${trialParameters.KUBEFLOW_TRAINER_OPT_LR}",
              "KUBEFLOW_TRAINER_OPT_MOMENTUM": "${trialParameters.KUBEFLOW_TRAINER_OPT_MOMENTUM}"}
    for replica in trial.gang.replicas:
        env = dict(replica.pod.main.env)
        assert list(env) == ["DATA", "SEED", *wanted] and {k: env[k] for k in wanted} == wanted
    assert trial.references == {"KUBEFLOW_TRAINER_OPT_LR": "lr", "KUBEFLOW_TRAINER_OPT_MOMENTUM": "momentum"}
    # Kubernetes' $(VAR) in args: the parameter's value, the trainer's literal env; $$ escapes
    assert trial.argv[-3:] == ("--seed=3", "--lr=${trialParameters.KUBEFLOW_TRAINER_OPT_LR}", "$(KUBEFLOW_TRAINER_OPT_LR)")
    values = trial_values(trial, {"lr": 0.0125, "momentum": 0.9}, "optimization-job-mnist-1")
    assert render(trial.env["KUBEFLOW_TRAINER_OPT_LR"], values) == "0.0125"
    assert render(trial.argv[-2], values) == "--lr=0.0125"


def test_a_reference_to_another_variable_is_passed_as_written_with_a_note():
    loaded = load_document(_job(lambda d: _trainer(d).update(args=["--nodes=$(PET_NNODES)", "$(nproc)"])))
    trial = command_trial(loaded.spec)
    assert trial is not None and trial.argv[-2:] == ("--nodes=$(PET_NNODES)", "$(nproc)")
    assert [n.split(":")[0] for n in loaded.notes] == [f"{_TRAINER}.args[0]"]


def test_errors_inside_the_trainjob_name_the_template_fields():
    def bad(doc):
        _trainer(doc)["resourcesPerNode"] = {"limits": {"cpu": "lots"}}
        _trainer(doc)["env"] = [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}}]

    assert [f for f, _ in _error(_job(bad)).problems] == [f"{_TRAINER}.env[0].valueFrom.fieldRef.fieldPath",
                                                          f"{_TRAINER}.resourcesPerNode.limits.cpu"]


# ---------------------------------------------------------------- upstream's rules, one field each

RULES = [
    (lambda d: d.update(apiVersion="trainer.kubeflow.org/v1"), "apiVersion", "expected 'trainer.kubeflow.org/v1alpha1'"),
    (lambda d: d.update(extra=1), "extra", "unknown field"),
    (lambda d: d["metadata"].pop("name"), "metadata.name", "required field is missing"),
    (lambda d: _spec(d).update(maxFailedTrialCount=2), "spec.maxFailedTrialCount", "unknown field"),
    (lambda d: _spec(d).pop("objectives"), "spec.objectives", "required"),
    (lambda d: _spec(d)["objectives"].append(dict(_spec(d)["objectives"][0])), "spec.objectives[1].metric", "is already objective 0"),
    (lambda d: _spec(d).update(constraints=[{"metric": "loss", "min": 2, "max": 1}]), "spec.constraints[0]", "min 2.0 is greater than max 1.0"),
    (lambda d: _spec(d)["objectives"][0].update(metric="m" * 65), "spec.objectives[0].metric", "1 to 64 characters"),
    (lambda d: _spec(d)["objectives"][0].update(direction="minimize"), "spec.objectives[0].direction", "Minimize or Maximize"),
    (lambda d: _spec(d)["objectives"][0].update(goal=0.1), "spec.objectives[0].goal", "unknown field"),
    (lambda d: _spec(d).update(searchAlgorithm={}), "spec.searchAlgorithm", "exactly one of random, grid"),
    (lambda d: _spec(d).update(searchAlgorithm={"random": {}, "grid": {}}), "spec.searchAlgorithm", "exactly one of random, grid"),
    (lambda d: _spec(d).update(searchAlgorithm={"bayesian": {}}), "spec.searchAlgorithm.bayesian", "unknown field"),
    (lambda d: _spec(d).update(searchAlgorithm={"random": {"seed": "7"}}), "spec.searchAlgorithm.random.seed", "64-bit integer"),
    (lambda d: _spec(d).update(searchAlgorithm={"grid": {"step": 1}}, parameters=[
        {"name": "lr", "searchSpace": {"categorical": {"choices": ["0.1"]}}}]), "spec.searchAlgorithm.grid", "takes no fields"),
    (lambda d: (_spec(d).update(searchAlgorithm={"grid": {}}), _spec(d)["parameters"].pop(0)),
     "spec.parameters[0].searchSpace.uniform", "Grid search requires all parameters to be Categorical"),
    (lambda d: _spec(d).pop("parameters"), "spec.parameters", "at least one parameter"),
    (lambda d: _spec(d).update(parameters=[{"name": f"p{i}", "searchSpace": {"categorical": {"choices": ["a"]}}} for i in range(101)]),
     "spec.parameters", "at most 100"),
    (lambda d: _spec(d)["parameters"][1].update(name="lr"), "spec.parameters[1].name", "duplicate parameter name 'lr'"),
    (lambda d: _spec(d)["parameters"][1].update(name="LR"), "spec.parameters[1].name", "both reach the trial as KUBEFLOW_TRAINER_OPT_LR"),
    (lambda d: _spec(d)["parameters"][1].update(name="x" * 65), "spec.parameters[1].name", "1 to 64 characters"),
    (lambda d: _space(d, 1).update(categorical={"choices": ["a"]}), "spec.parameters[1].searchSpace",
     "exactly one of uniform, logUniform, categorical"),
    (lambda d: _space(d, 1).update(normal={}), "spec.parameters[1].searchSpace.normal", "unknown field"),
    (lambda d: _space(d, 1)["uniform"].update(min=0.5), "spec.parameters[1].searchSpace.uniform.min", "must be a string"),
    (lambda d: _space(d, 1)["uniform"].update(max=".9"), "spec.parameters[1].searchSpace.uniform.max", "Double"),
    (lambda d: _space(d, 1)["uniform"].pop("max"), "spec.parameters[1].searchSpace.uniform.max", "required"),
    (lambda d: _space(d, 1)["uniform"].update(min="0.95"), "spec.parameters[1].searchSpace.uniform", "min must be strictly less than max"),
    (lambda d: _space(d, 1)["uniform"].update(type="float"), "spec.parameters[1].searchSpace.uniform.type", "Int or Float"),
    (lambda d: _space(d, 1).update(uniform={"min": "1", "max": "2.5", "type": "Int"}), "spec.parameters[1].searchSpace.uniform.max",
     "whole number"),
    (lambda d: _space(d, 0)["logUniform"].update(min="0"), "spec.parameters[0].searchSpace.logUniform",
     "min must be strictly greater than 0"),
    (lambda d: _space(d, 0)["logUniform"].update(max="0.001"), "spec.parameters[0].searchSpace.logUniform",
     "min must be strictly less than max"),
    (lambda d: _space(d, 1).update(uniform=None, categorical={"choices": []}), "spec.parameters[1].searchSpace.categorical.choices",
     "1 or more strings"),
    (lambda d: _space(d, 1).update(uniform=None, categorical={"choices": [16, "32"]}),
     "spec.parameters[1].searchSpace.categorical.choices[0]", 'write "16" in quotes'),
    (lambda d: _space(d, 1).update(uniform=None, categorical={"choices": ["a", "a"]}),
     "spec.parameters[1].searchSpace.categorical.choices", "distinct"),
    (lambda d: _space(d, 1).update(uniform=None, categorical={"choices": ["c" * 65]}),
     "spec.parameters[1].searchSpace.categorical.choices[0]", "at most 64 characters"),
    (lambda d: _spec(d).update(numTrials=0), "spec.numTrials", "at least 1"),
    (lambda d: _spec(d).update(parallelTrials=101, numTrials=200), "spec.parallelTrials", "from 1 to 100"),
    (lambda d: _spec(d).update(parallelTrials=5), "spec.parallelTrials", "parallelTrials cannot exceed numTrials (5 > 4)"),
    (lambda d: _spec(d).pop("trainJobTemplate"), "spec.trainJobTemplate", "required"),
    (lambda d: _spec(d)["trainJobTemplate"].update(metadata={"name": "trial"}), "spec.trainJobTemplate.metadata",
     "name and namespace cannot be set in a template"),
    (lambda d: _trainer(d)["args"].append("--lr=${trialParameters.lr}"), f"{_TRAINER}.args[2]", "KUBEFLOW_TRAINER_OPT_<NAME> variables"),
    (lambda d: _trainer(d).update(env=[{"name": "KUBEFLOW_TRAINER_OPT_LR", "value": "0.1"}]), f"{_TRAINER}.env[0].name",
     "set for parameter 'lr' by the OptimizationJob"),
    (lambda d: _trainer(d).update(numNodes=0), f"{_TRAINER}.numNodes", "at least 1"),
    (lambda d: _spec(d)["trainJobTemplate"]["spec"]["runtimeRef"].update(name="deepspeed-distributed"),
     "spec.trainJobTemplate.spec.runtimeRef.name", "not known here"),
    (lambda d: d["metadata"].update(name="Not_A_Name"), "metadata.name", "a Kubernetes name"),
    (lambda d: _spec(d).update(searchAlgorithm={EXTENSION: {"name": "hillclimb"}}), f"spec.searchAlgorithm.{EXTENSION}.name",
     "unknown algorithm 'hillclimb'"),
    (lambda d: _spec(d).update(searchAlgorithm={EXTENSION: {"name": "grid"}}), f"spec.searchAlgorithm.{EXTENSION}.name",
     "write searchAlgorithm.grid"),
    (lambda d: _spec(d).update(searchAlgorithm={EXTENSION: {"name": "darts"}}), f"spec.searchAlgorithm.{EXTENSION}.name", "nasConfig"),
    (lambda d: _spec(d).update(searchAlgorithm={EXTENSION: {"name": "tpe", "settings": {"gamma": [1]}}}),
     f"spec.searchAlgorithm.{EXTENSION}.settings.gamma", "a number, a string or a boolean"),
]


@pytest.mark.parametrize("edit, field, reason", RULES, ids=[f"{i}-{r[1]}" for i, r in enumerate(RULES)])
def test_each_rule_is_one_error_naming_the_manifest_field(edit, field, reason):
    problems = _error(_job(edit)).problems
    assert len(problems) == 1, problems
    assert problems[0][0] == field and reason in problems[0][1], problems


# ---------------------------------------------------------------- our extension: the other algorithms


def test_the_extension_runs_another_algorithm_with_its_settings():
    doc = _job(lambda d: _spec(d).update(searchAlgorithm={EXTENSION: {"name": "tpe", "settings": {"n_startup_trials": 2}}}))
    algorithm = load_document(doc).spec.algorithm
    assert algorithm.name == "tpe" and algorithm.settings_dict() == {"n_startup_trials": 2}


def test_the_extension_names_every_algorithm_of_the_registry_but_upstreams_and_nas():
    tree = ast.parse((REPO / "raytune_k8s" / "search" / "__init__.py").read_text())
    registry = next(node.value for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
                    and getattr(node.target, "id", None) == "ALGORITHMS")
    assert isinstance(registry, ast.Dict)
    names = {k.value for k in registry.keys if isinstance(k, ast.Constant)}
    assert set(EXTENSION_ALGORITHMS) == names - {"random", "grid", "darts", "enas"}


# ---------------------------------------------------------------- the command line, and results


def test_validate_accepts_the_example(capsys):
    assert main(["validate", str(EXAMPLE)]) == 0
    out = capsys.readouterr()
    assert "ok (Kubeflow Trainer OptimizationJob optimization-job-mnist: random, 2 parameters, 4 trials, 2 in parallel)" in out.out
    assert "warning:" not in out.err and "note:" not in out.err


def test_validate_refuses_a_bad_job_with_exit_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_job(lambda d: _space(d, 1)["uniform"].update(min="0.99"))))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {path}: spec.parameters[1].searchSpace.uniform: min must be strictly less than max"]


def _summary(status: str, reason: str) -> dict[str, Any]:
    best = {"bestTrialName": "optimization-job-mnist-00001", "observation": {"metrics": []},
            "parameterAssignments": [{"name": "lr", "value": "0.0125"}, {"name": "momentum", "value": "0.9"}]}
    rows = [{"name": "optimization-job-mnist-00001", "status": "Succeeded"}, {"name": "optimization-job-mnist-00002", "status": "Failed"}]
    return {"status": status, "reason": reason, "trial_table": rows, "currentOptimalTrial": best, "trials": 1}


def test_results_print_the_optimization_job_status(tmp_path, capsys):
    (tmp_path / "summary.json").write_text(json.dumps(_summary("Succeeded", "ExperimentMaxTrialsReached")))
    assert main(["results", str(tmp_path), "--optimization-job"]) == 0
    status = yaml.safe_load(capsys.readouterr().out)["status"]
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Created", "True", "OptimizationJobCreated"), ("Complete", "True", "MaxTrialsReached")]
    assert status["result"] == {"trainJobName": "optimization-job-mnist-00001",
                                "parameters": [{"name": "lr", "value": "0.0125"}, {"name": "momentum", "value": "0.9"}]}


def test_a_failed_or_interrupted_run_has_its_own_condition():
    failed = optimization_job_status(_summary("Failed", "ExperimentNoTrialSucceeded"))["conditions"][-1]
    assert (failed["type"], failed["status"], failed["reason"]) == ("Failed", "True", "NoTrialSucceeded")
    stopped = optimization_job_status({**_summary("Interrupted", "Interrupted"), "currentOptimalTrial": None})
    assert (stopped["conditions"][-1]["type"], stopped["conditions"][-1]["status"]) == ("Complete", "False")
    assert "result" not in stopped
