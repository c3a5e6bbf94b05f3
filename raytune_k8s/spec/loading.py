"""Reading an experiment file: either format, every problem reported with its field."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from pydantic import ValidationError

from .checks import check_semantics
from .errors import SpecError
from .katib import is_manifest, manifest_to_spec
from .models import ExperimentSpec
from .optimization_job import is_optimization_job, optimization_job_to_spec


#: The largest experiment file read (real ones are a few KiB).
MAX_FILE_BYTES = 16 * 2**20


#: What a file is, as ``raytune-k8s validate`` names it.
SHORT_FORMAT, KATIB_EXPERIMENT, OPTIMIZATION_JOB = "experiment", "Katib v1beta1 Experiment", "Kubeflow Trainer OptimizationJob"


def _same(field_: str) -> str:
    return field_


@dataclass
class LoadedSpec:
    """A checked spec, where it came from, and notes on fields that have no effect here."""

    spec: ExperimentSpec
    origin: str | None = None
    #: a Katib Experiment manifest (False for the short format and an OptimizationJob)
    katib_manifest: bool = False
    notes: list[str] = field(default_factory=list)
    #: Likely mistakes that do not stop a run (e.g. a parameter the trainable never reads).
    warnings: list[str] = field(default_factory=list)
    #: what the file is: :data:`SHORT_FORMAT`, :data:`KATIB_EXPERIMENT` or :data:`OPTIMIZATION_JOB`
    format: str = SHORT_FORMAT
    #: a field of :attr:`spec` -> where the file has it (``name`` -> ``metadata.name`` in a manifest)
    field_of: Callable[[str], str] = _same

    def relabel(self, error: SpecError) -> SpecError:
        """``error`` (about fields of :attr:`spec`) naming the file's fields instead, from this file."""
        return SpecError.of([(self.field_of(f), r) for f, r in error.problems], self.origin)


SpecSource = str | os.PathLike[str] | Mapping[str, Any] | ExperimentSpec


def load_document(source: SpecSource) -> LoadedSpec:
    """Read and fully check a spec from a path, a YAML string, a dict or a model."""
    if isinstance(source, ExperimentSpec):
        return LoadedSpec(source)
    origin: str | None = None
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        text, origin = _read_text(source)
        data = _one_document(text, origin)
    if not isinstance(data, Mapping):
        raise SpecError("", "the experiment must be a YAML mapping", origin)
    notes: list[str] = []
    warnings: list[str] = []
    fmt, field_of = _format_of(data)
    try:
        if fmt == OPTIMIZATION_JOB:
            data, field_of = optimization_job_to_spec(data, notes)
        elif fmt == KATIB_EXPERIMENT:
            data = manifest_to_spec(data, notes)
    except SpecError as exc:  # already about the file's own fields
        raise exc.at(origin) from None
    loaded = LoadedSpec(_checked(data, notes, warnings, field_of, origin), origin, fmt == KATIB_EXPERIMENT, [], [], fmt, field_of)
    loaded.notes = [_relabel_line(n, field_of) if n.startswith("trialTemplate") else n for n in notes]
    loaded.warnings = [_relabel_line(w, field_of) for w in warnings]
    return loaded


def _format_of(data: Mapping[str, Any]) -> tuple[str, Callable[[str], str]]:
    if is_optimization_job(data):
        return OPTIMIZATION_JOB, _same
    if is_manifest(data):
        return KATIB_EXPERIMENT, manifest_path
    return SHORT_FORMAT, _same


def _checked(data: Mapping[str, Any], notes: list[str], warnings: list[str], field_of: Callable[[str], str],
             origin: str | None) -> ExperimentSpec:
    """The model of ``data``, checked; SpecError names the file's fields."""
    try:
        spec = _validate_model(data)
        check_semantics(spec, notes, warnings)
    except SpecError as exc:
        raise SpecError.of([(field_of(f), r) for f, r in exc.problems], origin) from None
    return spec


def _relabel_line(line: str, field_of: Callable[[str], str]) -> str:
    """``"field: text"`` with the file's name for the field."""
    head, sep, rest = line.partition(": ")
    return field_of(head) + sep + rest if sep else line


def parse_spec(source: SpecSource) -> ExperimentSpec:
    """Read a spec from a path, a YAML string or a dict; raise :class:`SpecError` on any problem."""
    return load_document(source).spec


def _read_text(source: str | os.PathLike[str]) -> tuple[str, str | None]:
    if isinstance(source, os.PathLike) or ("\n" not in source and source.endswith((".yaml", ".yml", ".json"))):
        path = Path(source)
        try:
            info = path.stat()
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError
            if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block, or never end
                raise SpecError("", f"{str(path)!r} is not a regular file (a pipe or a device?); give an experiment file")
            if info.st_size > MAX_FILE_BYTES:
                raise SpecError("", f"experiment file {str(path)!r} is {info.st_size / 2**20:.0f} MiB; an experiment file "
                                f"is at most {MAX_FILE_BYTES // 2**20} MiB")
            return path.read_text(), str(path)
        except FileNotFoundError:
            raise SpecError("", f"experiment file {str(path)!r} does not exist") from None
        except IsADirectoryError:
            raise SpecError("", f"{str(path)!r} is a directory, not an experiment file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError("", f"cannot read experiment file {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    return str(source), None


def _one_document(text: str, origin: str | None) -> Any:
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError("", f"invalid YAML: {where}{problem}", origin) from None
    if len(documents) > 1:
        raise SpecError("", f"the file holds {len(documents)} YAML documents; give one experiment per file", origin)
    return documents[0] if documents else None


def manifest_path(field: str) -> str:
    """A spec field's path in a Katib manifest (``name`` is ``metadata.name``)."""
    if field in ("name", "namespace"):
        return f"metadata.{field}"
    if not field or field.startswith(("metadata", "apiVersion", "kind", "spec", "status")):
        return field
    return f"spec.{field}"


def _validate_model(data: Mapping[str, Any]) -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        problems = [(_field_path(err["loc"]), _reason(err)) for err in exc.errors()]
        raise SpecError.of(_one_line_per_field(_dedupe(problems))) from None


def _one_line_per_field(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A field whose type is a union fails once per alternative: one line, the reasons joined."""
    reasons: dict[str, list[str]] = {}
    for field_, reason in problems:
        reasons.setdefault(field_, []).append(reason)
    return [(f, "; or ".join(rs)) for f, rs in reasons.items()]


def _dedupe(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen, out = set(), []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "union[", "literal[", "constrained-")) or part in (
            "str", "int", "float", "bool", "list[str]", "dict[str,any]"
        ):
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
