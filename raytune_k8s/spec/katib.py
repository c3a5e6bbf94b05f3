"""Katib v1beta1 Experiment manifests: recognising one, and reading its ``trialTemplate``.

A manifest (``apiVersion: kubeflow.org/v1beta1``, ``kind: Experiment``) becomes the project's
spec: ``metadata.name``/``namespace`` plus ``spec``. A trial template's primary container becomes
a :class:`ContainerTrial`: the command a Ray trial actor runs, as Katib's pod would; each
trialSpec kind has its reader in :mod:`.trial_kinds`. Fields with no meaning here are either
noted (harmless) or refused (a different meaning), never ignored.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, NamedTuple

from .errors import Problems, SpecError
from .models import KatibTrialTemplate
from .trial_kinds import PLACEHOLDER, ContainerTrial, TemplateReading, reader_for

API_VERSION, KIND = "kubeflow.org/v1beta1", "Experiment"

#: Katib's trial metadata references, usable as a trialParameter's ``reference``.
METADATA_REFERENCE = re.compile(r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[(.+)\]|Annotations\[(.+)\])\}$")
#: A successCondition/failureCondition read as the trial process's exit status names these.
_SUCCESS_WORDS, _FAILURE_WORDS = ("Complete", "Succeeded"), ("Failed",)


def is_manifest(data: Mapping[str, Any]) -> bool:
    return "apiVersion" in data or "kind" in data


def manifest_to_spec(data: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    """The spec dict of a Katib Experiment manifest (SpecError for anything that isn't one)."""
    problems = Problems()
    if data.get("apiVersion") != API_VERSION:
        problems.add("apiVersion", f"expected {API_VERSION!r}, got {data.get('apiVersion')!r}")
    if data.get("kind") != KIND:
        problems.add("kind", f"expected {KIND!r} (or OptimizationJob, apiVersion trainer.kubeflow.org/v1alpha1), "
                     f"got {data.get('kind')!r}")
    for key in data:
        if key not in ("apiVersion", "kind", "metadata", "spec", "status"):
            problems.add(key, "unknown field")
    metadata = data.get("metadata")
    spec = data.get("spec")
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        problems.add("metadata.name", "required field is missing")
    if not isinstance(spec, Mapping):
        problems.add("spec", "required field is missing" if spec is None else "must be a mapping")
    problems.raise_if_any()
    assert isinstance(metadata, Mapping) and isinstance(spec, Mapping)
    meta = read_object_metadata(metadata, problems, notes)
    if "status" in data:
        notes.append("status: ignored (the status of a Katib Experiment is written by its controller)")
    problems.raise_if_any()
    if "name" in spec:
        raise SpecError("spec.name", "unknown field (the name is metadata.name)")
    for key in ("objectives", "constraints"):  # ours, not Katib's: its Experiment has one objective
        if key in spec:
            problems.add(f"spec.{key}", "unknown field (a Katib Experiment has one objective and no constraints; "
                         "several objectives and constraints are this project's: write the short format or an OptimizationJob)")
    problems.raise_if_any()
    return {**meta, **dict(spec)}


def read_object_metadata(metadata: Mapping[str, Any], problems: Problems, notes: list[str]) -> dict[str, Any]:
    """A manifest's ``metadata`` as the spec's ``name`` and ``namespace``: labels and annotations
    noted, fields the Kubernetes API sets refused."""
    for key in metadata:
        if key in ("labels", "annotations"):
            notes.append(f"metadata.{key}: kept in the manifest only; nothing here selects on them")
        elif key not in ("name", "namespace"):
            problems.add(f"metadata.{key}", "not supported in an experiment file (set by the Kubernetes API)")
    out = {"name": metadata["name"]}
    if metadata.get("namespace") is not None:
        out["namespace"] = metadata["namespace"]
    return out


# ---------------------------------------------------------------- the trial template


def container_trial(
    template: KatibTrialTemplate, parameter_names: list[str] | None, notes: list[str], *, namespace: str | None = None
) -> ContainerTrial:
    """Read a Katib trial template; SpecError names each field that cannot be honoured.
    ``parameter_names`` None: the references were checked before. The trialSpec's kind picks
    its reader (:mod:`.trial_kinds`)."""
    problems = Problems()
    trial_spec = _trial_spec(template, namespace)
    refs = _references(template, parameter_names, problems)
    _check_conditions(template, problems, notes)
    reading = TemplateReading(template, trial_spec, refs, problems, notes)
    return reader_for(reading.api_version, reading.kind).read(reading)


def _trial_spec(template: KatibTrialTemplate, namespace: str | None) -> Mapping[str, Any]:
    if template.config_map is not None:
        return _trial_spec_from_config_map(template, namespace)
    if template.trial_spec is not None:
        return template.trial_spec
    raise SpecError("trialTemplate", "give trialSpec or configMap")


def _references(template: KatibTrialTemplate, parameter_names: list[str] | None, problems: Problems) -> dict[str, str]:
    refs: dict[str, str] = {}
    for i, tp in enumerate(template.trial_parameters):
        at = f"trialTemplate.trialParameters[{i}]"
        if tp.name in refs:
            problems.add(f"{at}.name", f"duplicate trialParameter {tp.name!r}")
        if parameter_names is not None and tp.reference not in parameter_names and not METADATA_REFERENCE.match(tp.reference):
            problems.add(f"{at}.reference", f"{tp.reference!r} is neither a parameter ({', '.join(parameter_names)}) "
                         "nor a trial metadata reference like ${trialSpec.Name}")
        refs[tp.name] = tp.reference
    return refs


def _check_conditions(template: KatibTrialTemplate, problems: Problems, notes: list[str]) -> None:
    for name, words in (("successCondition", _SUCCESS_WORDS), ("failureCondition", _FAILURE_WORDS)):
        cond = getattr(template, "success_condition" if name == "successCondition" else "failure_condition")
        if cond is None:
            continue
        plain = cond.replace(" ", "")
        if any(f'type=="{w}"' in plain for w in words) and 'status=="True"' in plain:
            notes.append(f"trialTemplate.{name}: read as the trial process exiting "
                         + ("with status 0" if name == "successCondition" else "with a non-zero status"))
        else:
            problems.add(f"trialTemplate.{name}", "only the trial object's own Complete/Succeeded/Failed condition has a meaning "
                         "here (a trial is a process: it succeeds when it exits 0)")
    if template.retain:
        notes.append("trialTemplate.retain: always so here (every trial's output and files stay in the experiment directory)")
    if template.primary_pod_labels and (template.trial_spec or {}).get("kind") == "Job":
        notes.append("trialTemplate.primaryPodLabels: no effect here (a Job's one pod is the trial's)")


def _trial_spec_from_config_map(template: KatibTrialTemplate, namespace: str | None) -> Mapping[str, Any]:
    """Katib's ConfigMap templates: read through the Kubernetes API, which only a pod has."""
    import os

    import yaml

    cm = template.config_map
    assert cm is not None
    at = "trialTemplate.configMap"
    if not cm.config_map_name or not cm.template_path:
        raise SpecError(at, "needs configMapName and templatePath")
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise SpecError(at, "a trial template in a ConfigMap is read through the Kubernetes API, which is only "
                        "reachable when the run is inside a pod; put the template inline as trialSpec")
    data = _config_map_data(cm.config_map_name, cm.config_map_namespace or namespace, at)
    ns = data.namespace
    if cm.template_path not in data.items:
        raise SpecError(f"{at}.templatePath", f"ConfigMap {ns}/{cm.config_map_name} has no key {cm.template_path!r}")
    loaded = yaml.safe_load(data.items[cm.template_path])
    if not isinstance(loaded, Mapping):
        raise SpecError(f"{at}.templatePath", "the template is not a YAML mapping")
    return loaded


class _ConfigMapData(NamedTuple):
    namespace: str
    items: Mapping[str, str]


def _config_map_data(name: str, namespace: str | None, at: str) -> _ConfigMapData:
    """The ConfigMap's data, read with the pod's service account (its namespace, unless
    ``namespace``)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except Exception as exc:  # ConfigException: no service-account token (not a pod, or none mounted)
        raise SpecError(at, f"cannot load the in-cluster Kubernetes configuration to read ConfigMap "
                        f"{name}: {str(exc).rstrip('.')}; put the template inline as trialSpec") from None
    ns = namespace or _pod_namespace(name, at)
    try:
        data = client.CoreV1Api().read_namespaced_config_map(name, ns).data or {}
    except Exception as exc:  # the API's own error says why (403, 404, ...)
        raise SpecError(at, f"cannot read ConfigMap {ns}/{name}: {exc}") from None
    return _ConfigMapData(ns, data)


def _pod_namespace(config_map_name: str, at: str) -> str:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip()
    except OSError as exc:
        raise SpecError(at, f"no namespace for ConfigMap {config_map_name} (give configMapNamespace): "
                        f"{exc.strerror or exc}") from None


__all__ = ["API_VERSION", "KIND", "METADATA_REFERENCE", "PLACEHOLDER", "ContainerTrial", "container_trial", "is_manifest",
           "manifest_to_spec", "read_object_metadata"]
