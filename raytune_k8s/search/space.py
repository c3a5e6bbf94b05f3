"""The search space: spec parameters as dimensions that every algorithm can use.

A :class:`Dimension` knows how to sample itself, how to enumerate a grid and how to map to and
from a continuous coordinate (for model-based searchers). Algorithms translate dimensions into
their library's own space objects in their own modules.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ..spec import ExperimentSpec, Parameter, Scalar


@dataclass(frozen=True)
class Dimension:
    """One parameter: ``kind`` is double|int|discrete|categorical."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    values: tuple[Scalar, ...] = ()
    distribution: str = "uniform"

    # ---- facts

    @property
    def is_choice(self) -> bool:
        return self.kind in ("discrete", "categorical")

    @property
    def is_log(self) -> bool:
        return self.distribution in ("logUniform", "logNormal")

    @property
    def is_normal(self) -> bool:
        return self.distribution in ("normal", "logNormal")

    def normal_params(self) -> tuple[float, float]:
        """Mean and standard deviation (in log space for logNormal): [min, max] spans +-3 sd."""
        lo, hi = self.warped_bounds()
        return (lo + hi) / 2, (hi - lo) / 6

    def warped_bounds(self) -> tuple[float, float]:
        """The bounds in the coordinate the distribution is uniform/normal in."""
        assert self.low is not None and self.high is not None
        if self.is_log:
            return math.log(self.low), math.log(self.high)
        return self.low, self.high

    # ---- values

    def snap(self, value: float) -> float | int:
        """Clip into [low, high], round onto the step grid, and cast ints."""
        assert self.low is not None and self.high is not None
        value = min(max(float(value), self.low), self.high)
        if self.step:
            value = self.low + round((value - self.low) / self.step) * self.step
            value = min(max(value, self.low), self.high)
        if self.kind == "int":
            return int(round(value))
        return float(value)

    def from_unit(self, u: float) -> Any:
        """Map ``u`` in [0, 1] onto the dimension (a choice picks the u-quantile value)."""
        if self.is_choice:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        lo, hi = self.warped_bounds()
        x = lo + u * (hi - lo)
        return self.snap(math.exp(x) if self.is_log else x)

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one value from the dimension's distribution."""
        if self.is_choice:
            return self.values[int(rng.integers(len(self.values)))]
        if self.is_normal:
            mean, sd = self.normal_params()
            x = rng.normal(mean, sd)
            return self.snap(math.exp(x) if self.is_log else x)
        if self.kind == "int" and not self.is_log:
            # Uniform over the whole numbers (and steps) of the range, each equally likely.
            grid = self.grid()
            return grid[int(rng.integers(len(grid)))]
        return self.from_unit(float(rng.random()))

    def grid(self) -> list[Any]:
        """All values a grid search tries; a double needs a step."""
        if self.is_choice:
            return list(self.values)
        assert self.low is not None and self.high is not None
        step = self.step or (1 if self.kind == "int" else None)
        if step is None:
            raise ValueError(f"parameter {self.name!r}: a grid over a double needs a step")
        n = int(round((self.high - self.low) / step))
        return [self.snap(self.low + i * step) for i in range(n + 1)]


@dataclass(frozen=True)
class SearchSpace:
    """The ordered dimensions of an experiment."""

    dimensions: tuple[Dimension, ...]

    @classmethod
    def from_spec(cls, spec: ExperimentSpec) -> "SearchSpace":
        return cls(tuple(_dimension(p) for p in spec.parameters))

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self.dimensions)

    def __len__(self) -> int:
        return len(self.dimensions)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {d.name: d.sample(rng) for d in self.dimensions}

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every combination, first parameter slowest (like nested loops in spec order)."""
        axes: Sequence[list[Any]] = [d.grid() for d in self.dimensions]
        for combo in itertools.product(*axes):
            yield dict(zip(self.names, combo))

    def grid_size(self) -> int:
        return math.prod(len(d.grid()) for d in self.dimensions)


def _dimension(p: Parameter) -> Dimension:
    fs = p.space
    if p.type in ("discrete", "categorical"):
        return Dimension(p.name, p.type, values=tuple(fs.values or ()))
    if fs.min is not None and fs.min == fs.max:  # Katib allows min == max: a parameter that takes one value
        value = int(fs.min) if p.type == "int" else float(fs.min)
        return Dimension(p.name, "discrete", values=(value,))
    return Dimension(
        p.name,
        p.type,
        low=fs.min,
        high=fs.max,
        step=fs.step,
        distribution=fs.distribution,
    )
