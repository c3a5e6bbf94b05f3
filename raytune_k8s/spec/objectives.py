"""Several objectives and constraints (the project's extension; Katib's Experiment has one
objective and no constraints).

``objectives: [{metric, direction}]`` is Kubeflow Trainer's OptimizationJob shape; the short
format takes it beside or instead of ``objective``. ``constraints: [{metric, max}]`` (or ``min``,
or both) make a trial feasible when each constrained metric, read by its metric strategy, is
within its bounds. :class:`Targets` is what every reader (searcher, summary, mirror, progress)
asks: a trial's objective values and its constraint violations (Optuna's convention: a value
``<= 0`` is satisfied). No Ray here: the summary and the report read it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The algorithms that take several objectives or constraints (each through Optuna's own
#: multi-objective and constraint support, or, for random, grid and sobol, needing neither).
SEVERAL_OBJECTIVES_ALGORITHMS = ("random", "grid", "sobol", "tpe", "multivariate-tpe", "nsga2", "nsga3", "gp")

Direction = Literal["maximize", "minimize"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ObjectiveTarget(_Model):
    """One of several objectives: a metric and whether to maximize or minimize it
    (``Maximize``/``Minimize``, OptimizationJob's spelling, are taken too)."""

    metric: str = Field(min_length=1)
    direction: Direction

    @field_validator("direction", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @property
    def mode(self) -> Literal["max", "min"]:
        return "max" if self.direction == "maximize" else "min"


class Constraint(_Model):
    """A trial is feasible when ``min <= metric <= max`` (either bound may be left out)."""

    metric: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _a_finite_bound(self) -> "Constraint":
        if self.min is None and self.max is None:
            raise ValueError("give max, min or both")
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"bounds must be finite numbers, got {bound}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    def violations(self, value: float) -> list[float]:
        """How far ``value`` is outside each bound (``<= 0``: inside), one number per bound."""
        out = []
        if self.max is not None:
            out.append(value - self.max)
        if self.min is not None:
            out.append(self.min - value)
        return out

    def bound_names(self) -> list[str]:
        """A name for each number :meth:`violations` gives, in the same order."""
        out = []
        if self.max is not None:
            out.append(f"{self.metric}<={self.max:g}")
        if self.min is not None:
            out.append(f"{self.metric}>={self.min:g}")
        return out

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g} <= {self.metric} <= {self.max:g}"
        return f"{self.metric} <= {self.max:g}" if self.max is not None else f"{self.metric} >= {self.min:g}"


@dataclass(frozen=True)
class Targets:
    """What a trial is scored on: its objectives, in order, and the constraints it must meet.
    Values are read from a trial's values by metric (each already taken by its strategy)."""

    objectives: tuple[ObjectiveTarget, ...]
    constraints: tuple[Constraint, ...] = ()

    @property
    def several(self) -> bool:
        return len(self.objectives) > 1

    @property
    def constrained(self) -> bool:
        return bool(self.constraints)

    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def directions(self) -> list[Direction]:
        return [o.direction for o in self.objectives]

    def values(self, metrics: Mapping[str, Any]) -> list[float] | None:
        """Each objective's value, or None if one is missing or not a finite number."""
        out = []
        for o in self.objectives:
            x = metrics.get(o.metric)
            if not _finite(x):
                return None
            out.append(float(x))
        return out

    def violations(self, metrics: Mapping[str, Any]) -> list[float] | None:
        """Each constraint bound's violation (``<= 0``: met); None if a constrained metric is
        missing (the trial cannot be judged feasible)."""
        out: list[float] = []
        for c in self.constraints:
            x = metrics.get(c.metric)
            if not _finite(x):
                return None
            out += c.violations(float(x))
        return out

    def violation_names(self) -> list[str]:
        """A name for each number :meth:`violations` gives (``accuracy>=0.9``), in order."""
        return [name for c in self.constraints for name in c.bound_names()]

    def feasible(self, metrics: Mapping[str, Any]) -> bool:
        violations = self.violations(metrics)
        return violations is not None and all(v <= 0 for v in violations)


def _finite(x: Any) -> TypeGuard[float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
