"""Katib's Python SDK client, run here: ``KatibClient`` is Katib's own class
(``kubeflow.katib.KatibClient``) with its Kubernetes calls answered by this project's experiment
store (:mod:`.custom_objects`), so a notebook written for Katib keeps its calls, arguments and
return types, and changes only its import line.

What differs (docs/kubeflow.md): an experiment runs in a driver process of its own on the
embedded Ray, or on the Ray cluster of ``RAY_ADDRESS``; ``base_image`` is not used (trials run
in the Ray worker's image); ``get_trial_metrics`` reads the trial's reports instead of Katib's DB;
the LLM arguments of ``tune`` are refused; ``get_job_logs`` reads the trial's output from its
folder.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubeflow.katib import ApiClient, katib_api_pb2
from kubeflow.katib import KatibClient as _KatibClient
from kubeflow.katib.constants import constants

from ..spec import load_spec
from .custom_objects import StoreCustomObjectsApi
from .store import ExperimentStore

_LLM_ARGUMENTS = ("model_provider_parameters", "dataset_provider_parameters", "trainer_parameters")


class KatibClient(_KatibClient):
    """Katib's client over this project's experiments.

    ``storage_path``: where experiments are kept (default: ``$RAYTUNE_K8S_STORAGE``, else
    raytune-k8s's default); ``address``: the Ray cluster trials run on (default:
    ``$RAY_ADDRESS``, else each experiment's own embedded Ray). Katib's connection arguments
    (``config_file``, ``context``, ``client_configuration``) have no meaning here and are ignored.
    """

    def __init__(self, config_file: str | None = None, context: str | None = None, client_configuration: Any = None,
                 namespace: str | None = None, *, storage_path: str | os.PathLike[str] | None = None,
                 address: str | None = None):
        from ..experiment.runner import default_storage

        self.in_cluster = False
        self.store = ExperimentStore(Path(storage_path) if storage_path else default_storage(),
                                     address or os.environ.get("RAY_ADDRESS"))
        self.custom_api = StoreCustomObjectsApi(self.store)
        self.core_api = None
        self.api_client = ApiClient()
        self.namespace = namespace or "default"

    def create_experiment(self, experiment: Any, namespace: str | None = None) -> None:
        """Katib's ``create_experiment``; a spec this project cannot run is one error naming the
        field (SpecError), before anything starts."""
        manifest = experiment if isinstance(experiment, dict) else ApiClient().sanitize_for_serialization(experiment)
        manifest = _with_katib_sdk_categoricals(manifest)
        load_spec(dict(manifest))
        super().create_experiment(manifest, namespace)  # type: ignore[arg-type]  # Katib's client takes a dict too

    def tune(self, name: str, **kwargs: Any) -> None:  # type: ignore[override]
        """Katib's ``tune``: the objective function's source runs in each trial, with the
        parameters as Katib passes them; returns once the experiment has started."""
        given = [a for a in _LLM_ARGUMENTS if kwargs.get(a) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: tuning HuggingFace models with Katib's storage initializer is not "
                             "supported here; pass an objective function and parameters")
        if kwargs.get("base_image") not in (None, constants.BASE_IMAGE_PYTORCH):
            warnings.warn("base_image has no effect here: trials run in the Ray worker's image", stacklevel=2)
        super().tune(name, **kwargs)

    def get_trial_metrics(self, name: str, namespace: str | None = None,
                          db_manager_address: str = constants.DEFAULT_DB_MANAGER_ADDRESS,
                          timeout: Any = constants.DEFAULT_TIMEOUT) -> list[Any]:
        """Every metric the trial reported, as Katib's DB returns them (``MetricLog``s)."""
        experiment = name.rsplit("-", 1)[0]
        row = next((r for r in self.store.trial_rows(experiment) if r["name"] == name), None)
        if row is None:
            raise RuntimeError(f"Unable to get metrics for Trial {namespace or self.namespace}/{name}: no such trial")
        from ..results.summary import read_reports

        trial_dir = next((p for p in (self.store.storage / experiment).iterdir()
                          if p.is_dir() and f"_{row['trial_id']}_" in p.name), None)
        logs = []
        for report in read_reports(trial_dir) if trial_dir is not None else []:
            stamp = report.get("timestamp")
            when = "" if stamp is None else _rfc3339(float(stamp))
            for metric, value in report.items():
                if metric in (row.get("observation") or {}):
                    logs.append(katib_api_pb2.MetricLog(  # type: ignore[attr-defined]  # generated message classes
                        time_stamp=when, metric=katib_api_pb2.Metric(name=metric, value=str(value))))  # type: ignore[attr-defined]
        return logs

    def get_job_logs(self, name: str, trial_name: str, follow: bool | None = False,
                     namespace: str | None = None) -> Iterator[str]:
        """Katib's ``get_job_logs``: the lines of the trial's primary container, which here is
        its process's output in its folder (``output.log``; a distributed trial's master
        replica, ``replicas/<name>.log``). A running trial's lines reach the experiment
        directory with its checkpoints and at its end; ``follow`` waits for the rest until the
        trial has ended."""
        if not name:
            raise ValueError("Experiment name is required")
        if not trial_name:
            raise ValueError("Trial name is required")
        where = f"{namespace or self.namespace}/{trial_name}"
        row = next((r for r in self.store.trial_rows(name) if r["name"] == trial_name), None)
        if row is None:
            raise RuntimeError(f"Failed to get logs for the trial {where}: no such trial in experiment {name!r}")
        sent = 0
        while True:
            lines = _log_lines(self._trial_dir(name, row["trial_id"]))
            yield from lines[sent:]
            sent = len(lines)
            if not follow or row["status"] not in ("Running", "Pending", "Paused", "Created"):
                return
            time.sleep(1.0)
            row = next((r for r in self.store.trial_rows(name) if r["name"] == trial_name), row)

    def _trial_dir(self, experiment: str, trial_id: str) -> Path | None:
        folder = self.store.storage / experiment
        return next((p for p in folder.iterdir() if p.is_dir() and f"_{trial_id}_" in p.name), None) if folder.is_dir() else None


def _log_lines(trial_dir: Path | None) -> list[str]:
    """The primary container's log lines: ``output.log``, else the master's (or first) replica's."""
    from ..trials.command import OUTPUT_LOG

    if trial_dir is None:
        return []
    replicas = sorted((trial_dir / "replicas").glob("*.log")) if (trial_dir / "replicas").is_dir() else []
    primary = [trial_dir / OUTPUT_LOG] + [p for p in replicas if "master" in p.name] + replicas
    path = next((p for p in primary if p.exists()), None)
    return path.read_text(errors="replace").splitlines() if path is not None else []


def _with_katib_sdk_categoricals(manifest: dict[str, Any]) -> dict[str, Any]:
    """Katib 0.19's ``katib.search.categorical`` puts the choices in ``feasibleSpace.distribution``
    (it passes them positionally): read them as the ``list`` they are meant to be."""
    for parameter in (manifest.get("spec") or {}).get("parameters") or []:
        space = parameter.get("feasibleSpace") or {}
        if parameter.get("parameterType") == "categorical" and isinstance(space.get("distribution"), list) and not space.get("list"):
            space["list"] = space.pop("distribution")
    return manifest


def _rfc3339(seconds: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
