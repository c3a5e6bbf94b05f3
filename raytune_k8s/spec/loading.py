"""Reading an experiment file: either format, every problem reported with its field."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from .checks import check_semantics
from .errors import SpecError
from .katib import is_manifest, manifest_to_spec
from .models import ExperimentSpec


#: The largest experiment file read (real ones are a few KiB).
MAX_FILE_BYTES = 16 * 2**20


@dataclass
class LoadedSpec:
    """A checked spec, where it came from, and notes on fields that have no effect here."""

    spec: ExperimentSpec
    origin: str | None = None
    katib_manifest: bool = False
    notes: list[str] = field(default_factory=list)
    #: Likely mistakes that do not stop a run (e.g. a parameter the trainable never reads).
    warnings: list[str] = field(default_factory=list)


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
    katib = is_manifest(data)
    try:
        if katib:
            data = manifest_to_spec(data, notes)
        spec = _validate_model(data)
        check_semantics(spec, notes, warnings)
    except SpecError as exc:
        if katib:
            exc = SpecError.of([(manifest_path(f), r) for f, r in exc.problems])
        raise exc.at(origin) from None
    if katib:
        notes = [manifest_path(n.split(": ", 1)[0]) + ": " + n.split(": ", 1)[1] if n.startswith("trialTemplate") else n for n in notes]
    if katib:
        warnings = [manifest_path(w.split(": ", 1)[0]) + ": " + w.split(": ", 1)[1] for w in warnings]
    return LoadedSpec(spec, origin, katib, notes, warnings)


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
