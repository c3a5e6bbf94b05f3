"""See an experiment: ``report.html`` (one offline file of plots and tables) and an Optuna study
for optuna-dashboard, written after the run (:func:`report`, :func:`export`) or live while it
runs (:class:`raytune_k8s.report.mirror.OptunaMirror`, a Ray Tune callback).

Importing this package imports neither Ray nor Optuna nor plotly; the functions do, when called.

>>> import raytune_k8s.report
>>> raytune_k8s.report.report("~/ray_results/my-experiment")  # doctest: +SKIP
PosixPath('/home/me/ray_results/my-experiment/report.html')
"""

from __future__ import annotations

import os
from pathlib import Path

from .page import REPORT_FILE


def report(experiment_dir: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> Path:
    """Write ``report.html`` for an experiment directory (or to ``output``); return its path."""
    from .page import write_report

    return write_report(experiment_dir, output)


def export(experiment_dir: str | os.PathLike[str], storage: str, study_name: str | None = None) -> str:
    """Copy a finished experiment into an Optuna storage (a JournalFileStorage path or an RDB
    URL such as ``sqlite:///x.db``) as a study named after the experiment, replacing a study
    of that name; return the study's name."""
    from .storage import open_storage, replace_study
    from .experiment import load_experiment

    record = load_experiment(experiment_dir)
    return replace_study(record, open_storage(storage), study_name or record.name)


__all__ = ["REPORT_FILE", "export", "report"]
