"""The steps ``run`` and ``resume`` are made of (experiment/runner.py, plan.py, fit.py), and the
Katib trial-kind readers (spec/trial_kinds/), each tested alone: no Ray session, no trial run."""

from __future__ import annotations

import copy
import types
from pathlib import Path
from typing import Any

import pytest

from raytune_k8s.experiment import fit, runner
from raytune_k8s.experiment.plan import Plan, prepare
from raytune_k8s.results.summary import SPEC_FILE
from raytune_k8s.spec import SpecError, container_trial, load_document


def _spec(name: str = "steps", **extra: Any) -> dict:
    return {
        "name": name,
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 3}]},
        "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}}],
        "parallelTrialCount": 3,
        "maxTrialCount": 6,
        "trial": {"function": "raytune_k8s.trials.witness:witness", "resources": {"cpu": 1}, "retries": 2},
        **extra,
    }


def _plan(**extra: Any) -> Plan:
    return prepare(_spec(**extra), searcher_actor=False)


PBT = {"algorithmName": "pbt", "algorithmSettings": [{"name": "n_population", "value": 5},
                                                     {"name": "truncation_threshold", "value": 0.2}]}


# ---------------------------------------------------------------- run's directory policy


def test_a_missing_or_empty_directory_is_a_new_run(tmp_path):
    assert runner._resumes_existing(tmp_path / "absent", resume_if_exists=False) is False
    (tmp_path / "empty").mkdir()
    assert runner._resumes_existing(tmp_path / "empty", resume_if_exists=True) is False


def test_an_experiment_there_resumes_only_when_asked(tmp_path):
    (tmp_path / SPEC_FILE).write_text("name: x\n")
    assert runner._resumes_existing(tmp_path, resume_if_exists=True) is True
    with pytest.raises(runner.ExperimentExistsError, match=f"'raytune-k8s resume {tmp_path}'"):
        runner._resumes_existing(tmp_path, resume_if_exists=False)


def test_a_directory_with_files_but_no_saved_spec_is_refused_even_with_resume(tmp_path):
    (tmp_path / "other.txt").write_text("")
    with pytest.raises(runner.ExperimentExistsError, match="already holds an experiment"):
        runner._resumes_existing(tmp_path, resume_if_exists=True)


def test_run_refuses_a_searcher_or_mirror_it_cannot_resume_with():
    runner._check_resumable_with(searcher=None, optuna_storage=None)
    with pytest.raises(SpecError) as err:
        runner._check_resumable_with(searcher=object(), optuna_storage=None)
    assert err.value.field == "searcher"
    with pytest.raises(SpecError) as err:
        runner._check_resumable_with(searcher=None, optuna_storage="sqlite:///x.db")
    assert err.value.field == "optuna_storage"


def test_storage_defaults_to_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RAYTUNE_K8S_STORAGE", str(tmp_path / "store"))
    assert runner._storage(None) == tmp_path / "store"
    assert runner._storage(tmp_path / "x" / ".." / "y") == (tmp_path / "y").resolve()


# ---------------------------------------------------------------- what a new run writes, and its actor


def test_the_experiment_files_are_the_spec_and_the_manifest_it_came_from(tmp_path):
    plan = _plan()
    runner._write_experiment_files(plan, tmp_path / "e")
    assert load_document(tmp_path / "e" / SPEC_FILE).spec.name == "steps"
    assert not (tmp_path / "e" / runner.KATIB_MANIFEST_FILE).exists()
    plan.source_text = "apiVersion: kubeflow.org/v1beta1\n"
    runner._write_experiment_files(plan, tmp_path / "e")
    assert (tmp_path / "e" / runner.KATIB_MANIFEST_FILE).read_text() == plan.source_text


class _Actor:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def start(self) -> None:
        self.calls.append("start")

    def close(self) -> None:
        self.calls.append("close")

    def wait_for_suggestions(self, timeout: float) -> None:
        self.calls.append(("wait", timeout))


def test_the_searcher_actor_is_started_and_closed_however_the_run_ends():
    plan = _plan()
    plan.actor = _Actor()
    with runner._searcher_actor_running(plan):
        assert plan.actor.calls == ["start"]
    assert plan.actor.calls == ["start", "close"]
    plan.actor = _Actor()
    with pytest.raises(RuntimeError), runner._searcher_actor_running(plan):
        raise RuntimeError("fit failed")
    assert plan.actor.calls == ["start", "close"]
    plan.actor = None
    with runner._searcher_actor_running(plan):  # no actor: nothing to start or close
        pass


def test_a_plan_that_does_not_fit_a_worker_closes_its_actor(monkeypatch):
    plan = _plan()
    plan.actor = _Actor()
    monkeypatch.setattr(runner, "prepare", lambda *a, **k: plan)

    def too_big(plan: Plan, address: Any) -> None:
        raise SpecError("trial.resources", "more than a worker has")

    monkeypatch.setattr(runner, "check_fits_a_worker", too_big)
    with pytest.raises(SpecError, match="more than a worker has"):
        runner._checked_plan(_spec(), None, True, None)
    assert plan.actor.calls == ["close"]


def test_the_first_suggestions_are_waited_for_only_with_an_actor():
    plan = _plan()
    assert fit.first_suggestions(plan) is None
    plan.actor = _Actor()
    wait = fit.first_suggestions(plan)
    assert wait is not None and plan.actor.calls == []
    wait()
    assert plan.actor.calls == [("wait", fit.FIRST_SUGGESTIONS_WAIT_S)]


# ---------------------------------------------------------------- the Tuner: scheduler, callbacks, configs


def test_no_early_stopping_is_queued_fifo(tmp_path):
    from raytune_k8s._tune.fifo import QueuedFIFOScheduler

    assert isinstance(fit.scheduler_for(_plan(), tmp_path), QueuedFIFOScheduler)


def test_an_early_stopping_rule_is_recorded_in_the_experiment_directory(tmp_path):
    from raytune_k8s.stopping.record import RecordingScheduler

    plan = _plan(earlyStopping={"algorithmName": "medianstop"})
    scheduler = fit.scheduler_for(plan, tmp_path)
    assert isinstance(scheduler, RecordingScheduler)
    assert scheduler.inner is plan.scheduler and scheduler.record.parent == tmp_path and scheduler.budget is None
    assert scheduler.retirement is not None  # the rules keep trial ids, not trials: finished ones may leave Tune
    asha = fit.scheduler_for(_plan(earlyStopping={"algorithmName": "asha",
                                                  "algorithmSettings": [{"name": "max_t", "value": 7}]}), tmp_path)
    assert isinstance(asha, RecordingScheduler) and asha.budget == 7


def test_pbt_schedules_the_trials_itself_unwrapped(tmp_path):
    from raytune_k8s.search.pbt import PopulationScheduler

    plan = _plan(algorithm=PBT)
    assert isinstance(plan.scheduler, PopulationScheduler)
    assert fit.scheduler_for(plan, tmp_path) is plan.scheduler


def test_the_callbacks_of_a_new_run_in_order(tmp_path):
    from ray.tune.logger import JsonLoggerCallback

    from raytune_k8s.experiment.progress import ProgressLine
    from raytune_k8s.experiment.resource_watch import ResourceWatch
    from raytune_k8s.recovery.journal import JOURNAL_FILE, ResultJournal
    from raytune_k8s.recovery.reconcile import CheckpointOfLastResult
    from raytune_k8s.reporting.mirror import OptunaMirror

    plan, control = _plan(), object()
    callbacks = fit.callbacks(plan, tmp_path, control, 2, None)
    assert [type(c) for c in callbacks[1:]] == [ResultJournal, CheckpointOfLastResult, ProgressLine, JsonLoggerCallback,
                                                ResourceWatch]
    assert callbacks[0] is control
    assert callbacks[1].path == tmp_path / JOURNAL_FILE
    assert callbacks[3].max_trials == 6 and callbacks[5].parallel == 2
    assert fit.callbacks(plan, tmp_path, control, 0, None)[5].parallel == 3  # no cap: the spec's parallelism
    mirrored = fit.callbacks(plan, tmp_path, control, 2, str(tmp_path / "optuna.log"))
    assert [type(c) for c in mirrored[1:-1]] == [type(c) for c in callbacks[1:]] and isinstance(mirrored[-1], OptunaMirror)
    assert mirrored[-1].experiment_dir == tmp_path and mirrored[-1].study_name == "steps"


def test_the_run_config(tmp_path):
    plan, control = _plan(), object()
    config = fit.run_config(plan, tmp_path, control, [control])
    assert (config.name, config.storage_path, config.stop, config.callbacks) == ("steps", str(tmp_path), control, [control])
    assert config.failure_config.max_failures == 2 and config.checkpoint_config.num_to_keep == 2 and config.verbose == 0
    assert fit.run_config(_plan(algorithm=PBT), tmp_path, control, []).checkpoint_config.num_to_keep == 4


def test_the_tune_config(tmp_path):
    plan = _plan()
    scheduler = fit.scheduler_for(plan, tmp_path)
    config = fit.tune_config(plan, scheduler, 2)
    assert (config.metric, config.mode, config.search_alg, config.scheduler) == ("accuracy", "max", plan.searcher, scheduler)
    assert (config.num_samples, config.max_concurrent_trials, config.reuse_actors) == (6, 2, True)
    assert fit.tune_config(_plan(maxTrialCount=None), scheduler, 2).num_samples == -1


def test_the_json_logger_switch_keeps_a_value_the_user_set(monkeypatch):
    monkeypatch.delenv(fit.AUTO_LOGGERS_ENV, raising=False)
    with fit._json_logger_only(True):
        assert fit.AUTO_LOGGERS_ENV in __import__("os").environ
    assert fit.AUTO_LOGGERS_ENV not in __import__("os").environ
    monkeypatch.setenv(fit.AUTO_LOGGERS_ENV, "0")
    with fit._json_logger_only(True):
        pass
    assert __import__("os").environ[fit.AUTO_LOGGERS_ENV] == "0"


# ---------------------------------------------------------------- resume's steps


def test_resume_needs_the_saved_spec(tmp_path):
    from raytune_k8s.recovery.reconcile import ResumeError

    with pytest.raises(SpecError, match=f"{SPEC_FILE} is missing"):
        runner._saved_spec(tmp_path)
    (tmp_path / SPEC_FILE).write_text("name: [\n")
    with pytest.raises(ResumeError, match="cannot be read"):
        runner._saved_spec(tmp_path)
    runner._write_experiment_files(_plan(), tmp_path)
    assert runner._saved_spec(tmp_path).name == "steps"


def test_a_resume_that_ran_nothing_leaves_no_new_experiment_state(tmp_path):
    from raytune_k8s.recovery.reconcile import ResumeError

    old = tmp_path / "experiment_state-1.json"
    old.write_text("{}")
    with pytest.raises(ResumeError), runner._no_new_state_unless_resumed(tmp_path):
        (tmp_path / "experiment_state-2.json").write_text("{}")
        raise ResumeError("not every trial is there")
    assert sorted(p.name for p in tmp_path.iterdir()) == [old.name]
    with pytest.raises(RuntimeError), runner._no_new_state_unless_resumed(tmp_path):  # it ran: the state stays
        (tmp_path / "experiment_state-3.json").write_text("{}")
        raise RuntimeError("failed later")
    assert (tmp_path / "experiment_state-3.json").exists()


def test_a_resume_keeps_the_saved_callbacks_with_the_journal_moved_and_a_guard_last(monkeypatch, tmp_path):
    from raytune_k8s._tune import internals
    from raytune_k8s.recovery.journal import JOURNAL_FILE, ResultJournal
    from raytune_k8s.recovery.reconcile import ResumeGuard
    from raytune_k8s.stopping.control import ExperimentControl

    spec = _plan().spec
    saved_control = ExperimentControl(spec.objective, None)
    journal = ResultJournal(tmp_path / "moved-from")
    run_config = types.SimpleNamespace(callbacks=[saved_control, journal])
    monkeypatch.setattr(internals, "restored_run_config", lambda tuner: run_config)
    control = runner._resumed_callbacks(object(), spec, tmp_path, {"a"}, set())
    assert control is saved_control and journal.path == tmp_path / JOURNAL_FILE
    assert run_config.callbacks[:2] == [saved_control, journal] and isinstance(run_config.callbacks[2], ResumeGuard)
    assert run_config.callbacks[2].started == {"a"}
    run_config.callbacks = None  # not one of run()'s experiments: stop rules of its own
    control = runner._resumed_callbacks(object(), spec, tmp_path, set(), set())
    assert isinstance(control, ExperimentControl) and run_config.callbacks[0] is control
    assert len(run_config.callbacks) == 2


def test_the_runner_still_exports_the_names_callers_import():
    for name in ("run", "resume", "check", "prepare", "trial_resources", "trial_resources_field", "searcher_resources",
                 "_fit_and_summarize", "ExperimentExistsError", "Plan", "default_storage"):
        assert hasattr(runner, name), name


# ---------------------------------------------------------------- Katib trial kinds


def test_each_trial_kind_has_its_reader():
    from raytune_k8s.spec import trial_kinds as tk

    assert isinstance(tk.reader_for("batch/v1", "Job"), tk.BatchJobReader)
    assert tk.reader_for("batch/v2", "Job") is tk.UNKNOWN  # a Job is batch/v1's
    for kind, reader in (("PyTorchJob", tk.PyTorchJobReader), ("TFJob", tk.TFJobReader), ("XGBoostJob", tk.XGBoostJobReader),
                         ("MPIJob", tk.MPIJobReader), ("Workflow", tk.ArgoWorkflowReader),
                         ("PipelineRun", tk.TektonPipelineRunReader), ("PaddleJob", tk.PaddleJobReader),
                         ("JAXJob", tk.JAXJobReader)):
        assert isinstance(tk.reader_for("kubeflow.org/v1", kind), reader), kind
    assert tk.reader_for("", "") is tk.UNKNOWN
    assert all(pair in r.kinds for pair, r in tk.READERS.items())


_POD = {"spec": {"containers": [{"name": "main", "command": ["python", "train.py"],
                                 "args": ["--lr=${trialParameters.lr}"]}]}}


def _template(trial_spec: dict) -> Any:
    from raytune_k8s.spec import KatibTrialTemplate

    return KatibTrialTemplate.model_validate({"primaryContainerName": "main", "trialSpec": trial_spec,
                                              "trialParameters": [{"name": "lr", "reference": "lr"}]})


def test_a_job_reader_takes_its_deadline_and_notes_what_has_no_effect():
    notes: list[str] = []
    trial = container_trial(_template({"apiVersion": "batch/v1", "kind": "Job", "spec": {
        "template": copy.deepcopy(_POD), "activeDeadlineSeconds": 30, "backoffLimit": 0}}), ["lr"], notes)
    assert (trial.kind, trial.timeout_s, trial.argv) == ("Job", 30.0, ("python", "train.py", "--lr=${trialParameters.lr}"))
    assert notes == ["trialTemplate.trialSpec.spec.backoffLimit: no effect here: a failed trial is retried only by trial.retries"]
    assert trial.resources_at == "trialTemplate.trialSpec.spec.template.spec.containers[0].resources"


def test_a_tfjob_reader_reads_every_replica_and_picks_the_primary_as_katib_does():
    trial = container_trial(_template({"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "spec": {
        "tfReplicaSpecs": {"Worker": {"replicas": 1, "template": copy.deepcopy(_POD)}}}}), ["lr"], [])
    assert trial.resources_at == "trialTemplate.trialSpec.spec.tfReplicaSpecs.Worker.template.spec.containers[0].resources"
    trial = container_trial(_template({"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "spec": {"tfReplicaSpecs": {
        "Worker": {"replicas": 2, "template": copy.deepcopy(_POD)}, "Chief": {"replicas": 1, "template": copy.deepcopy(_POD)}}}}),
        ["lr"], [])
    assert trial.gang is not None
    assert [(r.name, r.rank, r.primary) for r in trial.gang.replicas] == [("chief-0", 0, True), ("worker-0", 1, False),
                                                                          ("worker-1", 2, False)]
    assert trial.gang.success_ranks == (0,) and trial.gang.bundles() == [{"CPU": 0.5}] * 3  # Katib's default small replica
    with pytest.raises(SpecError) as err:  # a replica type without its pod is named
        container_trial(_template({"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "spec": {"tfReplicaSpecs": {
            "Chief": {"replicas": 1, "template": copy.deepcopy(_POD)}, "Worker": {"replicas": 2}}}}), ["lr"], [])
    assert err.value.field == "trialTemplate.trialSpec.spec.tfReplicaSpecs.Worker.template"


def test_a_refused_kind_says_why_after_the_spec_is_checked():
    with pytest.raises(SpecError) as err:
        container_trial(_template({"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "spec": {}}), ["lr"], [])
    assert (err.value.field, err.value.reason.split(":")[0]) == ("trialTemplate.trialSpec.kind", "MPIJob is not supported here")
    with pytest.raises(SpecError) as err:  # a spec that is not a mapping is named first, whatever the kind
        container_trial(_template({"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "spec": [1]}), ["lr"], [])
    assert err.value.field == "trialTemplate.trialSpec.spec"


def test_container_resources_fall_back_to_limits_and_a_refused_value_to_its_default():
    from raytune_k8s.spec.errors import Problems
    from raytune_k8s.spec.trial_kinds.container import read_container

    problems, notes = Problems(), []
    process = read_container(
        {"command": ["x", 1], "env": [{"name": "A", "value": 2}], "workingDir": "/w",
         "resources": {"limits": {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "-1", "ephemeral-storage": "1Gi"},
                       "requests": {"cpu": "-1"}}}, "c", problems, notes)
    argv, env, working_dir, resources = process.argv, process.env, process.working_dir, process.resources
    assert (argv, env, working_dir) == (("x", "1"), {"A": "2"}, "/w")
    assert (resources.cpu, resources.memory, resources.gpu) == (1, "1Gi", 0)  # both negatives refused: defaults
    assert problems.items == [("c.resources.requests.cpu", "must not be negative"),  # in the order of limits' keys
                              ("c.resources.limits.nvidia.com/gpu", "must not be negative")]
    assert notes == ["c.resources.limits.ephemeral-storage: no effect here (trials share the worker's disk)"]
