"""Katib's ``spec.nasConfig`` as typed models, and its expansion into candidate operations.

``nasConfig`` has a ``graphConfig`` (``numLayers``, ``inputSizes``, ``outputSizes``) and a list of
``operations``, each an ``operationType`` with Katib-shaped ``parameters`` (``name``,
``parameterType``, ``feasibleSpace``). Every combination of an operation's parameter values is
one candidate operation, as Katib's suggestion services expand them:
``separable_convolution`` with ``filter_size`` [3, 5] is two candidates.

Pydantic and the standard library only: the spec layer imports this without torch or Ray.
"""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

Scalar = Union[int, float, str]
_T = TypeVar("_T")

#: A list field of Katib's API (a Go slice): null, as YAML reads a key whose items are all
#: commented out, is the empty list, as Katib takes it. Every list field of the spec models uses it
#: (a feasibleSpace's ``list`` is optional, so null is already accepted there).
KatibList = Annotated[list[_T], BeforeValidator(lambda value: [] if value is None else value)]

#: Operation types the torch networks of this package can build (Katib's DARTS and ENAS names).
OPERATION_TYPES = (
    "convolution",
    "separable_convolution",
    "depthwise_convolution",
    "dilated_convolution",
    "avg_pooling",
    "max_pooling",
    "reduction",
    "skip_connection",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class NasFeasibleSpace(_Model):
    """Katib's feasibleSpace: a ``list`` of values, or ``min``/``max``/``step`` (strings allowed)."""

    values: list[Scalar] | None = Field(default=None, alias="list")
    min: float | None = None
    max: float | None = None
    step: float | None = None


class NasParameter(_Model):
    name: str = Field(min_length=1)
    type: Literal["categorical", "discrete", "int", "double"] = Field(alias="parameterType")
    space: NasFeasibleSpace = Field(alias="feasibleSpace")

    @model_validator(mode="after")
    def _check(self) -> NasParameter:
        s = self.space
        if self.type in ("categorical", "discrete"):
            if not s.values:
                raise ValueError(f"parameter {self.name!r}: a {self.type} parameter needs feasibleSpace.list")
        elif s.min is None or s.max is None:
            raise ValueError(f"parameter {self.name!r}: an {self.type} parameter needs feasibleSpace.min and max")
        elif s.min > s.max:
            raise ValueError(f"parameter {self.name!r}: feasibleSpace.min {s.min} is above max {s.max}")
        elif s.step is not None and s.step <= 0:
            raise ValueError(f"parameter {self.name!r}: feasibleSpace.step must be > 0")
        elif self.type == "double" and s.step is None:
            raise ValueError(f"parameter {self.name!r}: a double parameter needs feasibleSpace.step to be enumerable")
        return self

    def values(self) -> list[Scalar]:
        """Every value this parameter takes, in order (numbers as numbers)."""
        s = self.space
        if self.type in ("categorical", "discrete"):
            return [katib_number(v) for v in s.values or ()]
        assert s.min is not None and s.max is not None
        if self.type == "int":
            return list(range(int(s.min), int(s.max) + 1, int(s.step or 1)))
        low, high, step = Decimal(str(s.min)), Decimal(str(s.max)), Decimal(str(s.step))
        return [float(low + i * step) for i in range(int((high - low) / step) + 1)]


class NasOperation(_Model):
    type: str = Field(alias="operationType", min_length=1)
    parameters: KatibList[NasParameter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> NasOperation:
        if self.type not in OPERATION_TYPES:
            raise ValueError(f"unknown operationType {self.type!r}; choose one of {', '.join(OPERATION_TYPES)}")
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError(f"operation {self.type!r} names a parameter twice")
        return self


class GraphConfig(_Model):
    num_layers: int = Field(alias="numLayers", gt=0)
    input_sizes: KatibList[int] = Field(default_factory=list, alias="inputSizes")
    output_sizes: KatibList[int] = Field(default_factory=list, alias="outputSizes")


class NasConfig(_Model):
    """Katib's ``spec.nasConfig``."""

    graph: GraphConfig = Field(alias="graphConfig")
    operations: KatibList[NasOperation] = Field(min_length=1)

    def candidates(self) -> list[Operation]:
        """Every concrete operation, in order: the product of each operation's parameter values."""
        return expand_operations(self)


class Operation(_Model):
    """One concrete candidate: an operation type with one value per parameter."""

    type: str
    params: dict[str, Scalar] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        """Katib's DARTS naming: ``separable_convolution_3x3``; other parameters follow as
        ``_name-value`` (``convolution_3x3_num_filter-32_stride-1``); ``skip_connection`` alone."""
        parts = [self.type]
        if "filter_size" in self.params:
            k = self.params["filter_size"]
            parts.append(f"{k}x{k}")
        parts += [f"{key}-{value}" for key, value in self.params.items() if key != "filter_size"]
        return "_".join(parts)

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


def expand_operations(config: NasConfig) -> list[Operation]:
    """The candidate operations of ``config`` (``skip_connection`` ignores its parameters)."""
    out: list[Operation] = []
    for op in config.operations:
        if op.type == "skip_connection" or not op.parameters:
            out.append(Operation(type=op.type))
            continue
        names = [p.name for p in op.parameters]
        for combo in itertools.product(*(p.values() for p in op.parameters)):
            out.append(Operation(type=op.type, params=dict(zip(names, combo))))
    unique: dict[str, Operation] = {}  # the first of each name, in order
    for o in out:
        unique.setdefault(o.name, o)
    return list(unique.values())


_DARTS_NAME = re.compile(r"^(?P<type>[a-z_]+?)_(?P<k>\d+)x(?P=k)$")


def parse_operation(name: str) -> Operation:
    """One name of Katib's DARTS ``search-space`` (``max_pooling_3x3``: max_pooling with
    filter_size 3; ``skip_connection``) as an operation."""
    if name in OPERATION_TYPES:
        return Operation(type=name)
    match = _DARTS_NAME.match(name)
    if not match or match["type"] not in OPERATION_TYPES:
        raise ValueError(f"{name!r} is not an operation name like 'separable_convolution_3x3' or 'skip_connection'")
    return Operation(type=match["type"], params={"filter_size": int(match["k"])})


def darts_search_space(config: NasConfig) -> list[str]:
    """Katib's DARTS ``search-space`` trial parameter: the candidate operation names."""
    return [op.name for op in config.candidates()]


def katib_number(value: Scalar) -> Scalar:
    """Katib writes categorical numbers as strings: "3" -> 3, "0.5" -> 0.5, "max_pooling" stays."""
    if isinstance(value, str):
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                pass
    return value
