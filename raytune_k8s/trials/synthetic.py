"""Known test functions as trials (built-ins ``branin`` and ``hartmann6``), for checking that
searchers learn and for benchmarks.

``branin`` (2-d, minimum 0.397887) and ``hartmann6`` (6-d, minimum -3.32237) report ``value``;
optional ``sleep`` seconds make each trial last that long, and ``t_start``/``t_end`` (wall
clock, seconds) say when it ran (for scheduling benchmarks).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

BRANIN_MIN = 0.397887
HARTMANN6_MIN = -3.32237

_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array(
    [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def branin_value(x: float, y: float) -> float:
    """Branin-Hoo on x in [-5, 10], y in [0, 15]."""
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


def hartmann6_value(xs: list[float]) -> float:
    """Hartmann 6-d on [0, 1]^6."""
    x = np.asarray(xs, dtype=float)
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def branin(config: dict[str, Any]) -> dict[str, float]:
    start = time.time()
    time.sleep(float(config.get("sleep", 0)))
    return {"value": branin_value(float(config["x"]), float(config["y"])), "t_start": start, "t_end": time.time()}


def hartmann6(config: dict[str, Any]) -> dict[str, float]:
    start = time.time()
    time.sleep(float(config.get("sleep", 0)))
    return {"value": hartmann6_value([float(config[f"x{i}"]) for i in range(1, 7)]), "t_start": start, "t_end": time.time()}
