"""Experiments created through Kubeflow's clients, kept where ``raytune-k8s`` keeps every
experiment (the storage path), each run by a driver process of its own, and read back as the
Kubernetes objects Katib's API server would return: Experiments and Trials in Katib's shape.

The client's record of an experiment (its manifest, its driver: a process or a Ray job, see
:mod:`.drivers`) lives in
``<storage>/.kubeflow/<namespace>/<name>/``, so a second Python process, or ``raytune-k8s
results <storage>/<name>``, finds the experiment the first one created.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..results.summary import SPEC_FILE, SUMMARY_FILE, build_summary, katib_status, trial_rows
from ..spec import SpecError, load_spec
from .drivers import LocalDriver, RayJobDriver, for_address

GROUP, VERSION = "kubeflow.org", "v1beta1"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
_RECORDS = ".kubeflow"


class NotFound(LookupError):
    """No such object: what Kubernetes answers with 404."""

    status = 404
    reason = "Not Found"


class AlreadyExists(RuntimeError):
    """An object of that name exists: Kubernetes' 409."""

    status = 409
    reason = "Conflict"


@dataclass(frozen=True)
class ExperimentStore:
    """Experiments under ``storage``, run with ``address`` (None: each driver's embedded Ray)."""

    storage: Path
    address: str | None = None

    def record_dir(self, namespace: str, name: str) -> Path:
        return self.storage / _RECORDS / namespace / name

    # ------------------------------------------------------------------ experiments

    def create(self, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``manifest`` (SpecError naming the field, nothing started), then start its
        driver and return the Experiment object."""
        name = manifest["metadata"]["name"]
        record = self.record_dir(namespace, name)
        if record.exists() or (self.storage / name).exists():
            raise AlreadyExists(f"experiment {namespace}/{name} exists already (in {self.storage})")
        manifest = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
        load_spec(dict(manifest))  # the checks `raytune-k8s validate` makes, before anything starts
        record.mkdir(parents=True)
        path = record / "experiment.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        driver = for_address(self.address).start(record, path, self.storage)
        (record / "driver.json").write_text(json.dumps({**driver, "created": _now()}))
        return self.experiment(namespace, name)

    def experiment(self, namespace: str, name: str) -> dict[str, Any]:
        """The Experiment object, with the status Katib would show now."""
        record = self.record_dir(namespace, name)
        if not (record / "experiment.yaml").exists():
            raise NotFound(f"experiment {namespace}/{name} not found in {self.storage}")
        manifest = yaml.safe_load((record / "experiment.yaml").read_text())
        driver = json.loads((record / "driver.json").read_text())
        summary = self._summary(name)
        running = _driver(driver).running(driver)
        status: dict[str, Any] = katib_status(summary) if summary is not None else {"conditions": [], "trials": 0}
        conditions = [{"type": "Created", "status": "True", "reason": "ExperimentCreated",
                       "message": "Experiment is created", "lastTransitionTime": driver["created"]}]
        if running:
            conditions.append({"type": "Running", "status": "True", "reason": "ExperimentRunning",
                               "message": "Experiment is running"})
        elif summary is not None and summary["status"] in ("Succeeded", "Failed"):
            conditions = status["conditions"]
        else:
            conditions.append({"type": "Failed", "status": "True", "reason": "ExperimentDriverEnded",
                               "message": f"the experiment's driver ended without a result: "
                                          f"{_driver(driver).log_tail(record, driver)}"})
        status["conditions"] = conditions
        # The API server stamps every object it creates; Kubeflow's SDK requires the stamp.
        metadata = {"creationTimestamp": driver["created"], **(manifest.get("metadata") or {})}
        return {**manifest, "metadata": metadata, "status": status}

    def experiments(self, namespace: str) -> list[dict[str, Any]]:
        folder = self.storage / _RECORDS / namespace
        names = sorted(p.name for p in folder.iterdir() if (p / "experiment.yaml").exists()) if folder.is_dir() else []
        return [self.experiment(namespace, n) for n in names]

    def delete(self, namespace: str, name: str) -> None:
        """Stop the experiment's driver (SIGTERM: its finished trials are kept) and forget it."""
        record = self.record_dir(namespace, name)
        if not record.exists():
            raise NotFound(f"experiment {namespace}/{name} not found in {self.storage}")
        driver = json.loads((record / "driver.json").read_text())
        _driver(driver).stop(driver)
        import shutil

        shutil.rmtree(record)

    # ------------------------------------------------------------------ trials

    def trials(self, namespace: str, experiment: str | None) -> list[dict[str, Any]]:
        """Trial objects of one experiment (or of every experiment in ``namespace``)."""
        names = [experiment] if experiment else [e["metadata"]["name"] for e in self.experiments(namespace)]
        return [_trial_object(namespace, name, row) for name in names for row in self._rows(name)]

    def trial_rows(self, name: str) -> list[dict[str, Any]]:
        return self._rows(name)

    def _summary(self, name: str) -> dict[str, Any] | None:
        path = self.storage / name / SUMMARY_FILE
        if path.exists():
            return json.loads(path.read_text())
        rows = self._rows(name)
        spec = self._spec(name)
        if spec is None:
            return None
        return build_summary(spec, rows, wall_s=0.0, experiment_dir=self.storage / name, interrupted=True)

    def _rows(self, name: str) -> list[dict[str, Any]]:
        path = self.storage / name / SUMMARY_FILE
        if path.exists():
            return list(json.loads(path.read_text())["trial_table"])
        spec = self._spec(name)
        if spec is None:
            return []
        try:
            return trial_rows(self.storage / name, spec)
        except (OSError, ValueError, KeyError):  # Tune's state being written: read it next time
            return []

    def _spec(self, name: str) -> Any:
        path = self.storage / name / SPEC_FILE
        if not path.exists():
            return None
        try:
            return load_spec(str(path))
        except SpecError:
            return None


def _trial_object(namespace: str, experiment: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A trial row as Katib's Trial object."""
    status = row["status"]
    condition = {"type": status if status in ("Succeeded", "Failed", "EarlyStopped", "MetricsUnavailable", "Killed")
                 else "Running", "status": "True", "reason": row.get("reason") or f"Trial{status}"}
    if row.get("error"):
        condition["message"] = row["error"]
    metrics = [{"name": m, "min": str(obs["min"]), "max": str(obs["max"]), "latest": str(obs["latest"])}
               for m, obs in (row.get("observation") or {}).items()]
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Trial",
        "metadata": {"name": row["name"], "namespace": namespace, "labels": {EXPERIMENT_LABEL: experiment}},
        "spec": {"parameterAssignments": [{"name": k, "value": str(v)} for k, v in row["params"].items()]},
        "status": {"conditions": [{"type": "Created", "status": "True", "reason": "TrialCreated"}, condition],
                   "observation": {"metrics": metrics}},
    }


def _driver(driver: Mapping[str, Any]) -> "LocalDriver | RayJobDriver":
    """The driver kind an experiment's record names."""
    return RayJobDriver(str(driver["address"])) if "job_id" in driver else LocalDriver(None)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
