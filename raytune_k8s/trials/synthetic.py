"""Known test functions as trials, for checking that searchers learn and for benchmarks.

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


def learning_curve(config: dict[str, Any]) -> None:
    """A multi-step trial for early-stopping rules: ``accuracy`` climbs towards a ceiling that
    is highest at ``lr`` = 0.01, one report per step (``steps``, default 9)."""
    from ray import tune

    quality = math.exp(-((math.log10(float(config["lr"])) + 2.0) ** 2))
    for step in range(1, int(config.get("steps", 9)) + 1):
        time.sleep(float(config.get("sleep", 0.05)))
        tune.report({"accuracy": quality * (1.0 - math.exp(-step / 2.0)), "step": step})


def counter(config: dict[str, Any]) -> None:
    """A checkpointing trial for scaling and failure tests: reports ``step`` 1..``steps``
    (default 10), one every ``sleep`` seconds (0.5), each with a checkpoint, and continues from
    its last checkpoint when restarted (on another node, or after ``Tuner.restore``).

    Each report also carries ``node_id`` (the Ray node it ran on), ``starts`` (how many times
    the trial has started) and ``t`` (wall-clock time), for telling restarts and overlap apart.
    With ``wait_for`` N and ``wait_dir`` (a directory every trial can see), a trial first signs
    in there and waits (at most ``wait_timeout`` s, default 120) until N trials have, so that
    the trials that can run at the same time do so before they count.
    """
    import os
    import uuid
    from pathlib import Path

    import ray

    from .checkpoints import latest_checkpoint, report_with_checkpoint

    with latest_checkpoint() as (_, state):
        done, starts = int(state.get("step", 0)), int(state.get("starts", 0)) + 1
    node_id = ray.get_runtime_context().get_node_id()
    wait_for, wait_dir = int(config.get("wait_for", 0)), config.get("wait_dir")
    if wait_for and wait_dir and done == 0:
        directory = Path(wait_dir)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{uuid.uuid4().hex}.{os.getpid()}").touch()
        deadline = time.monotonic() + float(config.get("wait_timeout", 120))
        while len(list(directory.iterdir())) < wait_for and time.monotonic() < deadline:
            time.sleep(0.1)
    for step in range(done + 1, int(config.get("steps", 10)) + 1):
        time.sleep(float(config.get("sleep", 0.5)))
        metrics = {"step": step, "starts": starts, "node_id": node_id, "t": time.time()}
        report_with_checkpoint(metrics, {"step": step, "starts": starts}, lambda path: None)


def replay(config: dict[str, Any]) -> dict[str, float]:
    """Replays a recorded trial: sleeps ``durations`` (comma-separated seconds) at
    ``trial_index``, times ``time_scale``; reports its wall-clock ``t_start``/``t_end`` and the
    node it ran on, for scheduling benchmarks."""
    import ray

    seconds = float(str(config["durations"]).split(",")[int(config["trial_index"])]) * float(config.get("time_scale", 1.0))
    start = time.time()
    time.sleep(seconds)
    return {"duration_s": seconds, "t_start": start, "t_end": time.time(), "node": ray.get_runtime_context().get_node_id()[:8]}
