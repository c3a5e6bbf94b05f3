"""Building the Tuner for a :class:`~.plan.Plan`, running it, and writing the summary.

* :func:`scheduler_for` -- the plan's scheduler as Tune gets it (early stopping recorded;
  none: :class:`~raytune_k8s._tune.fifo.QueuedFIFOScheduler`);
* :func:`callbacks` -- the callbacks a new run has, in the order Tune calls them;
* :func:`tune_config`, :func:`run_config`, :func:`build_tuner` -- the Tuner itself;
* :func:`fit_and_summarize` -- ``fit()`` in its environment, then ``summary.json`` whatever
  happened.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..spec import ExperimentSpec
from .plan import Plan, replica_bundles, trial_resources

if TYPE_CHECKING:
    from ray import tune
    from ray.tune.schedulers import TrialScheduler

AUTO_LOGGERS_ENV = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
#: How long ``run`` waits before ``fit()`` for the searcher actor's first suggestions (Tune,
#: finding none and no trial running, would sleep a whole second between asks).
FIRST_SUGGESTIONS_WAIT_S = 10.0


def scheduler_for(plan: Plan, experiment_dir: Path) -> "TrialScheduler":
    """The plan's scheduler, recording the trials an early-stopping rule stops; Tune's FIFO
    order, with queued trials, when the plan has none. Both retire finished trials from Tune's
    controller (:mod:`raytune_k8s._tune.retire`)."""
    if plan.scheduler is None:
        from .._tune.fifo import QueuedFIFOScheduler
        from .._tune.retire import Retirement

        return QueuedFIFOScheduler(Retirement())
    if plan.spec.early_stopping is None:
        return plan.scheduler  # hyperband's and pbt's schedulers hold Tune's trials: none retire
    from .._tune.retire import Retirement
    from ..stopping.record import RecordingScheduler
    from ..stopping.rules import rule_budget

    # The early-stopping rules keep what they need by trial id: finished trials may leave Tune.
    return RecordingScheduler(plan.scheduler, experiment_dir, rule_budget(plan.spec.early_stopping), Retirement())


def callbacks(plan: Plan, experiment_dir: Path, control: Any, parallel: int, optuna_storage: str | None) -> list[Any]:
    """A new run's callbacks, in Tune's calling order: the stop rules, the result journal, the
    checkpoint of the last result, the progress line, the JSON results, the resource watch and
    the Optuna mirror (when ``optuna_storage``)."""
    from ray.tune.logger import JsonLoggerCallback

    from ..recovery.journal import ResultJournal
    from ..recovery.reconcile import CheckpointOfLastResult
    from ..reporting import live_callbacks
    from .progress import ProgressLine
    from .resource_watch import ResourceWatch

    spec = plan.spec
    return [control, ResultJournal(experiment_dir), CheckpointOfLastResult(), ProgressLine(spec.objective, spec.max_trials, targets=spec.targets),
            JsonLoggerCallback(), ResourceWatch(trial_resources(spec), parallel or spec.parallel_trials),
            *live_callbacks(spec, optuna_storage, experiment_dir)]


def tune_config(plan: Plan, scheduler: "TrialScheduler", parallel: int) -> "tune.TuneConfig":
    from ray import tune

    return tune.TuneConfig(
        metric=plan.spec.objective.metric,
        mode=plan.spec.objective.mode,
        search_alg=plan.searcher,
        scheduler=scheduler,
        num_samples=plan.spec.max_trials or -1,
        max_concurrent_trials=parallel,
        reuse_actors=True,
    )


def _resources_of(plan: Plan) -> Any:
    """A trial's resources for Tune: a distributed trial's placement group (an empty head
    bundle for the trial's own function, then one bundle per replica, all reserved at once)."""
    from ray import tune

    bundles = replica_bundles(plan.spec)
    if bundles is None:
        return trial_resources(plan.spec)
    return tune.PlacementGroupFactory([{}, *bundles], strategy="PACK")


def _autoscaler_bundles(spec: ExperimentSpec, slots: int) -> list[dict[str, float]]:
    """What the autoscaler is asked for: one bundle per concurrent trial, or per replica of
    each concurrent distributed trial (parallelTrialCount x gang)."""
    from ..scaling.request import trial_bundles

    bundles = replica_bundles(spec)
    if bundles is None:
        return trial_bundles(trial_resources(spec), slots)
    return [dict(b) for _ in range(slots) for b in bundles if b]


def run_config(plan: Plan, storage: Path, control: Any, callback_list: list[Any]) -> "tune.RunConfig":
    from ray import tune

    spec = plan.spec
    return tune.RunConfig(
        name=spec.name,
        storage_path=str(storage),
        stop=control,
        callbacks=callback_list,
        failure_config=tune.FailureConfig(max_failures=spec.trial.retries if spec.trial is not None else 0),
        # PBT copies other trials' checkpoints: keep more than the last two (Ray's advice)
        # A trial's files (collector copies, replica logs) reach storage from whichever node it ran on.
        sync_config=tune.SyncConfig(sync_artifacts=True),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2 if spec.algorithm.name != "pbt" else 4),
        # ProgressLine reports progress; Tune's table would list every trial at the end.
        verbose=0,
    )


def build_tuner(plan: Plan, storage: Path, *, control: Any, parallel: int, optuna_storage: str | None) -> "tune.Tuner":
    """The Tuner of a new run of ``plan`` in ``storage/<name>``, stopped by ``control``."""
    from ray import tune

    experiment_dir = storage / plan.spec.name
    return tune.Tuner(
        tune.with_resources(plan.trainable, _resources_of(plan)),
        tune_config=tune_config(plan, scheduler_for(plan, experiment_dir), parallel),
        run_config=run_config(plan, storage, control, callbacks(plan, experiment_dir, control, parallel, optuna_storage)),
    )


def first_suggestions(plan: Plan) -> Callable[[], Any] | None:
    """What ``fit_and_summarize`` waits for before ``fit()``: the searcher actor's first
    suggestions (None: no actor)."""
    actor = plan.actor
    if actor is None:
        return None
    return lambda: actor.wait_for_suggestions(FIRST_SUGGESTIONS_WAIT_S)


def fit_and_summarize(tuner: Any, spec: ExperimentSpec, experiment_dir: Path, parallel: int | None, control: Any,
                      json_logger_only: bool = False, before_fit: Callable[[], Any] | None = None) -> dict[str, Any]:
    """``tuner.fit()``, then the summary of what the trials produced (written to
    ``summary.json`` even when ``fit()`` failed; its error is the one raised)."""
    from .._tune.atomic_files import atomic_experiment_sync
    from .._tune.unique_ids import unique_trial_ids
    from ..recovery.journal import closing_journals
    from ..scaling.request import parallelism_request
    from .interruption import RunOutcome, watch_for_interrupt

    start = time.monotonic()
    outcome = RunOutcome()
    failure: BaseException | None = None
    try:
        # On an autoscaling cluster: ask for every trial's worker at once, withdraw at the end.
        slots = parallel or spec.parallel_trials
        with parallelism_request(_autoscaler_bundles(spec, slots), spec.name, per_trial=len(replica_bundles(spec) or [1])), \
                _warm_actors(slots), \
                _cached_trainable_lookups(), _skipping_trial_dataframes(), _json_logger_only(json_logger_only), \
                unique_trial_ids(_taken_trial_ids(experiment_dir)), \
                atomic_experiment_sync(), closing_journals(), watch_for_interrupt() as outcome:
            if before_fit is not None:  # after the scale-up request: workers start meanwhile
                before_fit()
            tuner.fit()
    except BaseException as exc:
        failure = exc
        raise
    finally:  # noqa: B012
        summary = _summarize(spec, experiment_dir, control, time.monotonic() - start, outcome.interrupted, failure)
    return summary


def _summarize(spec: ExperimentSpec, experiment_dir: Path, control: Any, wall_s: float, interrupted: bool,
               failure: BaseException | None) -> dict[str, Any]:
    """Whatever happened, record what the finished trials produced; a failure to do so must
    not hide the error that ended the run (``failure``): then it is a warning, and {}."""
    from ..results.summary import build_summary, trial_rows, write_summary

    try:
        rows = trial_rows(experiment_dir, spec, getattr(control, "reason", None))
        summary = build_summary(spec, rows, wall_s=wall_s, experiment_dir=experiment_dir, interrupted=interrupted)
        write_summary(experiment_dir, summary)
    except Exception as summary_error:
        if failure is None:
            raise
        print(f"warning: could not write the summary after the run failed: {summary_error}", file=sys.stderr)
        return {}
    return summary


#: The name tests and earlier code use.
_fit_and_summarize = fit_and_summarize


def _taken_trial_ids(experiment_dir: Path) -> set[str]:
    """The ids of the trials the experiment has already (a resume's), which new ones avoid."""
    from ..results.tune_state import saved_trial_ids

    return saved_trial_ids(experiment_dir) if experiment_dir.exists() else set()


@contextmanager
def _json_logger_only(enabled: bool) -> Iterator[None]:
    """Tune writes each trial's results as JSON lines (``result.json``: what the summary and the
    report read) and not also as CSV and TensorBoard files (a third of the driver's time per
    trivial trial). Tune reads its documented switch ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS`` once,
    when ``fit`` sets up; ``run`` passes the JSON logger itself, and ``resume`` gets it back with
    the saved Tuner (an experiment whose Tuner lacks it keeps Tune's defaults). A value the user
    set is kept. It is an
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
