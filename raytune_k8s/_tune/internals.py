"""Every private Ray Tune / Ray Train name the driver relies on, in one place.

Tune has no public hook for what these serve: keeping idle trial actors (:mod:`.warm_actors`),
remembering trainable look-ups (:mod:`.registry_cache`), skipping DataFrames nobody reads
(:mod:`.unread_dataframes`), recovery's repairs of Tune's saved state (:mod:`.recovery`), PBT's
clock changed for command trials (``search.pbt``), a searcher answering with another's metric
(``search.actor``) and the marker of a pickled value in Tune's state (``results.tune_state``).
Those modules reach Tune's internals only through the accessors here, and confine their swaps
(:mod:`.confined_patch`). ``tests/test_ray_internals.py`` checks that every name here exists, so
a Ray release that moves one fails there by name, and that no other module outside ``_tune/`` and
``sim/`` (whose own private names are in ``sim/_ray_internals.py``) imports a private Ray name,
reads or writes a private attribute of the Ray class it subclasses, or of a Ray object.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

#: The attribute of Tune's controller module that builds the controller's actor cache.
CONTROLLER_CACHE_FACTORY = "_ObjectCache"
#: The method of ``ExperimentAnalysis`` that reads every trial's results into a DataFrame.
ANALYSIS_DATAFRAMES = "_fetch_trial_dataframes"
#: The function of Train's storage module that copies the driver's staging folder to the
#: experiment directory (:mod:`.atomic_files` makes it atomic).
STORAGE_UPLOAD = "_upload_to_fs_path"


def object_cache_base() -> type:
    """Tune's actor cache class (the base :mod:`.warm_actors` extends)."""
    from ray.tune.utils.object_cache import _ObjectCache

    return _ObjectCache


#: The controller's method that hands a pending trial an idle cached actor, removing the actor
#: already scheduled for that trial (:mod:`.warm_actors` wraps it).
CONTROLLER_REUSE_CACHED = "_maybe_reuse_cached_actor"


def controller_class() -> type:
    """Tune's controller class (whose :data:`CONTROLLER_REUSE_CACHED` :mod:`.warm_actors` wraps)."""
    from ray.tune.execution.tune_controller import TuneController

    return TuneController


def own_actor_launched(controller: Any, trial: Any) -> bool:
    """Whether the actor Tune scheduled for ``trial`` has been launched (its resources granted,
    its process starting or started)."""
    tracked = controller._trial_to_actor.get(trial)
    return tracked is not None and tracked in controller._actor_manager._live_actors_to_ray_actors_resources


def controller_module() -> ModuleType:
    """Tune's controller module, whose :data:`CONTROLLER_CACHE_FACTORY` builds its cache."""
    from ray.tune.execution import tune_controller

    return tune_controller


def trainable_registry() -> Any:
    """Tune's process-wide registry of trainables (kept in Ray's GCS key-value store)."""
    from ray.tune.registry import _global_registry

    return _global_registry


def experiment_analysis_class() -> type:
    """The class Tune builds at the end of ``fit()`` (its :data:`ANALYSIS_DATAFRAMES` method)."""
    from ray.tune.analysis.experiment_analysis import ExperimentAnalysis

    return ExperimentAnalysis


def training_result(checkpoint: Any, metrics: dict[str, Any]) -> Any:
    """What a trial's checkpoint manager registers: a checkpoint with the metrics it came with."""
    from ray.train._internal.session import _TrainingResult

    return _TrainingResult(checkpoint=checkpoint, metrics=metrics)


def tracked_checkpoints(manager: Any) -> list[Any]:
    """The checkpoint results a trial's checkpoint manager tracks."""
    return manager._checkpoint_results


def set_tracked_checkpoints(manager: Any, results: list[Any]) -> None:
    manager._checkpoint_results = results


def load_tune_state(data: bytes) -> Any:
    """Tune's saved experiment state (``experiment_state-*.json``), as Tune itself reads it."""
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    return _loads_with_cloudpickle(data)


def storage_module() -> ModuleType:
    """Ray Train's storage module, whose :data:`STORAGE_UPLOAD` the experiment sync calls."""
    from ray.train._internal import storage

    return storage


def restored_run_config(tuner: Any) -> Any:
    """The RunConfig a ``Tuner.restore``-d Tuner will run with (unpickled from ``tuner.pkl``:
    its callbacks and stopper are the ones that run, not new ones)."""
    return tuner._local_tuner.get_run_config()


def restored_tune_config(tuner: Any) -> Any:
    """The TuneConfig a ``Tuner.restore``-d Tuner will run with (its scheduler is the one
    unpickled from ``tuner.pkl``, as it was when the experiment started)."""
    return tuner._local_tuner._tune_config


#: The attribute Tune's PBT reads each result's time from (its ``time_attr``, otherwise fixed
#: when the scheduler is built).
PBT_TIME_ATTR = "_time_attr"


def set_pbt_time_attr(scheduler: Any, time_attr: str) -> None:
    """Change the clock of an already built ``PopulationBasedTraining`` to ``time_attr``."""
    setattr(scheduler, PBT_TIME_ATTR, time_attr)


#: Where a ``Searcher`` keeps the metric and mode its read-only ``metric`` / ``mode`` answer.
SEARCHER_METRIC = "_metric"
SEARCHER_MODE = "_mode"


def set_searcher_metric_mode(searcher: Any, metric: str | None, mode: str | None) -> None:
    """What ``searcher.metric`` and ``searcher.mode`` answer from now on (a searcher that sets
    its search properties on another searcher answers with that one's)."""
    setattr(searcher, SEARCHER_METRIC, metric)
    setattr(searcher, SEARCHER_MODE, mode)


#: Keys of the state Tune's search generator saves (``search_gen_state-*.json``, pickled despite
#: the name): the generator's count of trials created, and, under ``name:`` + the wrapper's class
#: name, the saved ``__dict__`` of the concurrency limit Tune wraps around the searcher (its
#: trials counted as running).
SEARCH_GEN_COUNTER = "counter"
CONCURRENCY_LIMITER_STATE = "name:ConcurrencyLimiter"
LIMITER_LIVE_TRIALS = "live_trials"
LIMITER_UNFINISHED_LIVE_TRIALS = "num_unfinished_live_trials"


def reconciled_search_gen_state(data: bytes, created: int, live: set[str]) -> bytes | None:
    """The search generator's saved state (``data``) with at least ``created`` trials counted as
    created and its concurrency limit (if any) counting exactly the trials ``live``; None when
    that is what it already says."""
    import ray.cloudpickle as cloudpickle

    gen = cloudpickle.loads(data)
    before = (gen[SEARCH_GEN_COUNTER], gen.get(CONCURRENCY_LIMITER_STATE, {}).get(LIMITER_LIVE_TRIALS))
    gen[SEARCH_GEN_COUNTER] = max(int(gen[SEARCH_GEN_COUNTER]), created)
    limiter = gen.get(CONCURRENCY_LIMITER_STATE)
    if limiter is not None and LIMITER_LIVE_TRIALS in limiter:
        limiter[LIMITER_LIVE_TRIALS] = set(live)
        limiter[LIMITER_UNFINISHED_LIVE_TRIALS] = len(live)
    if (gen[SEARCH_GEN_COUNTER], gen.get(CONCURRENCY_LIMITER_STATE, {}).get(LIMITER_LIVE_TRIALS)) == before:
        return None
    return cloudpickle.dumps(gen)


#: The key with which Tune's JSON encoder (``TuneFunctionEncoder``) marks a value it had to
#: pickle into the saved state.
PICKLED_VALUE_MARK = "_type"


#: The controller's private attributes :mod:`.retire` reads and trims: its list of trials; the
#: sets of ended trials; every set a retired trial leaves; the tables keyed by trial id (each
#: trial's JSON state for the next snapshot, decisions waiting for a save); the trial -> actor
#: table; its storage context; its callback list.
CONTROLLER_TRIALS = "_trials"
CONTROLLER_ENDED_SETS = ("_stopped_trials", "_failed_trials")
CONTROLLER_TRIAL_SETS = ("_stopped_trials", "_failed_trials", "_live_trials", "_trials_to_cache")
CONTROLLER_BY_TRIAL_ID = ("_trial_metadata", "_cached_trial_decisions")
CONTROLLER_TRIAL_ACTORS = "_trial_to_actor"
CONTROLLER_STORAGE = "_storage"
CONTROLLER_CALLBACKS = "_callbacks"
#: The attribute of the wrapper Tune hands its scheduler that holds the controller itself.
WRAPPED_CONTROLLER = "_tune_controller"
#: ``CallbackList``'s list of callbacks.
CALLBACK_LIST_ITEMS = "_callbacks"
#: The prefix of the keys Tune's JSON encoder adds to ``ray.util.debug``'s set of logged keys,
#: one per value it pickles (a trial's storage context, its running averages): the set grows by
#: several strings per trial.
ENCODER_LOG_KEY_PREFIX = "tune_func_encode:"


def controller_of(wrapped: Any) -> Any:
    """The controller behind the wrapper Tune hands its scheduler (itself if not wrapped)."""
    return getattr(wrapped, WRAPPED_CONTROLLER, wrapped)


def controller_callbacks(controller: Any) -> list[Any]:
    return list(getattr(getattr(controller, CONTROLLER_CALLBACKS), CALLBACK_LIST_ITEMS, []))


def experiment_dir_of(controller: Any) -> str:
    """The experiment directory in storage of the controller's run."""
    return getattr(controller, CONTROLLER_STORAGE).experiment_fs_path


def forget_logged_encodings() -> None:
    """Drop the keys Tune's JSON encoder left in ``ray.util.debug``'s logged set (see
    :data:`ENCODER_LOG_KEY_PREFIX`); other keys stay."""
    from ray.util import debug

    logged = getattr(debug, "_logged", None)
    if isinstance(logged, set):
        logged.difference_update([k for k in logged if isinstance(k, str) and k.startswith(ENCODER_LOG_KEY_PREFIX)])
