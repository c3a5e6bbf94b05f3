"""An experiment end to end: spec -> searcher, scheduler, trainable -> Tuner -> summary.

:func:`run`, :func:`resume` and :func:`check` are short sequences of named steps; the steps
live here (the experiment directory, the searcher actor's lifetime, a resume's checks and
restored Tuner), in :mod:`.plan` (spec -> :class:`~.plan.Plan`, what one trial asks for) and
in :mod:`.fit` (the Tuner: scheduler, callbacks, RunConfig; ``fit()`` and the summary).
``run`` and ``resume`` connect to Ray, run (or continue) the Tuner and write
``<storage>/<name>/summary.json``.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..spec import ExperimentSpec, LoadedSpec, SpecError, load_document
from .fit import AUTO_LOGGERS_ENV, FIRST_SUGGESTIONS_WAIT_S, _fit_and_summarize, fit_and_summarize
from .plan import Plan, SpecSource, check_fits_a_worker, check_fits_the_cluster, prepare, prepare_loaded, searcher_resources, trial_resources, \
    trial_resources_field

if TYPE_CHECKING:
    from ray.tune.search import Searcher

    from ..scaling.quota import Quota

KATIB_MANIFEST_FILE = "katib-experiment.yaml"


class ExperimentExistsError(RuntimeError):
    """The experiment directory already holds an experiment (resume it instead)."""


def default_storage() -> Path:
    return Path(os.environ.get("RAYTUNE_K8S_STORAGE", "~/ray_results")).expanduser()


def check(source: SpecSource) -> LoadedSpec:
    """Parse and fully check a spec, algorithm, early stopping and trial included."""
    return prepare_loaded(source, None, searcher_actor=False)[0]


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
    from ..scaling.quota import effective_parallelism
    from ..stopping.control import ExperimentControl
    from .fit import build_tuner, first_suggestions
    from .runtime import quiet_ray_logs, ray_session

    plan = _checked_plan(spec, searcher, searcher_actor, address)
    _print_notes(plan.notes)
    storage = _storage(storage_path)
    experiment_dir = storage / plan.spec.name
    if _resumes_existing(experiment_dir, resume_if_exists):
        plan.close_actor()
        _check_resumable_with(searcher=searcher, optuna_storage=optuna_storage)
        return resume(experiment_dir, address=address, quota=quota, report=report)
    # The tenant quota (``quota``, else the namespace's ResourceQuota in a pod) caps parallelism.
    parallel = effective_parallelism(plan.spec.parallel_trials, trial_resources(plan.spec), quota)
    if plan.actor is not None:
        plan.actor.limit_prefetch(parallel)
    with quiet_ray_logs(), ray_session(address), _searcher_actor_running(plan):
        check_fits_the_cluster(plan)
        _write_experiment_files(plan, experiment_dir)
        control = ExperimentControl(plan.spec.objective, plan.spec.max_failed_trials)
        tuner = build_tuner(plan, storage, control=control, parallel=parallel, optuna_storage=optuna_storage)
        summary = fit_and_summarize(tuner, plan.spec, experiment_dir, parallel, control, json_logger_only=True,
                                    before_fit=first_suggestions(plan))
    return _reported(summary, experiment_dir, report)


def _checked_plan(spec: SpecSource, searcher: "Searcher | None", searcher_actor: bool, address: str | None) -> Plan:
    """The plan, once one trial is known to fit a worker (its searcher actor closed if not)."""
    plan = prepare(spec, searcher, searcher_actor=searcher_actor)
    try:
        check_fits_a_worker(plan, address)
    except SpecError:
        plan.close_actor()
        raise
    return plan


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(note if note.startswith("warning: ") else f"note: {note}", file=sys.stderr)


def _storage(storage_path: str | os.PathLike[str] | None) -> Path:
    return Path(storage_path).expanduser().resolve() if storage_path else default_storage()


def _resumes_existing(experiment_dir: Path, resume_if_exists: bool) -> bool:
    """The directory policy of ``run``: False for a new run (no directory, or an empty one);
    True to resume the experiment there (``resume_if_exists`` and its spec was saved);
    otherwise :class:`ExperimentExistsError`."""
    from ..results.summary import SPEC_FILE

    if not experiment_dir.exists() or not any(experiment_dir.iterdir()):
        return False
    if resume_if_exists and (experiment_dir / SPEC_FILE).exists():
        return True
    raise ExperimentExistsError(
        f"{experiment_dir} already holds an experiment; continue it with "
        f"'raytune-k8s resume {experiment_dir}', or choose another name or --storage-path"
    )


@contextmanager
def _searcher_actor_running(plan: Plan) -> Iterator[None]:
    """The searcher actor (if any) started -- its worker process starts while the Tuner is
    built -- and closed however the block ends."""
    try:
        if plan.actor is not None:
            plan.actor.start()
        yield
    finally:
        plan.close_actor()


def _write_experiment_files(plan: Plan, experiment_dir: Path) -> None:
    """The spec a resume reads, and the Katib manifest the run came from (if it did)."""
    from ..files import write_atomic
    from ..results.summary import SPEC_FILE

    experiment_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(experiment_dir / SPEC_FILE, plan.spec.to_yaml())
    if plan.source_text is not None:
        (experiment_dir / KATIB_MANIFEST_FILE).write_text(plan.source_text)


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
    from ..recovery.reconcile import check_saved_state, journal_expectations, reading_once, reconcile
    from ..scaling.quota import effective_parallelism
    from ..search.actor.driver import closing_searchers_created
    from .runtime import quiet_ray_logs, ray_session

    experiment_dir = Path(experiment_dir).expanduser().resolve()
    spec = _saved_spec(experiment_dir)
    parallel = effective_parallelism(spec.parallel_trials, trial_resources(spec), quota)
    with reading_once():  # the journal read once for the three
        check_saved_state(experiment_dir)  # every file the resume reads is whole, or it stops here
        reconcile(experiment_dir)  # a driver killed between Tune's saves: finished trials stay finished
        started, ended = journal_expectations(experiment_dir)
    with quiet_ray_logs(), ray_session(address), closing_searchers_created(), _no_new_state_unless_resumed(experiment_dir):
        tuner = _restored_tuner(experiment_dir, spec)
        control = _resumed_callbacks(tuner, spec, experiment_dir, started, ended)
        _replay_stop_rule(tuner, experiment_dir, spec.objective.metric)
        # A run of `run` wrote JSON results only (its JsonLoggerCallback came back with the
        # Tuner): the resume does the same, not also Tune's default CSV and TensorBoard files.
        summary = fit_and_summarize(tuner, spec, experiment_dir, parallel, control,
                                    json_logger_only=_writes_json_results(tuner))
    return _reported(summary, experiment_dir, report)


def _saved_spec(experiment_dir: Path) -> ExperimentSpec:
    """The spec ``run`` saved in the directory (the searcher itself comes back from Tune's
    state): SpecError when there is none, ResumeError when it cannot be read."""
    from ..recovery.reconcile import ResumeError, journal_summary
    from ..results.summary import SPEC_FILE

    spec_file = experiment_dir / SPEC_FILE
    if not spec_file.exists():
        raise SpecError("", f"{experiment_dir} holds no raytune-k8s experiment ({SPEC_FILE} is missing)")
    try:
        return load_document(spec_file).spec
    except SpecError as exc:
        raise ResumeError(f"cannot resume {experiment_dir}: {SPEC_FILE}, written when the experiment started, cannot be "
                          f"read ({exc}). Nothing was started and nothing in the directory was changed. Safe: "
                          f"{journal_summary(experiment_dir)}. To continue, put a good copy of it back and run resume "
                          "again.") from None


@contextmanager
def _no_new_state_unless_resumed(experiment_dir: Path) -> Iterator[None]:
    """A ResumeError out of the block means nothing ran: it leaves no new experiment state
    that a later resume would take as the newest."""
    from ..recovery.reconcile import ResumeError

    states_before = set(experiment_dir.glob("experiment_state-*.json"))
    try:
        yield
    except ResumeError:
        for path in set(experiment_dir.glob("experiment_state-*.json")) - states_before:
            path.unlink(missing_ok=True)
        raise


def _restored_tuner(experiment_dir: Path, spec: ExperimentSpec) -> Any:
    from ray import tune

    from ..trials import resolve_trainable

    return tune.Tuner.restore(
        str(experiment_dir),
        trainable=tune.with_resources(resolve_trainable(spec), trial_resources(spec)),
        resume_unfinished=True,
        resume_errored=False,
        restart_errored=False,
    )


def _writes_json_results(tuner: Any) -> bool:
    """Whether the restored Tuner's callbacks include Tune's JSON results logger."""
    from ray.tune.logger import JsonLoggerCallback

    from .._tune.internals import restored_run_config

    return any(isinstance(c, JsonLoggerCallback) for c in restored_run_config(tuner).callbacks or [])


def _resumed_callbacks(tuner: Any, spec: ExperimentSpec, experiment_dir: Path, started: Any, ended: Any) -> Any:
    """Set the restored Tuner's callbacks for this resume and return its stop rules.

    Tune runs the callbacks and stopper it unpickled from tuner.pkl: the goal and max-failed
    stops are that ExperimentControl's, not a new one's (a new one only when the experiment
    was not one of ``run``'s). The journal's pickled path follows the directory, which may have
    moved since (a copy, a new mount); a ResumeGuard comes last."""
    from .._tune.internals import restored_run_config
    from .._tune.retire import read_retired
    from ..recovery.journal import JOURNAL_FILE, ResultJournal
    from .progress import ProgressLine
    from ..recovery.reconcile import ResumeGuard
    from ..stopping.control import ExperimentControl

    run_config = restored_run_config(tuner)
    callbacks = list(run_config.callbacks or [])
    control = next((c for c in callbacks if isinstance(c, ExperimentControl)), None)
    if control is None:
        control = ExperimentControl(spec.objective, spec.max_failed_trials)
        callbacks.append(control)
    for callback in callbacks:
        if isinstance(callback, ResultJournal):
            callback.path = experiment_dir / JOURNAL_FILE
        if isinstance(callback, ProgressLine):
            callback.add_retired(read_retired(experiment_dir))
    control.add_retired(read_retired(experiment_dir))  # the trials Tune no longer holds count too
    run_config.callbacks = [*callbacks, ResumeGuard(experiment_dir, started, ended)]
    return control


def _replay_stop_rule(tuner: Any, experiment_dir: Path, metric: str) -> Any:
    """The restored median rule (as it was when the experiment started) takes the history of
    the trials that ended before, from the journal: it compares with all of them. Returns the
    rule (None for other schedulers)."""
    from .._tune.internals import restored_tune_config
    from ..recovery.journal import read_journal
    from ..stopping.median import MedianStop

    scheduler = restored_tune_config(tuner).scheduler
    rule = getattr(scheduler, "inner", scheduler)
    if not isinstance(rule, MedianStop):
        return None
    rule.replay(read_journal(experiment_dir), metric)
    return rule


def _reported(summary: dict[str, Any], experiment_dir: Path, report: bool) -> dict[str, Any]:
    """``summary``, once ``report.html`` is written beside it (when ``report``)."""
    if report:
        from ..reporting import after_run

        after_run(experiment_dir)
    return summary


__all__ = [
    "AUTO_LOGGERS_ENV", "ExperimentExistsError", "FIRST_SUGGESTIONS_WAIT_S", "KATIB_MANIFEST_FILE", "Plan", "SpecSource",
    "_fit_and_summarize", "check", "default_storage", "fit_and_summarize", "prepare", "resume", "run", "searcher_resources",
    "trial_resources", "trial_resources_field",
]
