"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1e3``) as numbers, via the client library."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation


def _quantity(value: float | int | str, what: str, example: str) -> Decimal:
    from kubernetes.utils.quantity import parse_quantity

    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a {what} quantity (like {example})")
    try:
        number = parse_quantity(value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value))
    except (ValueError, InvalidOperation, TypeError):
        raise ValueError(f"{value!r} is not a {what} quantity (like {example})") from None
    if not number.is_finite() or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{value!r} is not a finite {what} quantity")
    return number


def parse_cpu(value: float | int | str) -> float:
    """CPU as a Kubernetes quantity (``2``, ``"1.5"``, ``"500m"``) -> cores."""
    return float(_quantity(value, "CPU", "2, 0.5 or 500m"))


def parse_memory(value: int | str) -> int:
    """Memory as a Kubernetes quantity (``"2Gi"``, ``"512M"``, ``"1e9"``, bytes) -> bytes."""
    return int(_quantity(value, "memory", "512Mi or 2Gi"))


def parse_count(value: float | int | str, what: str = "GPU") -> float:
    """A plain count such as ``nvidia.com/gpu: 1``."""
    return float(_quantity(value, what, "1"))
