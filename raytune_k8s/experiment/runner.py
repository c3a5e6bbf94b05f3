"""An experiment end to end: spec -> searcher, scheduler, trainable -> Tuner -> summary.

``prepare`` does every check that can fail before anything starts; ``run`` and ``resume``
connect to Ray, run (or continue) the Tuner and write ``<storage>/<name>/summary.json``.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from ..spec import ExperimentSpec, LoadedSpec, SpecError, load_document, parse_count, parse_cpu, parse_memory

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import Searcher

    from ..scaling.quota import Quota

SpecSource = str | os.PathLike[str] | Mapping[str, Any] | ExperimentSpec
KATIB_MANIFEST_FILE = "katib-experiment.yaml"
AUTO_LOGGERS_ENV = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
#: How long ``run`` waits before ``fit()`` for the searcher actor's first suggestions (Tune,
#: finding none and no trial running, would sleep a whole second between asks).
FIRST_SUGGESTIONS_WAIT_S = 10.0


class ExperimentExistsError(RuntimeError):
    """The experiment directory already holds an experiment (resume it instead)."""


@dataclass
class Plan:
    """Everything an experiment needs, built and checked before Ray starts."""

    spec: ExperimentSpec
    searcher: "Searcher"
    scheduler: "TrialScheduler | None"
    trainable: Callable[..., Any]
    actor: Any = None  # the ActorSearcher inside ``searcher``, if any
    notes: list[str] = field(default_factory=list)
    source_text: str | None = None
    katib_manifest: bool = False


def default_storage() -> Path:
    return Path(os.environ.get("RAYTUNE_K8S_STORAGE", "~/ray_results")).expanduser()


def check(source: SpecSource) -> LoadedSpec:
    """Parse and fully check a spec, algorithm, early stopping and trial included."""
    return _prepare(source, None, searcher_actor=False)[0]


def prepare(source: SpecSource, searcher: "Searcher | None" = None, *, searcher_actor: bool = True) -> Plan:
    return _prepare(source, searcher, searcher_actor=searcher_actor)[1]


def _prepare(source: SpecSource, searcher: "Searcher | None", *, searcher_actor: bool) -> tuple[LoadedSpec, Plan]:
    from ..search import create_search
    from ..search.space import SearchSpace
    from ..stopping.rules import create_scheduler
    from ..trials import check_builtin_parameters, resolve_trainable
    from ..trials.katib_programs import stand_ins_used

    loaded = load_document(Path(source) if isinstance(source, os.PathLike) else source)
    spec = loaded.spec
    try:
        space = SearchSpace.from_spec(spec)
        search = create_search(spec.algorithm, space, spec.objective, spec.nas_config, parallel_trials=spec.parallel_trials)
        loaded.notes.extend(search.notes)
        built_searcher, scheduler = search.searcher, create_scheduler(spec.early_stopping)
        if search.scheduler is not None:  # pbt steers the running trials itself
            if scheduler is not None:
                raise SpecError("earlyStopping", f"algorithm {spec.algorithm.name!r} schedules the trials itself; remove earlyStopping")
            scheduler = search.scheduler
        loaded.warnings.extend(check_builtin_parameters(spec))
        trainable = resolve_trainable(spec)
    except SpecError as exc:
        if loaded.katib_manifest:
            from ..spec.loading import manifest_path

            exc = SpecError.of([(manifest_path(f), r) for f, r in exc.problems])
        raise exc.at(loaded.origin) from None
    notes = list(loaded.notes) + [f"warning: {w}" for w in loaded.warnings]
    from ..search.pbt import PopulationScheduler
    from ..trials import command_trial
    from ..trials.command import command_trainable

    command = command_trial(spec)
    if command is not None and isinstance(scheduler, PopulationScheduler):  # Katib's PBT for commands: segments
        command = scheduler.for_command_trials(command, spec.max_trials)
        trainable = command_trainable(command)
        if not command.segments.mentioned_in(command):
            notes.append(f"pbt: the trial command does not mention suggestion_trial_dir {scheduler.suggestion_trial_dir}, "
                         "so its process gets no checkpoint directory and exploits copy nothing")
    if command is not None and not isinstance(command.argv, str):
        for path in stand_ins_used(list(command.argv)):
            notes.append(f"{path} is not on this machine: trials run raytune-k8s's stand-in program for it "
                         "(same flags and metric output, offline MNIST)")
    if searcher is not None:  # a Python user's own Ray Tune searcher
        searcher.set_search_properties(spec.objective.metric, spec.objective.mode, {})
        built_searcher = searcher
    actor = None
    if searcher_actor:
        from ..search.actor.driver import ActorSearcher

        built_searcher = actor = ActorSearcher(built_searcher, prefetch=spec.parallel_trials, actor_options=searcher_resources(spec),
                                               first_here=searcher is None)  # a user's searcher may be slow to start
    from ..search.strategy import ObjectiveStrategy

    built_searcher = ObjectiveStrategy(built_searcher, spec.objective.metric, spec.objective.strategy(spec.objective.metric))
    source_text = Path(loaded.origin).read_text() if loaded.origin and loaded.katib_manifest else None
    return loaded, Plan(spec, built_searcher, scheduler, trainable, actor, notes, source_text, loaded.katib_manifest)


def searcher_resources(spec: ExperimentSpec) -> dict[str, float]:
    """Ray actor options for the searcher actor (``algorithm.resources``; default 0 CPUs)."""
    res = spec.algorithm.resources
    if res is None:
        return {}
    out: dict[str, float] = {"num_cpus": parse_cpu(res.cpu)}
    if parse_count(res.gpu):
        out["num_gpus"] = parse_count(res.gpu)
    if res.memory is not None:
        out["memory"] = float(parse_memory(res.memory))
    return out


def trial_resources(spec: ExperimentSpec) -> dict[str, float]:
    """What one trial asks Ray for: the shorthand's resources, or the primary container's."""
    if spec.trial_template is not None:
        from ..spec import container_trial

        res = container_trial(spec.trial_template, None, []).resources
    else:
        assert spec.trial is not None
        res = spec.trial.resources
    out = {"cpu": parse_cpu(res.cpu), "gpu": parse_count(res.gpu)}
    if res.memory is not None:
        out["memory"] = float(parse_memory(res.memory))
    return out


def trial_resources_field(spec: ExperimentSpec, katib_manifest: bool = False) -> str:
    """Where a trial's resources are set in the file, for errors about them."""
    if spec.trial_template is None:
        return "trial.resources"
    from ..spec import container_trial
    from ..spec.loading import manifest_path

    at = container_trial(spec.trial_template, None, []).resources_at
    return manifest_path(at) if katib_manifest else at


def _check_fits_a_worker(plan: Plan, address: str | None) -> None:
    """Bad input (SpecError) when one trial asks for more than one worker offers."""
    from ..scaling.quota import check_fits_worker, known_worker_size

    field = trial_resources_field(plan.spec, plan.katib_manifest)
    check_fits_worker(trial_resources(plan.spec), known_worker_size(address), field)


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(note if note.startswith("warning: ") else f"note: {note}", file=sys.stderr)


def run(
    spec: SpecSource,
    *,
    address: str | None = None,
    storage_path: str | os.PathLike[str] | None = None,
    resume_if_exists: bool = False,
    quota: "Quota | Mapping[str, Any] | None" = None,
    searcher: "Searcher | None" = None,
    searcher_actor: bool = True,
    report: bool = True,
    optuna_storage: str | None = None,
) -> dict[str, Any]:
    """Run a tuning experiment and return its summary (also written to ``summary.json``).

    ``spec`` is a file (this project's format or a Katib v1beta1 Experiment manifest), a YAML
    string, a dict or an :class:`ExperimentSpec`. The search algorithm (the spec's, or
    ``searcher``: any Ray Tune Searcher) runs in its own Ray actor unless ``searcher_actor`` is
    False, in which case it runs in the driver. ``report`` writes ``report.html`` at the end;
    ``optuna_storage`` (a JournalFileStorage path or an RDB URL) mirrors the trials into an
    Optuna study while they run.
    """
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from ..reporting import after_run, live_callbacks

    from ..stopping.control import ExperimentControl
    from .._tune.fifo import QueuedFIFOScheduler
    from ..files import write_atomic
    from ..recovery.journal import ResultJournal
    from ..recovery.reconcile import CheckpointOfLastResult
    from .progress import ProgressLine
    from .resource_watch import ResourceWatch
    from .runtime import quiet_ray_logs, ray_session
    from ..scaling.quota import effective_parallelism
    from ..results.summary import SPEC_FILE

    plan = prepare(spec, searcher, searcher_actor=searcher_actor)
    try:
        _check_fits_a_worker(plan, address)
    except SpecError:
        if plan.actor is not None:
            plan.actor.close()
        raise
    _print_notes(plan.notes)
    storage = Path(storage_path).expanduser().resolve() if storage_path else default_storage()
    experiment_dir = storage / plan.spec.name
    if experiment_dir.exists() and any(experiment_dir.iterdir()):
        if resume_if_exists and (experiment_dir / SPEC_FILE).exists():
            if plan.actor is not None:
                plan.actor.close()
            _check_resumable_with(searcher=searcher, optuna_storage=optuna_storage)
            return resume(experiment_dir, address=address, quota=quota, report=report)
        raise ExperimentExistsError(
            f"{experiment_dir} already holds an experiment; continue it with "
            f"'raytune-k8s resume {experiment_dir}', or choose another name or --storage-path"
        )
    # The tenant quota (``quota``, else the namespace's ResourceQuota in a pod) caps parallelism.
    parallel = effective_parallelism(plan.spec.parallel_trials, trial_resources(plan.spec), quota)
    if plan.actor is not None:
        plan.actor.limit_prefetch(parallel)
    with quiet_ray_logs(), ray_session(address):
        try:
            if plan.actor is not None:
                plan.actor.start()  # its worker process starts while the Tuner is built
            experiment_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(experiment_dir / SPEC_FILE, plan.spec.to_yaml())  # a resume reads it
            if plan.source_text is not None:
                (experiment_dir / KATIB_MANIFEST_FILE).write_text(plan.source_text)
            control = ExperimentControl(plan.spec.objective, plan.spec.max_failed_trials)
            scheduler = plan.scheduler if plan.scheduler is not None else QueuedFIFOScheduler()
            if plan.scheduler is not None and plan.spec.early_stopping is not None:
                from ..stopping.record import RecordingScheduler
                from ..stopping.rules import rule_budget

                scheduler = RecordingScheduler(plan.scheduler, experiment_dir, rule_budget(plan.spec.early_stopping))
            retries = plan.spec.trial.retries if plan.spec.trial is not None else 0
            tuner = tune.Tuner(
                tune.with_resources(plan.trainable, trial_resources(plan.spec)),
                tune_config=tune.TuneConfig(
                    metric=plan.spec.objective.metric,
                    mode=plan.spec.objective.mode,
                    search_alg=plan.searcher,
                    scheduler=scheduler,
                    num_samples=plan.spec.max_trials or -1,
                    max_concurrent_trials=parallel,
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=plan.spec.name,
                    storage_path=str(storage),
                    stop=control,
                    callbacks=[control, ResultJournal(experiment_dir), CheckpointOfLastResult(),
                               ProgressLine(plan.spec.objective, plan.spec.max_trials), JsonLoggerCallback(),
                               ResourceWatch(trial_resources(plan.spec), parallel or plan.spec.parallel_trials),
                               *live_callbacks(plan.spec, optuna_storage, experiment_dir)],
                    failure_config=tune.FailureConfig(max_failures=retries),
                    # PBT copies other trials' checkpoints: keep more than the last two (Ray's advice)
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2 if plan.spec.algorithm.name != "pbt" else 4),
                    # ProgressLine reports progress; Tune's table would list every trial at the end.
                    verbose=0,
                ),
            )
            first_suggestions = None if plan.actor is None else lambda: plan.actor.wait_for_suggestions(FIRST_SUGGESTIONS_WAIT_S)
            summary = _fit_and_summarize(tuner, plan.spec, experiment_dir, parallel, control, json_logger_only=True,
                                         before_fit=first_suggestions)
        finally:
            if plan.actor is not None:
                plan.actor.close()
    if report:
        after_run(experiment_dir)
    return summary


def _check_resumable_with(*, searcher: Any, optuna_storage: str | None) -> None:
    """What ``run(resume_if_exists=True)`` cannot honour when it resumes: refused, by name,
    before anything starts (Tune restores the searcher and the callbacks it saved)."""
    if searcher is not None:
        raise SpecError("searcher", "the experiment exists and resumes with the searcher it saved; "
                                    "pass no searcher to continue it, or choose another name")
    if optuna_storage is not None:
        raise SpecError("optuna_storage", "the experiment exists and resumes with the callbacks it started "
                                          "with, so a new Optuna mirror cannot join it; after the run, copy "
                                          "it with 'raytune-k8s export EXPERIMENT_DIR --optuna-storage URL'")


def resume(
    experiment_dir: str | os.PathLike[str], *, address: str | None = None, quota: "Quota | Mapping[str, Any] | None" = None,
    report: bool = True,
) -> dict[str, Any]:
    """Continue an interrupted experiment; finished trials are kept, not run again. ``report``
    writes ``report.html`` at the end, as :func:`run` does."""
    from ray import tune

    from ..stopping.control import ExperimentControl
    from .runtime import quiet_ray_logs, ray_session
    from ..scaling.quota import effective_parallelism
    from ..search.actor.driver import closing_searchers_created
    from ..results.summary import SPEC_FILE
    from ..trials import resolve_trainable
    from ..recovery.journal import JOURNAL_FILE, ResultJournal
    from .._tune.internals import restored_run_config

    experiment_dir = Path(experiment_dir).expanduser().resolve()
    spec_file = experiment_dir / SPEC_FILE
    if not spec_file.exists():
        raise SpecError("", f"{experiment_dir} holds no raytune-k8s experiment ({SPEC_FILE} is missing)")
    from ..recovery.reconcile import ResumeError, ResumeGuard, check_saved_state, journal_expectations, journal_summary, reconcile

    try:
        spec = load_document(spec_file).spec  # the searcher itself comes back from Tune's state
    except SpecError as exc:
        raise ResumeError(f"cannot resume {experiment_dir}: {SPEC_FILE}, written when the experiment started, cannot be "
                          f"read ({exc}). Nothing was started and nothing in the directory was changed. Safe: "
                          f"{journal_summary(experiment_dir)}. To continue, put a good copy of it back and run resume "
                          "again.") from None
    parallel = effective_parallelism(spec.parallel_trials, trial_resources(spec), quota)
    check_saved_state(experiment_dir)  # every file the resume reads is whole, or it stops here
    reconcile(experiment_dir)  # a driver killed between Tune's saves: finished trials stay finished
    started, ended = journal_expectations(experiment_dir)
    states_before = set(experiment_dir.glob("experiment_state-*.json"))
    with quiet_ray_logs(), ray_session(address), closing_searchers_created():
        tuner = tune.Tuner.restore(
            str(experiment_dir),
            trainable=tune.with_resources(resolve_trainable(spec), trial_resources(spec)),
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
        # Tune runs the callbacks and stopper it unpickled from tuner.pkl: the goal and
        # max-failed stops are that ExperimentControl's, not a new one's.
        run_config = restored_run_config(tuner)
        callbacks = list(run_config.callbacks or [])
        control = next((c for c in callbacks if isinstance(c, ExperimentControl)), None)
        if control is None:  # not one of run()'s experiments: stop rules of its own
            control = ExperimentControl(spec.objective, spec.max_failed_trials)
            callbacks.append(control)
        for callback in callbacks:  # its path was pickled: the directory may have moved since (a copy, a new mount)
            if isinstance(callback, ResultJournal):
                callback.path = experiment_dir / JOURNAL_FILE
        run_config.callbacks = [*callbacks, ResumeGuard(experiment_dir, started, ended)]
        try:
            return _reported(_fit_and_summarize(tuner, spec, experiment_dir, parallel, control), experiment_dir, report)
        except ResumeError:
            # Nothing ran: leave no new experiment state a later resume would take as the newest.
            for path in set(experiment_dir.glob("experiment_state-*.json")) - states_before:
                path.unlink(missing_ok=True)
            raise


def _reported(summary: dict[str, Any], experiment_dir: Path, report: bool) -> dict[str, Any]:
    """``summary``, once ``report.html`` is written beside it (when ``report``)."""
    if report:
        from ..reporting import after_run

        after_run(experiment_dir)
    return summary


def _fit_and_summarize(tuner: Any, spec: ExperimentSpec, experiment_dir: Path, parallel: int | None, control: Any,
                       json_logger_only: bool = False, before_fit: Callable[[], Any] | None = None) -> dict[str, Any]:
    from .._tune.atomic_files import atomic_experiment_sync
    from .interruption import RunOutcome, watch_for_interrupt
    from ..recovery.journal import closing_journals
    from ..scaling.request import parallelism_request, trial_bundles
    from ..results.summary import build_summary, trial_rows, write_summary

    start = time.monotonic()
    outcome = RunOutcome()
    failure: BaseException | None = None
    try:
        # On an autoscaling cluster: ask for every trial's worker at once, withdraw at the end.
        slots = parallel or spec.parallel_trials
        with parallelism_request(trial_bundles(trial_resources(spec), slots), spec.name), _warm_actors(slots), \
                _cached_trainable_lookups(), _skipping_trial_dataframes(), _json_logger_only(json_logger_only), \
                atomic_experiment_sync(), closing_journals(), watch_for_interrupt() as outcome:
            if before_fit is not None:  # after the scale-up request: workers start meanwhile
                before_fit()
            tuner.fit()
    except BaseException as exc:
        failure = exc
        raise
    finally:  # noqa: B012
        # Whatever happened, record what the finished trials produced; a failure to do so must
        # not hide the error that ended the run.
        try:
            rows = trial_rows(experiment_dir, spec, getattr(control, "reason", None))
            summary = build_summary(spec, rows, wall_s=time.monotonic() - start, experiment_dir=experiment_dir,
                                    interrupted=outcome.interrupted)
            write_summary(experiment_dir, summary)
        except Exception as summary_error:
            if failure is None:
                raise
            print(f"warning: could not write the summary after the run failed: {summary_error}", file=sys.stderr)
    return summary


@contextmanager
def _json_logger_only(enabled: bool) -> Iterator[None]:
    """Tune writes each trial's results as JSON lines (``result.json``: what the summary and the
    report read) and not also as CSV and TensorBoard files (a third of the driver's time per
    trivial trial). Tune reads its documented switch ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS`` once,
    when ``fit`` sets up; ``run`` passes the JSON logger itself (``resume`` keeps Tune's defaults,
    as its callbacks come back from the saved Tuner). A value the user set is kept. It is an
    environment variable: a plain Tune experiment that another thread sets up meanwhile gets no
    CSV or TensorBoard files either."""
    if not enabled or AUTO_LOGGERS_ENV in os.environ:
        yield
        return
    os.environ[AUTO_LOGGERS_ENV] = "1"
    try:
        yield
    finally:
        os.environ.pop(AUTO_LOGGERS_ENV, None)


def _cached_trainable_lookups() -> Any:
    """Tune looks the trainable up in Ray's GCS five times per trial; this thread's ``fit()``
    remembers the answers (a private Tune name, loaded only here)."""
    from .._tune.registry_cache import cached_trainable_lookups

    return cached_trainable_lookups()


def _skipping_trial_dataframes() -> Any:
    """Tune reads every trial's results into a DataFrame at the end of ``fit()``, for a result
    grid ``run`` never reads (a private Tune name, loaded only here)."""
    from .._tune.unread_dataframes import skipping_trial_dataframes

    return skipping_trial_dataframes()


def _warm_actors(slots: int) -> Any:
    """Idle trial actors stay warm while the searcher actor computes (a private Tune class:
    loaded only here, for this thread's ``fit()``; Tune's own cache, with one warning, if this
    Ray lacks it)."""
    from .._tune.warm_actors import warm_trial_actors

    return warm_trial_actors(slots)
