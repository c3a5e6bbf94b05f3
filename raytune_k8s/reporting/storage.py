"""Optuna storages by URL, and a finished experiment written into one (no Ray needed).

A storage is a JournalFileStorage path (``study.log``) or an RDB URL (``sqlite:///x.db``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .experiment_dir import ExperimentRecord
from .pareto_plots import has_several_objectives, pareto_study
from .study import to_study

if TYPE_CHECKING:
    import optuna


def open_storage(url: str) -> "optuna.storages.BaseStorage":
    """An RDB URL (``scheme://...``) as RDBStorage, anything else as a journal file path."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if "://" in url:
        return optuna.storages.RDBStorage(url)
    return optuna.storages.JournalStorage(JournalFileBackend(url))


def replace_study(record: ExperimentRecord, storage: "optuna.storages.BaseStorage", study_name: str) -> str:
    """Write ``record`` as study ``study_name``, deleting a study of that name first. With several
    objectives or constraints: a multi-objective study of the finished trials (every objective's
    value, each bound's violation in Optuna's constraint attribute); else every trial."""
    import optuna

    try:
        optuna.delete_study(study_name=study_name, storage=storage)
    except KeyError:
        pass
    if has_several_objectives(record) or record.summary.get("constraints"):
        # every objective's value and each bound's violation, as the live mirror writes them
        pareto_study(record, None, storage=storage, study_name=study_name)
    else:
        to_study(record, storage=storage, study_name=study_name)
    return study_name
