"""The part of Kubernetes' ``CustomObjectsApi`` that Katib's ``KatibClient`` calls, answered
from an :class:`~.store.ExperimentStore` instead of an API server: the client's own code (its
argument checks, its Experiment building, its status helpers) runs unchanged above it.

Errors come as ``kubernetes.client.rest.ApiException`` with Kubernetes' status codes, as the
client expects them; ``async_req=True`` calls return an object with ``get(timeout)``, as the
Kubernetes client's thread pool does.
"""

from __future__ import annotations

from typing import Any, Callable

from ..spec import SpecError
from .store import EXPERIMENT_LABEL, AlreadyExists, ExperimentStore, NotFound


class _Done:
    """An ``async_req`` result that is already there."""

    def __init__(self, value: Any):
        self._value = value

    def get(self, timeout: float | None = None) -> Any:
        return self._value


class StoreCustomObjectsApi:
    """Katib's Experiments and Trials in a store, behind CustomObjectsApi's method names."""

    def __init__(self, store: ExperimentStore):
        self.store = store

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, body: Any,
                                        **kwargs: Any) -> Any:
        from kubeflow.katib import ApiClient

        self._experiments_only(plural, "create")
        manifest = body if isinstance(body, dict) else ApiClient().sanitize_for_serialization(body)
        return self._answer(lambda: self.store.create(namespace, manifest), kwargs)

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str,
                                     **kwargs: Any) -> Any:
        if plural == "trials":
            return self._answer(lambda: _one([t for t in self.store.trials(namespace, None) if t["metadata"]["name"] == name],
                                             f"trial {namespace}/{name}"), kwargs)
        self._experiments_only(plural, "get")
        return self._answer(lambda: self.store.experiment(namespace, name), kwargs)

    def list_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                      label_selector: str | None = None, **kwargs: Any) -> Any:
        if plural == "trials":
            experiment = None
            if label_selector:
                key, _, value = label_selector.partition("=")
                experiment = value if key == EXPERIMENT_LABEL else None
            return self._answer(lambda: {"items": self.store.trials(namespace, experiment)}, kwargs)
        if plural == "suggestions":
            return self._answer(lambda: {"items": []}, kwargs)
        self._experiments_only(plural, "list")
        return self._answer(lambda: {"items": self.store.experiments(namespace)}, kwargs)

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str,
                                        **kwargs: Any) -> Any:
        self._experiments_only(plural, "delete")
        return self._answer(lambda: self.store.delete(namespace, name), kwargs)

    def patch_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str, body: Any,
                                       **kwargs: Any) -> Any:
        raise _api_error(405, "Method Not Allowed", "an experiment's budget is fixed once it runs here; stop it "
                         "(delete_experiment) and resume it with raytune-k8s resume and new flags")

    @staticmethod
    def _experiments_only(plural: str, verb: str) -> None:
        if plural != "experiments":
            raise _api_error(404, "Not Found", f"{plural} cannot be {verb}d here (experiments and trials only)")

    @staticmethod
    def _answer(call: Callable[[], Any], kwargs: dict[str, Any]) -> Any:
        try:
            value = call()
        except (NotFound, AlreadyExists) as exc:
            raise _api_error(exc.status, exc.reason, str(exc)) from None
        except SpecError as exc:
            raise _api_error(422, "Unprocessable Entity", str(exc)) from exc
        return _Done(value) if kwargs.get("async_req") else value


def _one(items: list[Any], what: str) -> Any:
    if not items:
        raise NotFound(f"{what} not found")
    return items[0]


def _api_error(status: int, reason: str, body: str) -> Exception:
    from kubernetes.client.rest import ApiException

    error = ApiException(status=status, reason=reason)
    error.body = body
    return error
