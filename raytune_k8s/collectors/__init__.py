"""Metrics collectors: how a command trial's metrics are read, one module per Katib kind.

* ``stdout``: lines the process prints (Katib's StdOut, the default);
* ``files``: a TEXT or JSON file the process writes (File), and Push's file;
* ``tfevent``: a TensorFlow event directory (TensorFlowEvent);
* ``push``: :func:`report_metrics`, the client a trial calls itself (Push, and None), and
  Katib's own ``report_metrics`` through ``katib_db``;
* ``trainer_status``: Kubeflow Trainer's TrainJob status endpoint, beside any of them.

:func:`create_collector` builds the one a spec asks for. A collector turns what it reads into
``(name, value)`` observations, in order; the trial runner reports them.

May import: ``spec``.
"""

from __future__ import annotations

from collections.abc import Mapping

import os

from pathlib import Path

from ..spec import MetricsCollectorSpec
from .base import Collector, Observation
from .files import JsonFileCollector, TextFileCollector
from .push import PUSH_FILE_ENV, PushCollector
from .stdout import DEFAULT_FILTER, StdOutCollector


def create_collector(spec: MetricsCollectorSpec, metric_names: list[str], trial_dir: Path,
                     trainer_status: bool = False) -> Collector:
    """The collector for one trial; file paths are made per trial under ``trial_dir``.
    ``trainer_status``: a TrainJob trial, which also gets Kubeflow Trainer's status endpoint."""
    collector = _katib_collector(spec, metric_names, trial_dir)
    if trainer_status:
        from .trainer_status import WithTrainerStatus

        return WithTrainerStatus(collector, trial_dir / "collector" / "trainer-status")
    return collector


def _katib_collector(spec: MetricsCollectorSpec, metric_names: list[str], trial_dir: Path) -> Collector:
    kind = spec.collector.kind
    filters = list(spec.source.filter.metrics_format) if spec.source and spec.source.filter else []
    path = spec.source.file_system_path if spec.source else None
    if kind == "StdOut":
        return StdOutCollector(metric_names, filters)
    if kind == "File" and path is not None:
        local = per_trial_path(path.path, trial_dir)
        if path.format == "JSON":
            return JsonFileCollector(metric_names, path.path, local)
        return TextFileCollector(metric_names, path.path, local, filters)
    if kind == "TensorFlowEvent" and path is not None:
        from .tfevent import TensorFlowEventCollector

        return TensorFlowEventCollector(metric_names, path.path, per_trial_path(path.path, trial_dir))
    if kind in ("Push", "None"):
        return PushCollector(metric_names, trial_dir / "pushed-metrics.jsonl")
    raise ValueError(f"no collector for kind {kind!r}")  # the spec checks refuse it first


def per_trial_path(katib_path: str, trial_dir: Path) -> Path:
    """Where a trial writes what Katib's pod wrote at ``katib_path``: each trial has its own
    copy, so parallel trials never read each other's files."""
    return trial_dir / "collector" / katib_path.lstrip("/")


def trial_env(env: Mapping[str, str], collector_env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with a collector's variables over it; a ``PYTHONPATH`` of the collector's goes
    in front of the trial's own, not in its place."""
    out = {**env, **collector_env}
    if "PYTHONPATH" in collector_env and env.get("PYTHONPATH"):
        out["PYTHONPATH"] = collector_env["PYTHONPATH"] + os.pathsep + env["PYTHONPATH"]
    return out


__all__ = ["Collector", "DEFAULT_FILTER", "Observation", "PUSH_FILE_ENV", "create_collector", "per_trial_path", "trial_env"]
