"""Every private Ray Tune / Ray Train name the driver relies on, in one place.

Tune has no public hook for what these serve: keeping idle trial actors (:mod:`.warm_actors`),
remembering trainable look-ups (:mod:`.registry_cache`), skipping DataFrames nobody reads
(:mod:`.unread_dataframes`), and recovery's repairs of Tune's saved state (:mod:`.recovery`).
Those modules reach Tune's internals only through the accessors here, and confine their swaps
(:mod:`.confined_patch`). ``tests/test_ray_internals.py`` checks that every name here exists, so
a Ray release that moves one fails there by name, and that no other module outside ``sim/``
(whose own private names are in ``sim/_ray_internals.py``) imports a private Ray name.
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
