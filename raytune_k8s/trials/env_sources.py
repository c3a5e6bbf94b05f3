"""Env values a pod reads from Secrets and ConfigMaps (``secretKeyRef``, ``configMapKeyRef``,
``envFrom``): read once, before the run, through the Kubernetes API with the identity of the
pod the experiment runs in. Where there is no such pod, one clear error names the field."""

from __future__ import annotations

import base64
import os
from typing import Any, Iterable

from ..spec import SpecError
from ..spec.trial_kinds import EnvSource

_SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_a_pod() -> bool:
    """Whether this process runs in a Kubernetes pod with a service account token."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(f"{_SERVICE_ACCOUNT}/token")


def resolve(sources: Iterable[EnvSource], namespace: str | None) -> dict[str, dict[str, str]]:
    """Each Secret/ConfigMap source's values (by its field path); SpecError naming the first
    source that cannot be read (an ``optional`` one that is missing gives nothing)."""
    wanted = [s for s in sources if s.kind != "fieldRef"]
    if not wanted:
        return {}
    if not in_a_pod():
        first = wanted[0]
        what = f"{'Secret' if first.kind.startswith('secret') else 'ConfigMap'} {first.ref!r}"
        raise SpecError(first.at, f"{what} is read through the Kubernetes API, which this run cannot reach (it is not "
                        "in a pod with a service account); give the value in env, or run the experiment in the cluster")
    from kubernetes import client, config

    config.load_incluster_config()
    api = client.CoreV1Api()
    ns = namespace or _pod_namespace()
    return {s.at: values for s in wanted if (values := _read(api, s, ns)) is not None}


def _read(api: Any, source: EnvSource, namespace: str) -> dict[str, str] | None:
    from kubernetes.client.rest import ApiException

    secret = source.kind.startswith("secret")
    try:
        obj = api.read_namespaced_secret(source.ref, namespace) if secret else api.read_namespaced_config_map(source.ref, namespace)
    except ApiException as exc:
        if exc.status == 404 and source.optional:
            return None
        raise SpecError(source.at, f"cannot read {'Secret' if secret else 'ConfigMap'} {namespace}/{source.ref}: "
                        f"{exc.status} {exc.reason}") from None
    data = dict(obj.data or {})
    values = {k: base64.b64decode(v).decode() for k, v in data.items()} if secret else {k: str(v) for k, v in data.items()}
    if source.key is not None and source.key not in values and not source.optional:
        raise SpecError(source.at, f"{'Secret' if secret else 'ConfigMap'} {namespace}/{source.ref} has no key {source.key!r}")
    return values


def _pod_namespace() -> str:
    try:
        with open(f"{_SERVICE_ACCOUNT}/namespace") as f:
            return f.read().strip()
    except OSError:
        return "default"
