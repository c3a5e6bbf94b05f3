"""DARTS' and ENAS' algorithm settings, by Katib's names and with Katib's defaults.

Torch-free, so a spec can be checked without it. ``from_settings`` reads an experiment's
``algorithmSettings`` (errors name the field); ``from_mapping`` reads the dict a trial gets
(Katib's ``algorithm-settings`` trial parameter holds numbers as strings, ``"None"`` = default).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, TypeVar

from .settings import Settings

S = TypeVar("S", bound="_KatibSettings")


class _KatibSettings:
    #: name -> (minimum, maximum or None), Katib's validation
    BOUNDS: dict[str, tuple[float, float | None]] = {}
    #: each subclass is a dataclass (declared for the type checker: ``dataclasses.fields`` takes one)
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @classmethod
    def from_settings(cls: type[S], settings: Settings) -> S:
        """Read (and mark as read) every setting of this algorithm from ``algorithmSettings``."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.default is dataclasses.MISSING:
                raise TypeError(f"{cls.__name__}.{f.name} has no default (each setting has Katib's)")
            low, high = cls.BOUNDS.get(f.name, (None, None))
            if f.type in ("int", int):  # no integer setting has an upper bound
                values[f.name] = settings.integer(f.name, f.default, None if low is None else int(low))
            else:
                values[f.name] = settings.number(f.name, f.default, low, high)
        return cls(**values)

    @classmethod
    def from_mapping(cls: type[S], mapping: Mapping[str, Any]) -> S:
        """From a plain dict (unknown names and bad values raise ValueError naming the setting)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - set(fields))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, raw in mapping.items():
            if raw is None or raw == "None":
                continue
            cast = int if fields[name].type in ("int", int) else float
            try:
                value = cast(float(raw)) if cast is int and float(raw).is_integer() else cast(raw)
                if not math.isfinite(value):
                    raise ValueError
            except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
                raise ValueError(f"setting {name} must be {'a whole number' if cast is int else 'a finite number'}, got {raw!r}") from None
            low, high = cls.BOUNDS.get(name, (None, None))
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError(f"setting {name} must be in [{low}, {high if high is not None else 'inf'}], got {raw!r}")
            values[name] = value
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DartsSettings(_KatibSettings):
    """Katib's DARTS settings (defaults from its darts suggestion service). ``num_workers`` is
    accepted for compatibility; the data lives in memory, so no loader workers are started."""

    num_epochs: int = 50
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    w_grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_weight_decay: float = 1e-3
    batch_size: int = 128
    num_workers: int = 4
    init_channels: int = 16
    print_step: int = 50
    num_nodes: int = 4
    stem_multiplier: int = 3

    BOUNDS = {
        "num_epochs": (1, None),
        "w_lr": (0.0, None),
        "w_lr_min": (0.0, None),
        "alpha_lr": (0.0, None),
        "w_weight_decay": (0.0, None),
        "alpha_weight_decay": (0.0, None),
        "w_momentum": (0.0, None),
        "w_grad_clip": (0.0, None),
        "batch_size": (1, None),
        "num_workers": (0, None),
        "init_channels": (1, None),
        "print_step": (1, None),
        "num_nodes": (1, None),
        "stem_multiplier": (1, None),
    }


@dataclass(frozen=True)
class EnasSettings(_KatibSettings):
    """Katib's ENAS controller settings (defaults and ranges from its enas suggestion service)."""

    controller_hidden_size: int = 64
    controller_temperature: float = 5.0
    controller_tanh_const: float = 2.25
    controller_entropy_weight: float = 1e-5
    controller_baseline_decay: float = 0.999
    controller_learning_rate: float = 5e-5
    controller_skip_target: float = 0.4
    controller_skip_weight: float = 0.8
    controller_train_steps: int = 50
    controller_log_every_steps: int = 10

    BOUNDS = {
        "controller_hidden_size": (1, None),
        "controller_temperature": (0.0, None),
        "controller_tanh_const": (0.0, None),
        "controller_entropy_weight": (0.0, None),
        "controller_baseline_decay": (0.0, 1.0),
        "controller_learning_rate": (0.0, 1.0),
        "controller_skip_target": (0.0, 1.0),
        "controller_skip_weight": (0.0, None),
        "controller_train_steps": (1, None),
        "controller_log_every_steps": (1, None),
    }
