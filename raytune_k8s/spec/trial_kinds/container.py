"""A container, read as the process it runs: argv, env (values, and those the Kubernetes API
would fill in), working directory, resources and volume mounts."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..errors import Problems
from ..models import Resources
from ..quantities import parse_count, parse_cpu, parse_memory
from .pod import ContainerProcess, EnvSource, Volume, read_env_from, read_env_source, read_mounts

CONTAINER_NOTES = {
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
_CONTAINER_FIELDS = ("name", "command", "args", "env", "envFrom", "workingDir", "resources", "volumeMounts")
#: container resource name -> (Resources field, parser, keep the parsed value rather than the quantity)
_RESOURCES: dict[str, tuple[str, Callable[[Any], float], bool]] = {
    "cpu": ("cpu", parse_cpu, False),
    "memory": ("memory", parse_memory, False),
    "nvidia.com/gpu": ("gpu", parse_count, True),
}


def read_container(container: Mapping[str, Any], at: str, problems: Problems, notes: list[str],
                   volumes: tuple[Volume, ...] = (), default_cpu: float | str = 1) -> ContainerProcess:
    """The process of the container at ``at``; each field that cannot be honoured goes into
    ``problems``, each one with no effect into ``notes``. ``default_cpu``: when it sets none."""
    _check_keys(container, at, problems, notes)
    argv = _argv(container, at, problems)
    env, sources = _env(container, at, problems)
    sources += read_env_from(container, at, problems)
    resources = _resources(container, at, problems, notes, default_cpu)
    return ContainerProcess(
        name=container.get("name"), image=container.get("image"), argv=tuple(str(a) for a in argv), env=env,
        working_dir=container.get("workingDir"), resources=resources, env_sources=sources,
        mounts=read_mounts(container, at, volumes, problems), at=at, has_command=bool(container.get("command")),
    )


def _check_keys(container: Mapping[str, Any], at: str, problems: Problems, notes: list[str]) -> None:
    for key in container:
        if key in CONTAINER_NOTES:
            if key != "image":
                notes.append(f"{at}.{key}: no effect here: {CONTAINER_NOTES[key]}")
        elif key not in _CONTAINER_FIELDS:
            problems.add(f"{at}.{key}", "not supported: a trial runs as a process in a Ray worker")


def _argv(container: Mapping[str, Any], at: str, problems: Problems) -> list[Any]:
    for key in ("command", "args"):
        if container.get(key) is not None and not isinstance(container[key], list):
            problems.add(f"{at}.{key}", "must be a list of strings")
    argv = [a for key in ("command", "args") if isinstance(container.get(key), list) for a in container[key]]
    if not argv and not any(container.get(key) for key in ("command", "args")):
        problems.add(f"{at}.command", "a trial needs a command (or args): the image's entrypoint is not known here")
    if not all(isinstance(a, (str, int, float)) for a in argv):
        problems.add(f"{at}.command", "command and args must be strings")
    return argv


def _env(container: Mapping[str, Any], at: str, problems: Problems) -> tuple[dict[str, str], tuple[EnvSource, ...]]:
    """Values given, and values from the Kubernetes API (``valueFrom``)."""
    items = container.get("env")
    if items is not None and not isinstance(items, list):
        problems.add(f"{at}.env", "must be a list of {name, value} entries")
    env: dict[str, str] = {}
    sources: list[EnvSource] = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, Mapping) or "name" not in item:
            problems.add(f"{at}.env[{i}]", "needs a name")
        elif "valueFrom" in item:
            source = read_env_source(item, f"{at}.env[{i}]", problems)
            if source is not None:
                sources.append(source)
        else:
            env[str(item["name"])] = str(item.get("value", ""))
    return env, tuple(sources)


def _resources(container: Mapping[str, Any], at: str, problems: Problems, notes: list[str], default_cpu: float | str) -> Resources:
    """requests, falling back to limits."""
    res = _resources_mapping(container, at, problems)
    requests, limits = (dict(res[key]) if isinstance(res.get(key), Mapping) else {} for key in ("requests", "limits"))
    values: dict[str, Any] = {}
    for key, value in {**limits, **requests}.items():
        field_at = f"{at}.resources.{'requests' if key in requests else 'limits'}.{key}"
        picked = _resource_value(key, value, field_at, problems, notes)
        if picked is not None:
            values[picked[0]] = picked[1]
    for key in res:
        if key not in ("requests", "limits"):
            problems.add(f"{at}.resources.{key}", "unknown field")
    # A refused value is left out (reported): its default stands in.
    return Resources(cpu=default_cpu if values.get("cpu") is None else values["cpu"], memory=values.get("memory"),
                     gpu=0 if values.get("gpu") is None else values["gpu"])


def _resources_mapping(container: Mapping[str, Any], at: str, problems: Problems) -> Mapping[str, Any]:
    res = container.get("resources") or {}
    if not isinstance(res, Mapping):
        problems.add(f"{at}.resources", "must be a mapping with requests and limits")
        return {}
    for key in ("requests", "limits"):
        if res.get(key) is not None and not isinstance(res[key], Mapping):
            problems.add(f"{at}.resources.{key}", "must be a mapping of resource names to quantities")
    return res


def _resource_value(key: str, value: Any, field_at: str, problems: Problems, notes: list[str]) -> tuple[str, Any] | None:
    """(Resources field, value) of one requested resource; None when it has no effect here or
    is refused (reported)."""
    if key == "ephemeral-storage":
        notes.append(f"{field_at}: no effect here (trials share the worker's disk)")
        return None
    if key not in _RESOURCES:
        problems.add(field_at, f"resource {key!r} is not supported (cpu, memory, nvidia.com/gpu)")
        return None
    name, parse, keep_parsed = _RESOURCES[key]
    try:
        parsed = parse(value)
    except ValueError as exc:
        problems.add(field_at, str(exc))
        return None
    if parsed < 0:
        problems.add(field_at, "must not be negative")
        return None
    return name, parsed if keep_parsed else value
