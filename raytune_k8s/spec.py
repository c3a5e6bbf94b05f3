"""The experiment file: typed models in Katib v1beta1's shape, loading, and field-named errors.

Every problem with a spec surfaces as one :class:`SpecError` naming the field path
(``parameters[1].feasibleSpace``) and the reason, before anything is started.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal, Mapping, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Scalar = Union[bool, int, float, str]


class SpecError(ValueError):
    """A bad experiment spec: ``field`` is the dotted path of the offending field."""

    def __init__(self, field: str, reason: str, source: str | None = None):
        self.field = field
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {reason}" if field else f"{where}{reason}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Objective(_Model):
    type: Literal["maximize", "minimize"]
    metric: str = Field(alias="objectiveMetricName", min_length=1)
    goal: float | None = None
    additional_metrics: list[str] = Field(default_factory=list, alias="additionalMetricNames")

    @property
    def mode(self) -> Literal["max", "min"]:
        return "max" if self.type == "maximize" else "min"

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b``."""
        return a > b if self.type == "maximize" else a < b

    def reached(self, value: float) -> bool:
        """True when ``value`` meets the goal (if there is one)."""
        if self.goal is None:
            return False
        return value >= self.goal if self.type == "maximize" else value <= self.goal


class Setting(_Model):
    name: str = Field(min_length=1)
    value: Scalar


class Resources(_Model):
    """What one trial (or the searcher actor) needs; ``cpu`` may be ``"500m"``."""

    cpu: float | str = 1
    gpu: int = Field(default=0, ge=0)
    memory: str | int | None = None


class Algorithm(_Model):
    name: str = Field(alias="algorithmName", min_length=1)
    settings: list[Setting] = Field(default_factory=list, alias="algorithmSettings")
    resources: Resources | None = None

    def settings_dict(self) -> dict[str, Scalar]:
        return {s.name: s.value for s in self.settings}


class EarlyStopping(_Model):
    name: str = Field(alias="algorithmName", min_length=1)
    settings: list[Setting] = Field(default_factory=list, alias="algorithmSettings")

    def settings_dict(self) -> dict[str, Scalar]:
        return {s.name: s.value for s in self.settings}


class FeasibleSpace(_Model):
    min: float | None = None
    max: float | None = None
    step: float | None = None
    values: list[Scalar] | None = Field(default=None, alias="list")
    distribution: Literal["uniform", "logUniform", "normal", "logNormal"] = "uniform"


class Parameter(_Model):
    name: str = Field(min_length=1)
    type: Literal["double", "int", "discrete", "categorical"] = Field(alias="parameterType")
    space: FeasibleSpace = Field(alias="feasibleSpace")


class Trial(_Model):
    """What a trial runs: exactly one of a built-in trainable, a function or a command."""

    trainable: str | None = None
    function: str | None = None
    command: list[str] | str | None = None
    fixed_parameters: dict[str, Scalar] = Field(default_factory=dict, alias="fixedParameters")
    resources: Resources = Field(default_factory=Resources)
    retries: int = Field(default=0, ge=0)


class ExperimentSpec(_Model):
    name: str = Field(min_length=1, max_length=63)
    objective: Objective
    algorithm: Algorithm
    early_stopping: EarlyStopping | None = Field(default=None, alias="earlyStopping")
    parameters: list[Parameter] = Field(min_length=1)
    parallel_trials: int = Field(default=3, gt=0, alias="parallelTrialCount")
    max_trials: int = Field(gt=0, alias="maxTrialCount")
    max_failed_trials: int = Field(default=3, ge=0, alias="maxFailedTrialCount")
    trial: Trial

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(by_alias=True, exclude_none=True), sort_keys=False)


# ---------------------------------------------------------------- loading


def parse_spec(source: str | Path | Mapping[str, Any] | ExperimentSpec) -> ExperimentSpec:
    """Read a spec from a path, a YAML string or a dict; raise :class:`SpecError` on any problem."""
    if isinstance(source, ExperimentSpec):
        return source
    origin: str | None = None
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        text, origin = _read_text(source)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise SpecError("", f"invalid YAML: {where}{problem}", origin) from None
    if not isinstance(data, Mapping):
        raise SpecError("", "the experiment must be a YAML mapping", origin)
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(_field_path(err["loc"]), _reason(err), origin) from None
    try:
        check_semantics(spec)
    except SpecError as exc:
        raise SpecError(exc.field, exc.reason, origin) from None
    return spec


def _read_text(source: str | Path) -> tuple[str, str | None]:
    if isinstance(source, Path) or ("\n" not in source and source.endswith((".yaml", ".yml"))):
        path = Path(source)
        if not path.is_file():
            raise SpecError("", f"experiment file {str(path)!r} does not exist", None)
        return path.read_text(), str(path)
    return source, None


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "union[", "literal[")) or part in ("str", "int", "float", "bool", "list[str]"):
            continue  # pydantic's union branch names are not fields
        else:
            out += ("." if out else "") + str(part)
    return out


def _reason(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    return str(err["msg"]).removeprefix("Value error, ")


# ---------------------------------------------------------------- semantic checks

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_semantics(spec: ExperimentSpec) -> None:
    """Cross-field rules pydantic's types cannot express (Katib's validator does the same)."""
    if not _NAME.match(spec.name):
        raise SpecError("name", f"{spec.name!r} must be lowercase letters, digits and '-' (a Kubernetes name)")
    if spec.parallel_trials > spec.max_trials:
        raise SpecError(
            "parallelTrialCount",
            f"{spec.parallel_trials} is greater than maxTrialCount {spec.max_trials}",
        )
    seen: set[str] = set()
    for i, param in enumerate(spec.parameters):
        if param.name in seen:
            raise SpecError(f"parameters[{i}].name", f"duplicate parameter name {param.name!r}")
        seen.add(param.name)
        _check_parameter(param, f"parameters[{i}].feasibleSpace")
    _check_trial(spec.trial)
    if spec.algorithm.resources is not None:
        _check_resources(spec.algorithm.resources, "algorithm.resources")


def _check_parameter(param: Parameter, at: str) -> None:
    fs = param.space
    if param.type in ("categorical", "discrete"):
        if fs.values is None or len(fs.values) == 0:
            raise SpecError(f"{at}.list", f"a {param.type} parameter needs a non-empty list")
        if fs.min is not None or fs.max is not None or fs.step is not None:
            raise SpecError(at, f"a {param.type} parameter takes 'list', not min/max/step")
        if param.type == "discrete" and not all(_is_number(v) for v in fs.values):
            raise SpecError(f"{at}.list", "a discrete parameter's list must hold numbers")
        if len(set(map(str, fs.values))) != len(fs.values):
            raise SpecError(f"{at}.list", "values must be distinct")
        return
    if fs.values is not None:
        raise SpecError(f"{at}.list", f"a {param.type} parameter takes min/max, not 'list'")
    for bound in ("min", "max"):
        if getattr(fs, bound) is None:
            raise SpecError(f"{at}.{bound}", f"a {param.type} parameter needs '{bound}'")
    lo, hi = float(fs.min), float(fs.max)  # type: ignore[arg-type]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise SpecError(at, "min and max must be finite numbers")
    if param.type == "int":
        for bound, value in (("min", lo), ("max", hi), ("step", fs.step)):
            if value is not None and value != int(value):
                raise SpecError(f"{at}.{bound}", f"an int parameter needs a whole number, got {value:g}")
    if lo > hi:
        raise SpecError(at, f"min {lo:g} is greater than max {hi:g}")
    if lo == hi:
        raise SpecError(at, f"min equals max ({lo:g}): the range is empty")
    if fs.distribution in ("logUniform", "logNormal") and lo <= 0:
        raise SpecError(f"{at}.min", f"a {fs.distribution} distribution needs min > 0, got {lo:g}")
    if fs.step is not None:
        if fs.step <= 0:
            raise SpecError(f"{at}.step", f"step must be positive, got {fs.step:g}")
        span = hi - lo
        if fs.step > span:
            raise SpecError(f"{at}.step", f"step {fs.step:g} is larger than the range {lo:g}..{hi:g}")
        n = span / fs.step
        if abs(n - round(n)) > 1e-6 * max(1.0, n):
            raise SpecError(f"{at}.step", f"step {fs.step:g} does not divide the range {lo:g}..{hi:g}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_trial(trial: Trial) -> None:
    given = [k for k in ("trainable", "function", "command") if getattr(trial, k) not in (None, "", [])]
    if len(given) != 1:
        raise SpecError(
            "trial",
            "give exactly one of 'trainable', 'function' or 'command'"
            + (f" (got {', '.join(given)})" if given else ""),
        )
    if trial.function is not None and not re.match(r"^[\w.]+:\w+$", trial.function):
        raise SpecError("trial.function", f"{trial.function!r} must look like 'package.module:function'")
    _check_resources(trial.resources, "trial.resources")


def _check_resources(res: Resources, at: str) -> None:
    try:
        cpu = parse_cpu(res.cpu)
    except ValueError as exc:
        raise SpecError(f"{at}.cpu", str(exc)) from None
    if cpu < 0:
        raise SpecError(f"{at}.cpu", f"must not be negative, got {res.cpu}")
    if res.memory is not None:
        try:
            parse_memory(res.memory)
        except ValueError as exc:
            raise SpecError(f"{at}.memory", str(exc)) from None


# ---------------------------------------------------------------- Kubernetes quantities

_MEMORY_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}


def parse_cpu(value: float | int | str) -> float:
    """CPU as a Kubernetes quantity (``2``, ``"1.5"``, ``"500m"``) -> cores."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a CPU quantity (like 2, 0.5 or 500m)") from None


def parse_memory(value: int | str) -> int:
    """Memory as a Kubernetes quantity (``"2Gi"``, ``"512M"``, bytes) -> bytes."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", value)
    if not match or match.group(2) not in _MEMORY_UNITS:
        raise ValueError(f"{value!r} is not a memory quantity (like 512Mi or 2Gi)")
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2)])
