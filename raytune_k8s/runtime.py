"""Connecting to Ray: an embedded local Ray by default, or a cluster by address; and what of
Ray's own output reaches the terminal while an experiment runs."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

import ray

#: Set (to 1) to show Ray's and Tune's logs and the trials' own output (``--verbose`` sets it).
VERBOSE_ENV = "RAYTUNE_K8S_VERBOSE"


def verbose() -> bool:
    """Whether Ray's and Tune's logs and the trials' output are shown (``$RAYTUNE_K8S_VERBOSE``)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0", "false", "no")


@contextmanager
def quiet_ray_logs() -> Iterator[None]:
    """Unless :func:`verbose`: only errors of Ray's and Tune's loggers reach the terminal for
    the block (no "Started a local Ray instance", no Tune snapshot warnings); a failed trial's
    traceback (Tune logs it as an error) still does. The level is restored after."""
    if verbose():
        yield
        return
    ray_logger = logging.getLogger("ray")
    before = ray_logger.level
    ray_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        ray_logger.setLevel(before)


@contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Use the Ray already connected, else join ``address``/``$RAY_ADDRESS``, else start one.

    Only a Ray started here is shut down here. The trials' own output (their workers' stdout and
    stderr) is forwarded to this terminal only when :func:`verbose`: by default the run shows
    its progress lines, and each failed trial's error through them.
    """
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    # Ray sets its driver logger's level when it starts: ERROR unless verbose (see quiet_ray_logs).
    output = {"log_to_driver": verbose(), "logging_level": logging.INFO if verbose() else logging.ERROR}
    if address:
        ray.init(address=address, **output)
    else:  # "local": a Ray of its own, never one that `ray start` left running on this machine
        ray.init(address="local", include_dashboard=False, **output)
    try:
        yield
    finally:
        ray.shutdown()
