"""Kubernetes events as Katib's controllers would have recorded them, read off the experiment
store: each Experiment's creation and end, each Trial's creation and end (reasons in Katib's
words: ``ExperimentCreated``, ``ExperimentSucceeded``, ``TrialCreated``, ``TrialSucceeded``,
``TrialFailed``, ...). Kubeflow's ``get_job_events`` reads them through ``list_namespaced_event``
(:class:`StoreEvents` stands in for that one CoreV1Api call)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kubeflow_katib_api import models

from .custom_objects import _Done
from .store import ExperimentStore

_ENDED = {"Succeeded": "has succeeded", "Failed": "has failed", "EarlyStopped": "was early stopped",
          "MetricsUnavailable": "ended without its metrics", "Killed": "was killed"}


class StoreEvents:
    """CoreV1Api's ``list_namespaced_event`` over the experiments of an :class:`ExperimentStore`."""

    def __init__(self, store: ExperimentStore):
        self.store = store

    def list_namespaced_event(self, namespace: str, **kwargs: Any) -> Any:
        events = models.IoK8sApiCoreV1EventList(items=[e for x in self.store.experiments(namespace)
                                                       for e in self._events(namespace, x)])
        return _Done(events) if kwargs.get("async_req") else events

    def _events(self, namespace: str, experiment: dict[str, Any]) -> list[Any]:
        from ..reporting.experiment_dir import load_experiment

        name = experiment["metadata"]["name"]
        created = _time(experiment["metadata"].get("creationTimestamp"))
        out = [_event(namespace, "Experiment", name, "ExperimentCreated", "Experiment is created", created)]
        folder = self.store.storage / name
        trials = load_experiment(folder).trials if folder.is_dir() else []
        for trial in trials:
            trial_name = f"{name}-{trial.trial_id}"
            start = _stamp(trial.start) or created
            out.append(_event(namespace, "Trial", trial_name, "TrialCreated", "Trial is created", start))
            if trial.status in _ENDED:
                out.append(_event(namespace, "Trial", trial_name, f"Trial{trial.status}",
                                  f"Trial {_ENDED[trial.status]}", _stamp(trial.end) or start))
        for condition in experiment.get("status", {}).get("conditions", []):
            if condition.get("type") in ("Succeeded", "Failed") and condition.get("status") == "True":
                ends = [t.end for t in trials if t.end is not None]
                when = (_stamp(max(ends)) if ends else None) or created
                out.append(_event(namespace, "Experiment", name, f"Experiment{condition['type']}",
                                  condition.get("message") or f"Experiment {condition['type'].lower()}", when))
        return out


def _event(namespace: str, kind: str, name: str, reason: str, message: str, when: datetime) -> Any:
    return models.IoK8sApiCoreV1Event(
        metadata=models.IoK8sApimachineryPkgApisMetaV1ObjectMeta(name=f"{name}.{reason.lower()}", namespace=namespace),
        involvedObject=models.IoK8sApiCoreV1ObjectReference(kind=kind, name=name, namespace=namespace),
        reason=reason, message=message, firstTimestamp=when, lastTimestamp=when, type="Normal", count=1)


def _stamp(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


def _time(text: Any) -> datetime:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.now(timezone.utc)
