"""Typed access to Katib-style ``algorithmSettings`` lists, with field-named errors."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence, TypeVar

from . import Scalar, Setting, SpecError

T = TypeVar("T")


class Settings:
    """Reads settings by name; any setting nobody read is reported as unknown."""

    def __init__(self, settings: Sequence[Setting], field: str):
        self._field = field
        self._index = {s.name: i for i, s in enumerate(settings)}
        self._values: dict[str, Scalar] = {s.name: s.value for s in settings}
        self._read: set[str] = set()

    def _get(self, name: str, default: T, cast: Callable[[Any], T | None], check: Callable[[T], bool] | None, need: str) -> T:
        self._read.add(name)
        if name not in self._values:
            return default
        raw = self._values[name]
        value: T | None
        try:
            value = cast(raw)  # None: not a value of this kind
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
            value = None
        if value is None or (check is not None and not check(value)):
            raise SpecError(f"{self._field}[{self._index[name]}].value", f"{name} must be {need}, got {raw!r}")
        return value

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def text(self, name: str, default: str) -> str:
        """A non-empty string setting."""
        return self._get(name, default, lambda v: str(v) if not isinstance(v, bool) else None, lambda v: v != "", "a non-empty string")

    def integer(self, name: str, default: int, minimum: int | None = None) -> int:
        def cast(v: Any) -> int:
            if isinstance(v, bool) or float(v) != int(float(v)):
                raise ValueError
            return int(float(v))

        need = "a whole number" + (f" >= {minimum}" if minimum is not None else "")
        return self._get(name, default, cast, None if minimum is None else (lambda v: v >= minimum), need)

    def optional_integer(self, name: str) -> int | None:
        return self.integer(name, 0) if name in self._values else None  # given: the default is never used

    def number(self, name: str, default: float, low: float | None = None, high: float | None = None) -> float:
        def check(v: float) -> bool:
            return math.isfinite(v) and (low is None or v >= low) and (high is None or v <= high)

        need = "a finite number" + (f" in [{low}, {high}]" if low is not None and high is not None else f" >= {low}" if low is not None else "")
        return self._get(name, default, lambda v: float(v) if not isinstance(v, bool) else None, check, need)

    def choice(self, name: str, default: str, options: Sequence[str]) -> str:
        return self._get(name, default, str, lambda v: v in options, f"one of {', '.join(options)}")

    def reject_unused(self) -> None:
        for name in self._values:
            if name not in self._read:
                raise SpecError(f"{self._field}[{self._index[name]}].name", f"unknown setting {name!r}")
