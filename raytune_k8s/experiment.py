"""An experiment end to end: spec -> searcher, scheduler, trainable -> Tuner -> summary.

``prepare`` does every check that can fail before anything starts; ``run`` and ``resume``
connect to Ray, run (or continue) the Tuner and write ``<storage>/<name>/summary.json``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ray import tune
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from .control import ExperimentControl
from .interruption import RunOutcome, watch_for_interrupt
from .progress import ProgressLine
from .runtime import ray_session
from .scaling import Quota, effective_parallelism, parallelism_request, trial_bundles
from .search import create_search
from .search.actor import ActorSearcher
from .space import SearchSpace
from .spec import ExperimentSpec, SpecError, parse_cpu, parse_memory, parse_spec
from .stopping import create_scheduler
from .summary import SPEC_FILE, build_summary, trial_rows, write_summary
from .trials import resolve_trainable
from .warm_actors import warm_trial_actors

SpecSource = str | os.PathLike[str] | Mapping[str, Any] | ExperimentSpec


class ExperimentExistsError(RuntimeError):
    """The experiment directory already holds an experiment (resume it instead)."""


@dataclass
class Plan:
    """Everything an experiment needs, built and checked before Ray starts."""

    spec: ExperimentSpec
    searcher: Searcher
    scheduler: TrialScheduler | None
    trainable: Callable[..., Any]


def default_storage() -> Path:
    return Path(os.environ.get("RAYTUNE_K8S_STORAGE", "~/ray_results")).expanduser()


def load_spec(source: SpecSource) -> ExperimentSpec:
    """Parse and fully check a spec (algorithm, early stopping and trial included)."""
    return prepare(source).spec


def prepare(source: SpecSource, searcher: Searcher | None = None, *, searcher_actor: bool = True) -> Plan:
    spec = parse_spec(source if not isinstance(source, os.PathLike) else Path(source))
    space = SearchSpace.from_spec(spec)
    search = create_search(spec.algorithm, space, spec.objective)
    built_searcher, scheduler = search.searcher, create_scheduler(spec.early_stopping)
    if search.scheduler is not None:  # pbt steers the running trials itself
        if scheduler is not None:
            raise SpecError("earlyStopping", f"algorithm {spec.algorithm.name!r} schedules the trials itself; remove earlyStopping")
        scheduler = search.scheduler
    metrics = [spec.objective.metric, *spec.objective.additional_metrics]
    trainable = resolve_trainable(spec.trial, space.names, metrics)
    if searcher is not None:  # a Python user's own Ray Tune searcher
        searcher.set_search_properties(spec.objective.metric, spec.objective.mode, {})
        built_searcher = searcher
    if searcher_actor:
        built_searcher = ActorSearcher(built_searcher, prefetch=spec.parallel_trials, actor_options=searcher_resources(spec))
    return Plan(spec, built_searcher, scheduler, trainable)


def searcher_resources(spec: ExperimentSpec) -> dict[str, float]:
    """Ray actor options for the searcher actor (``algorithm.resources``; default 0 CPUs)."""
    res = spec.algorithm.resources
    if res is None:
        return {}
    out: dict[str, float] = {"num_cpus": parse_cpu(res.cpu)}
    if res.gpu:
        out["num_gpus"] = float(res.gpu)
    if res.memory is not None:
        out["memory"] = float(parse_memory(res.memory))
    return out


def trial_resources(spec: ExperimentSpec) -> dict[str, float]:
    res = spec.trial.resources
    out = {"cpu": parse_cpu(res.cpu), "gpu": float(res.gpu)}
    if res.memory is not None:
        out["memory"] = float(parse_memory(res.memory))
    return out


def run(
    spec: SpecSource,
    *,
    address: str | None = None,
    storage_path: str | os.PathLike[str] | None = None,
    resume_if_exists: bool = False,
    quota: Quota | Mapping[str, Any] | None = None,
    searcher: Searcher | None = None,
    searcher_actor: bool = True,
) -> dict[str, Any]:
    """Run a tuning experiment and return its summary (also written to ``summary.json``).

    The search algorithm (the spec's, or ``searcher``: any Ray Tune Searcher) runs in its own
    Ray actor unless ``searcher_actor`` is False, in which case it runs in the driver.
    """
    plan = prepare(spec, searcher, searcher_actor=searcher_actor)
    storage = Path(storage_path).expanduser().resolve() if storage_path else default_storage()
    experiment_dir = storage / plan.spec.name
    if experiment_dir.exists() and any(experiment_dir.iterdir()):
        if resume_if_exists and (experiment_dir / SPEC_FILE).exists():
            return resume(experiment_dir, address=address, quota=quota)
        raise ExperimentExistsError(
            f"{experiment_dir} already holds an experiment; continue it with "
            f"'raytune-k8s resume {experiment_dir}', or choose another name or --storage-path"
        )
    # The tenant quota (``quota``, else the namespace's ResourceQuota in a pod) caps parallelism.
    parallel = effective_parallelism(plan.spec.parallel_trials, trial_resources(plan.spec), quota)
    if isinstance(plan.searcher, ActorSearcher):
        plan.searcher.limit_prefetch(parallel)
    with ray_session(address):
        experiment_dir.mkdir(parents=True, exist_ok=True)
        (experiment_dir / SPEC_FILE).write_text(plan.spec.to_yaml())
        control = ExperimentControl(plan.spec.objective, plan.spec.max_failed_trials)
        tuner = tune.Tuner(
            tune.with_resources(plan.trainable, trial_resources(plan.spec)),
            tune_config=tune.TuneConfig(
                metric=plan.spec.objective.metric,
                mode=plan.spec.objective.mode,
                search_alg=plan.searcher,
                scheduler=plan.scheduler,
                num_samples=plan.spec.max_trials,
                max_concurrent_trials=parallel,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=plan.spec.name,
                storage_path=str(storage),
                stop=control,
                callbacks=[control, ProgressLine(plan.spec.objective, plan.spec.max_trials)],
                failure_config=tune.FailureConfig(max_failures=plan.spec.trial.retries),
                # PBT copies other trials' checkpoints: keep more than the last two (Ray's advice)
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2 if plan.spec.algorithm.name != "pbt" else 4),
                verbose=1,
            ),
        )
        try:
            return _fit_and_summarize(tuner, plan.spec, experiment_dir, parallel)
        finally:
            if isinstance(plan.searcher, ActorSearcher):
                plan.searcher.close()


def resume(
    experiment_dir: str | os.PathLike[str], *, address: str | None = None, quota: Quota | Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Continue an interrupted experiment; finished trials are kept, not run again."""
    experiment_dir = Path(experiment_dir).expanduser().resolve()
    spec_file = experiment_dir / SPEC_FILE
    if not spec_file.exists():
        raise SpecError("", f"{experiment_dir} holds no raytune-k8s experiment ({SPEC_FILE} is missing)")
    plan = prepare(spec_file)
    parallel = effective_parallelism(plan.spec.parallel_trials, trial_resources(plan.spec), quota)
    with ray_session(address):
        tuner = tune.Tuner.restore(
            str(experiment_dir),
            trainable=tune.with_resources(plan.trainable, trial_resources(plan.spec)),
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
        return _fit_and_summarize(tuner, plan.spec, experiment_dir, parallel)


def _fit_and_summarize(tuner: tune.Tuner, spec: ExperimentSpec, experiment_dir: Path, parallel: int | None = None) -> dict[str, Any]:
    start = time.monotonic()
    outcome = RunOutcome()
    try:
        # On an autoscaling cluster: ask for every trial's worker at once, withdraw at the end.
        # Idle trial actors stay warm while the searcher actor computes the next suggestion.
        slots = parallel or spec.parallel_trials
        with parallelism_request(trial_bundles(trial_resources(spec), slots)), warm_trial_actors(slots), \
                watch_for_interrupt() as outcome:
            tuner.fit()
    finally:
        # Whatever happened, record what the finished trials produced.
        rows = trial_rows(experiment_dir, spec)
        summary = build_summary(
            spec, rows, wall_s=time.monotonic() - start, experiment_dir=experiment_dir, interrupted=outcome.interrupted
        )
        write_summary(experiment_dir, summary)
    return summary
