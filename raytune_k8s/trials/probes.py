"""Trainables that exercise the machinery rather than a model: scheduling, early stopping,
checkpoint restarts and the quota benchmark's recorded trials.

They are part of the package, not of ``tests/``, because Ray workers and drivers started by
``ray job submit`` must import them by name. ``replay`` is a built-in (see
``trials/declarations.py``); ``learning_curve`` and ``counter`` are used as ``function:
raytune_k8s.trials.probes:NAME``. ``trials/witness.py`` is the chaos benchmark's probe.
"""

from __future__ import annotations

import math
import time
from typing import Any


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


def replay(config: dict[str, Any]) -> dict[str, float | str]:
    """Replays a recorded trial: sleeps ``durations`` (comma-separated seconds) at
    ``trial_index``, times ``time_scale``; reports its wall-clock ``t_start``/``t_end`` and the
    node it ran on, for scheduling benchmarks."""
    import ray

    seconds = float(str(config["durations"]).split(",")[int(config["trial_index"])]) * float(config.get("time_scale", 1.0))
    start = time.time()
    time.sleep(seconds)
    return {"duration_s": seconds, "t_start": start, "t_end": time.time(), "node": ray.get_runtime_context().get_node_id()[:8]}
