"""What each built-in trainable reads from its trial's config, checked against a spec before
anything runs: a parameter it needs that nothing gives is bad input (a trial would fail with a
``KeyError`` deep in a traceback, again for every trial), a value of the wrong kind likewise,
and a parameter it never reads is a warning (every trial would ignore it).

A trial's config holds the spec's ``parameters``, ``trial.fixedParameters`` and, for the NAS
algorithms, what the algorithm assigns (:data:`raytune_k8s.spec.checks.NAS_ASSIGNMENTS`).
Imports nothing heavy: ``raytune-k8s validate`` runs it without Ray, PyTorch or MXNet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping

from ..spec.nas_settings import DartsSettings
from ..spec import ExperimentSpec, Parameter
from ..spec.checks import NAS_ASSIGNMENTS
from ..spec.errors import Problems

#: ``number``: float(value) works; ``whole``: int(value) works without dropping a fraction;
#: ``text``: any scalar, read as a string (``choices`` narrows it).
Kind = Literal["number", "whole", "text"]


@dataclass(frozen=True)
class Reads:
    """One config key a trainable reads."""

    kind: Kind
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Builtin:
    """A built-in trainable: where it lives, the keys it reads, and the keys it cannot run
    without (each entry: one of these names must be given)."""

    target: str
    reads: Mapping[str, Reads]
    needs: tuple[tuple[str, ...], ...] = ()


_NUM, _WHOLE, _TEXT = Reads("number"), Reads("whole"), Reads("text")
_SLEEP = {"sleep": _NUM}
_MNIST = {"lr": _NUM, "num-layers": _WHOLE, "num-hidden": _WHOLE, "batch-size": _WHOLE, "num-epochs": _WHOLE,
          "seed": _WHOLE, "data-dir": _TEXT}
_DARTS_SETTINGS = {name: (_WHOLE if f.type in (int, "int") else _NUM) for name, f in DartsSettings.__dataclass_fields__.items()}
_NAS_DATA = {"data-dir": _TEXT, "image_size": _WHOLE, "train_size": _WHOLE, "seed": _WHOLE}

#: Built-in trainable name -> what it is and reads.
BUILTINS: dict[str, Builtin] = {
    "mnist-mxnet": Builtin("raytune_k8s.trials.mnist_mxnet:train", {**_MNIST, "optimizer": _TEXT}),
    "mnist-torch": Builtin("raytune_k8s.trials.mnist_torch:train", {
        **_MNIST, "optimizer": Reads("text", ("sgd", "adam", "adagrad", "rmsprop")), "model": Reads("text", ("mlp", "cnn")),
    }),
    "branin": Builtin("raytune_k8s.trials.synthetic:branin", {"x": _NUM, "y": _NUM, **_SLEEP}, (("x",), ("y",))),
    "hartmann6": Builtin("raytune_k8s.trials.synthetic:hartmann6", {**{f"x{i}": _NUM for i in range(1, 7)}, **_SLEEP},
                         tuple((f"x{i}",) for i in range(1, 7))),
    # Replays given trial durations (the quota benchmark's Katib-paper trials).
    "replay": Builtin("raytune_k8s.trials.probes:replay", {"durations": _TEXT, "trial_index": _WHOLE, "time_scale": _NUM},
                      (("durations",), ("trial_index",))),
    # Neural architecture search: a DARTS supernet search, an ENAS child network.
    "darts": Builtin("raytune_k8s.trials.nas.darts:train", {
        "algorithm-settings": _TEXT, "search-space": _TEXT, "num-layers": _WHOLE, "num_layers": _WHOLE,
        "nasConfig": _TEXT, "nas_config": _TEXT, **_DARTS_SETTINGS, **_NAS_DATA,
    }, (("search-space", "nasConfig", "nas_config"), ("num-layers", "num_layers", "nasConfig", "nas_config"))),
    "enas-child": Builtin("raytune_k8s.trials.nas.enas_child:train", {
        "architecture": _TEXT, "nn_config": _TEXT, "num_epochs": _WHOLE, "lr": _NUM, "batch_size": _WHOLE,
        "init_channels": _WHOLE, "val_size": _WHOLE, **_NAS_DATA,
    }, (("architecture",), ("nn_config",))),
}


def check_builtin_parameters(spec: ExperimentSpec) -> list[str]:
    """For a spec whose trial is a built-in trainable: raise SpecError for every parameter the
    trainable needs that nothing gives, or that it would read as the wrong kind; return one
    warning line per parameter it never reads. Other trials: nothing to check."""
    trial = spec.trial
    if trial is None or trial.trainable is None or trial.trainable not in BUILTINS:
        return []
    builtin, name = BUILTINS[trial.trainable], trial.trainable
    assigned = set(NAS_ASSIGNMENTS.get(spec.algorithm.name, ())) if spec.nas_config is not None else set()
    given = {p.name for p in spec.parameters} | set(trial.fixed_parameters) | assigned
    problems = Problems()
    missing = [" or ".join(repr(n) for n in alternatives) for alternatives in builtin.needs if not given & set(alternatives)]
    if missing:
        have = ", ".join(p.name for p in spec.parameters) or "none"
        problems.add("parameters", f"trainable {name!r} needs {_join(missing)}, which no parameter (or trial.fixedParameters "
                     f"entry) gives; the parameters here: {have}")
    warnings = []
    for i, param in enumerate(spec.parameters):
        reads = builtin.reads.get(param.name)
        if reads is None:
            warnings.append(f"parameters[{i}].name: trainable {name!r} does not read {param.name!r}, so every trial "
                            f"ignores it (it reads {', '.join(builtin.reads)})")
            continue
        bad = _wrong_value(reads, _values_of(param))
        if bad is None and reads.kind == "whole" and _gives_fractions(param):
            bad = "a double range gives fractions: make it an int parameter (or give a whole step)"
        if bad is not None:
            problems.add(f"parameters[{i}]", f"trainable {name!r} reads {param.name!r} as {_kind_words(reads)}; {bad}")
    for key, value in trial.fixed_parameters.items():
        reads = builtin.reads.get(key)
        if reads is None:
            warnings.append(f"trial.fixedParameters.{key}: trainable {name!r} does not read it, so every trial ignores it")
            continue
        bad = _wrong_value(reads, [value])
        if bad is not None:
            problems.add(f"trial.fixedParameters.{key}", f"trainable {name!r} reads it as {_kind_words(reads)}; {bad}")
    problems.raise_if_any()
    return warnings


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _kind_words(reads: Reads) -> str:
    if reads.choices:
        return "one of " + ", ".join(reads.choices)
    return {"number": "a number", "whole": "a whole number", "text": "text"}[reads.kind]


def _values_of(param: Parameter) -> list[Any]:
    """Values standing for what the parameter can take: its list, or its range's bounds."""
    fs = param.space
    if fs.values is not None:
        return list(fs.values)
    return [v for v in (fs.min, fs.max) if v is not None]


def _gives_fractions(param: Parameter) -> bool:
    """A double range, unless a whole step from a whole min keeps it on whole numbers."""
    fs = param.space
    if param.type != "double" or fs.values is not None:
        return False
    return not (fs.step is not None and float(fs.step).is_integer() and fs.min is not None and float(fs.min).is_integer())


def _wrong_value(reads: Reads, values: Iterable[Any]) -> str | None:
    """Why one of ``values`` cannot be read as ``reads`` says, or None."""
    for value in values:
        if reads.choices:
            if str(value) not in reads.choices:
                return f"{value!r} is not one of them"
            continue
        if reads.kind == "text":
            continue
        number = _as_number(value)
        if number is None:
            return f"{value!r} is not a number"
        if reads.kind == "whole" and not number.is_integer():
            return f"{value!r} is not a whole number"
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


__all__ = ["BUILTINS", "Builtin", "Reads", "check_builtin_parameters"]
