"""Connecting to Ray: an embedded local Ray by default, or a cluster by address; and what of
Ray's own output reaches the terminal while an experiment runs."""

from __future__ import annotations

import io
import logging
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import ray

#: Set (to 1) to show Ray's and Tune's logs and the trials' own output (``--verbose`` sets it).
VERBOSE_ENV = "RAYTUNE_K8S_VERBOSE"
#: Ray Tune's switch between its two console output engines.
TUNE_NEW_OUTPUT_ENV = "RAY_AIR_NEW_OUTPUT"


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
    before, new_output = ray_logger.level, os.environ.get(TUNE_NEW_OUTPUT_ENV)
    ray_logger.setLevel(logging.ERROR)
    # Tune's newer output engine prints its "Configuration for experiment" box and "View detailed
    # results here" even at verbose=0; its classic one prints nothing at 0 (Tune's own switch).
    os.environ[TUNE_NEW_OUTPUT_ENV] = "0"
    try:
        yield
    finally:
        ray_logger.setLevel(before)
        if new_output is None:
            os.environ.pop(TUNE_NEW_OUTPUT_ENV, None)
        else:
            os.environ[TUNE_NEW_OUTPUT_ENV] = new_output


#: The death reason a raylet logs when the autoscaler drains it for being idle: a planned scale-down.
IDLE_DRAIN = "AUTOSCALER_DRAIN_IDLE"


class PlannedScaleDownFilter(io.TextIOBase):
    """A text stream in front of the driver's stdout that turns Ray's report of a raylet that
    ended, when the raylet's own last lines say the autoscaler drained it as idle, into one calm
    line (or nothing, unless verbose).

    Ray's per-node watcher calls every raylet exit without "Raylet received SIGTERM" in its log
    "unexpected" ("... SIGKILL by the user or system OOM killer ...") and publishes it to every
    driver, and a drained raylet shuts itself down without that signal: a scale-down read like a
    crash. Any other raylet death (a crash, a node lost) passes through unchanged.
    """

    def __init__(self, stream: Any, calm_line: str | None = None):
        self._stream = stream
        self._calm_line = calm_line
        self._drop_newline = False

    def write(self, text: str) -> int:
        if "Raylet is terminated" in text and IDLE_DRAIN in text:
            self._drop_newline = True  # print() writes its "\n" separately
            if self._calm_line:
                self._stream.write(self._calm_line)
            return len(text)
        if self._drop_newline and text == "\n":
            self._drop_newline = False
            return len(text) if not self._calm_line else self._stream.write(text)
        self._drop_newline = False
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def planned_scale_downs_told_apart() -> Iterator[None]:
    """Install :class:`PlannedScaleDownFilter` on ``sys.stdout`` (where Ray prints such reports)
    for the block."""
    before = sys.stdout
    sys.stdout = PlannedScaleDownFilter(before, "(raylet) an idle worker node was removed by the autoscaler"
                                        if verbose() else None)
    try:
        yield
    finally:
        sys.stdout = before


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
    with planned_scale_downs_told_apart():
        with _joined_or_started(address):
            yield


#: Ray's GCS keeps the events of the last this-many tasks (for ``ray list tasks``); Ray's default,
#: 100,000, grew the embedded head by 25 KB per trial over an experiment's first ~30,000 trials
#: (about three tasks per trial). A value the user set is kept; ``cluster/`` sets the same.
GCS_TASK_EVENTS = ("RAY_task_events_max_num_task_in_gcs", "10000")


@contextmanager
def _environment_default(name: str, value: str) -> Iterator[None]:
    """``name`` is ``value`` in this block unless set already (read by the processes Ray starts)."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


@contextmanager
def _joined_or_started(address: str | None) -> Iterator[None]:
    address = address or os.environ.get("RAY_ADDRESS") or None
    # Ray sets its driver logger's level when it starts: ERROR unless verbose (see quiet_ray_logs).
    log_to_driver, logging_level = verbose(), logging.INFO if verbose() else logging.ERROR
    if address:
        ray.init(address=address, log_to_driver=log_to_driver, logging_level=logging_level)
    else:  # "local": a Ray of its own, never one that `ray start` left running on this machine
        with _environment_default(*GCS_TASK_EVENTS):
            ray.init(address="local", include_dashboard=False, log_to_driver=log_to_driver, logging_level=logging_level)
    try:
        yield
    finally:
        ray.shutdown()
