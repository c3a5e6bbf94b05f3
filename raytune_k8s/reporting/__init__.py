"""See an experiment: ``report.html`` (one offline file of plots and tables) and an Optuna study
for optuna-dashboard, written after the run (:func:`report`, :func:`export`) or live while it
runs (:class:`raytune_k8s.reporting.mirror.OptunaMirror`, a Ray Tune callback).

Importing this package imports neither Ray nor Optuna nor plotly; the functions do, when called.

>>> import raytune_k8s
>>> raytune_k8s.report("~/ray_results/my-experiment")  # doctest: +SKIP
PosixPath('/home/me/ray_results/my-experiment/report.html')

May import: ``spec``, ``stopping``, ``results``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .page import REPORT_FILE

if TYPE_CHECKING:
    from ..spec import ExperimentSpec


def report(experiment_dir: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> Path:
    """Write ``report.html`` for an experiment directory (or to ``output``); return its path."""
    from .page import write_report

    return write_report(experiment_dir, output)


def export(experiment_dir: str | os.PathLike[str], storage: str, study_name: str | None = None) -> str:
    """Copy a finished experiment into an Optuna storage (a JournalFileStorage path or an RDB
    URL such as ``sqlite:///x.db``) as a study named after the experiment, replacing a study
    of that name; return the study's name."""
    from .experiment_dir import load_experiment
    from .storage import open_storage, replace_study

    record = load_experiment(experiment_dir)
    return replace_study(record, open_storage(storage), study_name or record.name)




def after_run(experiment_dir: str | os.PathLike[str]) -> Path | None:
    """:func:`report` at the end of ``run``: a report that cannot be written warns and returns
    None rather than failing the experiment it describes."""
    import warnings

    try:
        return report(experiment_dir)
    except Exception as exc:  # the experiment's results matter more than its report
        warnings.warn(f"could not write the report for {experiment_dir}: {exc!r}", RuntimeWarning, stacklevel=2)
        return None


def live_callbacks(spec: "ExperimentSpec", optuna_storage: str | None,
                   experiment_dir: str | os.PathLike[str] | None = None) -> list[Any]:
    """The Ray Tune callbacks that mirror an experiment into ``optuna_storage`` (none if None);
    ``experiment_dir`` holds the record of the trials the early-stopping rule stopped."""
    if not optuna_storage:
        return []
    from .mirror import OptunaMirror

    return [OptunaMirror(optuna_storage, spec.name, spec.objective.metric, spec.objective.mode, spec, experiment_dir)]


__all__ = ["REPORT_FILE", "after_run", "export", "live_callbacks", "report"]
