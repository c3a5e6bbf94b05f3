"""Katib v1beta1 Experiment manifests: recognising one, and reading its ``trialTemplate``.

A manifest (``apiVersion: kubeflow.org/v1beta1``, ``kind: Experiment``) becomes the project's
spec: ``metadata.name``/``namespace`` plus ``spec``. A trial template's primary container becomes
a :class:`ContainerTrial`: the command a Ray trial actor runs, as Katib's pod would. Fields with
no meaning here are either noted (harmless) or refused (a different meaning), never ignored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import Problems, SpecError
from .models import KatibTrialTemplate, Resources

API_VERSION, KIND = "kubeflow.org/v1beta1", "Experiment"

#: Katib's trial metadata references, usable as a trialParameter's ``reference``.
METADATA_REFERENCE = re.compile(r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[(.+)\]|Annotations\[(.+)\])\}$")
PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")


def is_manifest(data: Mapping[str, Any]) -> bool:
    return "apiVersion" in data or "kind" in data


def manifest_to_spec(data: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    """The spec dict of a Katib Experiment manifest (SpecError for anything that isn't one)."""
    problems = Problems()
    if data.get("apiVersion") != API_VERSION:
        problems.add("apiVersion", f"expected {API_VERSION!r}, got {data.get('apiVersion')!r}")
    if data.get("kind") != KIND:
        problems.add("kind", f"expected {KIND!r}, got {data.get('kind')!r}")
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
    for key in metadata:
        if key in ("labels", "annotations"):
            notes.append(f"metadata.{key}: kept in the manifest only; nothing here selects on them")
        elif key not in ("name", "namespace"):
            problems.add(f"metadata.{key}", "not supported in an experiment file (set by the Kubernetes API)")
    if "status" in data:
        notes.append("status: ignored (the status of a Katib Experiment is written by its controller)")
    problems.raise_if_any()
    if "name" in spec:
        raise SpecError("spec.name", "unknown field (the name is metadata.name)")
    out = {"name": metadata["name"], **dict(spec)}
    if metadata.get("namespace") is not None:
        out["namespace"] = metadata["namespace"]
    return out


# ---------------------------------------------------------------- the trial template


@dataclass(frozen=True)
class ContainerTrial:
    """What a Katib trial's primary container runs, as a process in a Ray trial actor."""

    kind: str
    api_version: str
    image: str | None
    argv: tuple[str, ...]
    env: Mapping[str, str]
    working_dir: str | None
    resources: Resources
    #: trialParameter name -> a parameter name or a ``${trialSpec.*}`` metadata reference
    references: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    #: Where the primary container's resources are, for errors about them.
    resources_at: str = "trialTemplate.trialSpec"


#: trialSpec kinds: apiVersion prefix, where the pod template is, and the replica spec key.
_REPLICATED = {  # kind -> replica specs key, replica types that may be the one process (first present wins)
    "PyTorchJob": ("pytorchReplicaSpecs", ("Master",)),
    "TFJob": ("tfReplicaSpecs", ("Chief", "Master", "Worker")),
    "XGBoostJob": ("xgbReplicaSpecs", ("Master",)),
}
_REFUSED = {
    "MPIJob": "an MPIJob runs one program across several hosts through mpirun, with no single-process meaning",
    "Workflow": "an Argo Workflow is a graph of pods; run its training step as a Job-style command instead",
    "PipelineRun": "a Tekton PipelineRun is a graph of tasks; run its training step as a Job-style command instead",
    "PaddleJob": "a distributed job kind with no single-process meaning here",
    "JAXJob": "a distributed job kind with no single-process meaning here",
}
_POD_NOTES = {
    "restartPolicy": "a trial's process is never restarted in place; a lost trial is retried by trial.retries",
    "serviceAccountName": "trials run in the Ray worker's identity",
    "nodeSelector": "placement is Ray's (trial resources decide the worker)",
    "tolerations": "placement is Ray's (trial resources decide the worker)",
    "affinity": "placement is Ray's (trial resources decide the worker)",
    "securityContext": "trials run under the Ray worker's security context",
    "imagePullSecrets": "trials run in the Ray worker's image",
    "priorityClassName": "trials run in Ray worker pods, whose priority the cluster sets",
    "schedulerName": "placement is Ray's",
    "terminationGracePeriodSeconds": "a stopped trial's process gets SIGTERM, then SIGKILL after a few seconds",
    "dnsPolicy": "trials share the Ray worker's network",
    "hostNetwork": "trials share the Ray worker's network",
}
_CONTAINER_NOTES = {
    "image": "trials run in the Ray worker's image, which must contain the program",
    "imagePullPolicy": "trials run in the Ray worker's image",
    "securityContext": "trials run under the Ray worker's security context",
    "ports": "no port is exposed for a trial",
    "livenessProbe": "a trial is watched through its process, not probes",
    "readinessProbe": "a trial is watched through its process, not probes",
    "terminationMessagePath": "a failed trial keeps its last output lines instead",
    "terminationMessagePolicy": "a failed trial keeps its last output lines instead",
    "stdin": "trials get no standard input",
    "tty": "trials get no terminal",
}
_JOB_NOTES = {
    "backoffLimit": "a failed trial is retried only by trial.retries",
    "ttlSecondsAfterFinished": "a trial's files stay in the experiment directory",
    "completions": "a trial is one process",
    "parallelism": "a trial is one process",
    "runPolicy": "a trial is one process; its restarts are trial.retries",
}
_SUCCESS_WORDS, _FAILURE_WORDS = ("Complete", "Succeeded"), ("Failed",)


def container_trial(
    template: KatibTrialTemplate, parameter_names: list[str] | None, notes: list[str], *, namespace: str | None = None
) -> ContainerTrial:
    """Read a Katib trial template; SpecError names each field that cannot be honoured.
    ``parameter_names`` None: the references were checked before."""
    at = "trialTemplate"
    problems = Problems()
    if template.config_map is not None:
        trial_spec = _trial_spec_from_config_map(template, namespace)
    elif template.trial_spec is not None:
        trial_spec = template.trial_spec
    else:
        raise SpecError(at, "give trialSpec or configMap")
    refs = _references(template, parameter_names, problems)
    _check_conditions(template, problems, notes)
    kind, api_version = str(trial_spec.get("kind", "")), str(trial_spec.get("apiVersion", ""))
    spec_at = f"{at}.trialSpec"
    meta = trial_spec.get("metadata") or {}
    job_spec = trial_spec.get("spec") or {}
    if not isinstance(job_spec, Mapping):
        raise SpecError(f"{spec_at}.spec", "must be a mapping")
    timeout = None
    if kind == "Job" and api_version == "batch/v1":
        for key in job_spec:
            if key == "template":
                continue
            if key == "activeDeadlineSeconds":
                timeout = _positive_seconds(job_spec[key], f"{spec_at}.spec.{key}", problems)
            elif key in _JOB_NOTES:
                notes.append(f"{spec_at}.spec.{key}: no effect here: {_JOB_NOTES[key]}")
            else:
                problems.add(f"{spec_at}.spec.{key}", "not supported for trials here")
        pod_template, pod_at = job_spec.get("template"), f"{spec_at}.spec.template"
    elif kind in _REPLICATED:
        key, candidates = _REPLICATED[kind]
        replicas = job_spec.get(key) or {}
        if not isinstance(replicas, Mapping):
            raise SpecError(f"{spec_at}.spec.{key}", "must be a mapping of replica types")
        primary = next((c for c in candidates if c in replicas), None)
        if primary is None:
            raise SpecError(f"{spec_at}.spec.{key}", f"a {kind} needs a {' or '.join(candidates)} replica to run")
        counts = {other: _replica_count(rep_spec, f"{spec_at}.spec.{key}.{other}.replicas", problems)
                  for other, rep_spec in replicas.items()}
        for other in replicas:
            if other != primary and counts[other] > 0:
                problems.add(f"{spec_at}.spec.{key}.{other}", f"a {kind} with {other} replicas beside its {primary} is "
                             f"distributed training; only a single {primary} replica runs here, as one process")
        rep = replicas[primary] or {}
        if not isinstance(rep, Mapping):
            raise SpecError(f"{spec_at}.spec.{key}.{primary}", "must be a mapping")
        if counts[primary] not in (1, -1):  # -1: already reported
            problems.add(f"{spec_at}.spec.{key}.{primary}.replicas", "must be 1 (one process per trial)")
        for other_key in job_spec:
            if other_key != key:
                notes.append(f"{spec_at}.spec.{other_key}: no effect here: {_JOB_NOTES['runPolicy']}")
        for rep_key in rep:
            if rep_key == "restartPolicy":
                notes.append(f"{spec_at}.spec.{key}.{primary}.restartPolicy: no effect here: {_POD_NOTES['restartPolicy']}")
            elif rep_key not in ("replicas", "template"):
                problems.add(f"{spec_at}.spec.{key}.{primary}.{rep_key}", "not supported for trials here")
        pod_template, pod_at = rep.get("template"), f"{spec_at}.spec.{key}.{primary}.template"
    elif kind in _REFUSED:
        raise SpecError(f"{spec_at}.kind", f"{kind} is not supported here: {_REFUSED[kind]}")
    else:
        raise SpecError(f"{spec_at}.kind", f"{kind or 'no kind'} ({api_version or 'no apiVersion'}) is not a trial kind this project can run; "
                        "use a batch/v1 Job, or a single-replica PyTorchJob, TFJob or XGBoostJob")
    if not isinstance(pod_template, Mapping) or not isinstance(pod_template.get("spec"), Mapping):
        raise SpecError(pod_at, "required field is missing (a pod template with spec.containers)")
    if pod_template.get("metadata"):
        notes.append(f"{pod_at}.metadata: no effect here (trials are processes in Ray worker pods, not pods)")
    pod_spec = pod_template["spec"]
    for key in pod_spec:
        if key == "containers":
            continue
        if key == "restartPolicy" and pod_spec[key] == "Never":
            continue  # the same meaning here: a trial's process is not restarted in place
        if key in _POD_NOTES:
            notes.append(f"{pod_at}.spec.{key}: no effect here: {_POD_NOTES[key]}")
        else:
            problems.add(f"{pod_at}.spec.{key}", "not supported: a trial runs as a process in a Ray worker, which has no "
                         + ("volumes of the trial's own" if key == "volumes" else "such pod setting"))
    containers = pod_spec.get("containers") or []
    index = _primary_container(containers, template.primary_container_name, f"{pod_at}.spec.containers", problems)
    problems.raise_if_any()
    container = containers[index]
    c_at = f"{pod_at}.spec.containers[{index}]"
    argv, env, working_dir, resources = _read_container(container, c_at, problems, notes)
    for name in {m.group(1) for text in [*argv, *env.values(), working_dir or ""] for m in PLACEHOLDER.finditer(text)}:
        if name not in refs:
            problems.add(f"{c_at}", f"${{trialParameters.{name}}} names no trialParameter; known: {', '.join(sorted(refs)) or 'none'}")
    problems.raise_if_any()
    if meta:
        for key in meta:
            if key not in ("labels", "annotations", "name", "namespace"):
                notes.append(f"{spec_at}.metadata.{key}: no effect here")
    return ContainerTrial(
        kind=kind, api_version=api_version, image=container.get("image"), argv=tuple(argv), env=env,
        working_dir=working_dir, resources=resources, references=refs,
        labels=dict(meta.get("labels") or {}), annotations=dict(meta.get("annotations") or {}), timeout_s=timeout,
        resources_at=f"{c_at}.resources",
    )


def _positive_seconds(value: Any, at: str, problems: Problems) -> float | None:
    from .nas import katib_number

    number = katib_number(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) or number <= 0:
        problems.add(at, f"must be a positive number of seconds, got {value!r}")
        return None
    return float(number)


def _replica_count(rep_spec: Any, at: str, problems: Problems) -> int:
    """A replica type's ``replicas`` (default 1); -1 after reporting a bad one."""
    value = rep_spec.get("replicas", 1) if isinstance(rep_spec, Mapping) else 1
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.add(at, f"must be a whole number of replicas, got {value!r}")
        return -1
    return value


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
    if template.primary_pod_labels:
        notes.append("trialTemplate.primaryPodLabels: no effect here (one process per trial)")


def _primary_container(containers: Any, name: str | None, at: str, problems: Problems) -> int:
    if not isinstance(containers, list) or not containers or not all(isinstance(c, Mapping) for c in containers):
        problems.add(at, "needs at least one container")
        return 0
    names = [c.get("name") for c in containers]
    if name is None:
        if len(containers) == 1:
            return 0
        problems.add("trialTemplate.primaryContainerName", "required when the pod has several containers")
        return 0
    if name not in names:
        problems.add("trialTemplate.primaryContainerName", f"no container is named {name!r} (containers: {', '.join(map(str, names))})")
        return 0
    index = names.index(name)
    for i, other in enumerate(names):
        if i != index:
            problems.add(f"{at}[{i}]", f"container {other!r}: only the primary container runs here (sidecars are not supported)")
    return index


_CONTAINER_FIELDS = ("name", "command", "args", "env", "envFrom", "workingDir", "resources")  # envFrom: its own error


def _read_container(container: Mapping[str, Any], at: str, problems: Problems, notes: list[str]
                    ) -> tuple[list[str], dict[str, str], str | None, Resources]:
    from .quantities import parse_count, parse_cpu, parse_memory

    for key in container:
        if key in _CONTAINER_NOTES:
            if key != "image":
                notes.append(f"{at}.{key}: no effect here: {_CONTAINER_NOTES[key]}")
        elif key not in _CONTAINER_FIELDS:
            problems.add(f"{at}.{key}", "not supported: a trial runs as a process in a Ray worker" +
                         (" (no volumes of its own)" if key == "volumeMounts" else ""))
    for key in ("command", "args"):
        if container.get(key) is not None and not isinstance(container[key], list):
            problems.add(f"{at}.{key}", "must be a list of strings")
    argv = [a for key in ("command", "args") if isinstance(container.get(key), list) for a in container[key]]
    if not argv and not any(container.get(key) for key in ("command", "args")):
        problems.add(f"{at}.command", "a trial needs a command (or args): the image's entrypoint is not known here")
    if not all(isinstance(a, (str, int, float)) for a in argv):
        problems.add(f"{at}.command", "command and args must be strings")
    env: dict[str, str] = {}
    if container.get("env") is not None and not isinstance(container["env"], list):
        problems.add(f"{at}.env", "must be a list of {name, value} entries")
    for i, item in enumerate(container.get("env") if isinstance(container.get("env"), list) else []):
        if not isinstance(item, Mapping) or "name" not in item:
            problems.add(f"{at}.env[{i}]", "needs a name")
        elif "valueFrom" in item:
            problems.add(f"{at}.env[{i}].valueFrom", "values from the Kubernetes API (fieldRef, secretKeyRef, ...) are not "
                         "available to a trial here; give a value")
        else:
            env[str(item["name"])] = str(item.get("value", ""))
    if container.get("envFrom"):
        problems.add(f"{at}.envFrom", "not supported (give env values)")
    res = container.get("resources") or {}
    if not isinstance(res, Mapping):
        problems.add(f"{at}.resources", "must be a mapping with requests and limits")
        res = {}
    for key in ("requests", "limits"):
        if res.get(key) is not None and not isinstance(res[key], Mapping):
            problems.add(f"{at}.resources.{key}", "must be a mapping of resource names to quantities")
    requests, limits = ({k: v for k, v in (res.get(key) or {}).items()} if isinstance(res.get(key), Mapping) else {}
                        for key in ("requests", "limits"))
    picked = {**limits, **requests}  # requests, falling back to limits
    values: dict[str, Any] = {}
    for key, value in picked.items():
        field_at = f"{at}.resources.{'requests' if key in requests else 'limits'}.{key}"
        try:
            if key == "cpu":
                values["cpu"] = value if parse_cpu(value) >= 0 else problems.add(field_at, "must not be negative")
            elif key == "memory":
                values["memory"] = value if parse_memory(value) >= 0 else problems.add(field_at, "must not be negative")
            elif key == "nvidia.com/gpu":
                values["gpu"] = parse_count(value) if parse_count(value) >= 0 else problems.add(field_at, "must not be negative")
            elif key == "ephemeral-storage":
                notes.append(f"{field_at}: no effect here (trials share the worker's disk)")
            else:
                problems.add(field_at, f"resource {key!r} is not supported (cpu, memory, nvidia.com/gpu)")
        except ValueError as exc:
            problems.add(field_at, str(exc))
    for key in res:
        if key not in ("requests", "limits"):
            problems.add(f"{at}.resources.{key}", "unknown field")
    # A refused value is None here (reported above): its default stands in.
    resources = Resources(cpu=1 if values.get("cpu") is None else values["cpu"], memory=values.get("memory"),
                          gpu=0 if values.get("gpu") is None else values["gpu"])
    return [str(a) for a in argv], env, container.get("workingDir"), resources


def _trial_spec_from_config_map(template: KatibTrialTemplate, namespace: str | None) -> Mapping[str, Any]:
    """Katib's ConfigMap templates: read through the Kubernetes API, which only a pod has."""
    import os

    cm = template.config_map
    assert cm is not None
    at = "trialTemplate.configMap"
    if not cm.config_map_name or not cm.template_path:
        raise SpecError(at, "needs configMapName and templatePath")
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise SpecError(at, "a trial template in a ConfigMap is read through the Kubernetes API, which is only "
                        "reachable when the run is inside a pod; put the template inline as trialSpec")
    import yaml
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except Exception as exc:  # ConfigException: no service-account token (not a pod, or none mounted)
        raise SpecError(at, f"cannot load the in-cluster Kubernetes configuration to read ConfigMap "
                        f"{cm.config_map_name}: {str(exc).rstrip('.')}; put the template inline as trialSpec") from None
    ns = cm.config_map_namespace or namespace
    if not ns:
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                ns = f.read().strip()
        except OSError as exc:
            raise SpecError(at, f"no namespace for ConfigMap {cm.config_map_name} (give configMapNamespace): "
                            f"{exc.strerror or exc}") from None
    try:
        data = client.CoreV1Api().read_namespaced_config_map(cm.config_map_name, ns).data or {}
    except Exception as exc:  # the API's own error says why (403, 404, ...)
        raise SpecError(at, f"cannot read ConfigMap {ns}/{cm.config_map_name}: {exc}") from None
    if cm.template_path not in data:
        raise SpecError(f"{at}.templatePath", f"ConfigMap {ns}/{cm.config_map_name} has no key {cm.template_path!r}")
    loaded = yaml.safe_load(data[cm.template_path])
    if not isinstance(loaded, Mapping):
        raise SpecError(f"{at}.templatePath", "the template is not a YAML mapping")
    return loaded
