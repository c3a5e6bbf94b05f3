"""What of Ray's own output reaches a run's terminal (no Ray session needed)."""

from __future__ import annotations

import io

import pytest

from raytune_k8s.experiment.runtime import PlannedScaleDownFilter

# The report Ray's per-node watcher publishes when a raylet ends without "Raylet received
# SIGTERM" in its log (ray/_private/process_watcher.py), with the last lines of that log.
_REPORT = ("Raylet is terminated. Termination is unexpected. Possible reasons include: (1) SIGKILL by the user or "
           "system OOM killer, (2) Invalid memory access from Raylet causing SIGSEGV or SIGBUS, (3) Other termination "
           "signals. Last 20 lines of the Raylet logs:\n    {lines}")
_DRAINED = ("[2026-12-07 00:49:00,297 I 591 591] (raylet) main.cc:481: Raylet graceful shutdown triggered with death "
            "info: reason: AUTOSCALER_DRAIN_IDLE\n    [2026-12-07 00:49:00,322 I 591 591] (raylet) stats.h:176: Stats "
            "module has shutdown.\n")
_CRASHED = "[2026-12-07 00:49:00,297 I 591 591] (raylet) node_manager.cc:512: Sending heartbeat\n"


def _through_ray_printer(message: str, calm_line: str | None) -> str:
    """``message`` printed by Ray's own driver-side printer of published errors, into the filter."""
    import sys

    from ray._private.worker import print_worker_logs  # what print_to_stdstream calls, less its de-duplication

    out = io.StringIO()
    before, sys.stdout = sys.stdout, PlannedScaleDownFilter(out, calm_line)
    try:
        print_worker_logs({"lines": [message], "pid": "raylet", "is_err": False}, sys.stdout)
        print("progress line")
    finally:
        sys.stdout = before
    return out.getvalue()


@pytest.mark.parametrize("calm_line", [None, "(raylet) an idle worker node was removed by the autoscaler"])
def test_an_idle_scale_down_does_not_read_like_a_crash(calm_line):
    shown = _through_ray_printer(_REPORT.format(lines=_DRAINED), calm_line)
    assert "unexpected" not in shown and "OOM" not in shown
    assert shown == (f"{calm_line}\n" if calm_line else "") + "progress line\n"


def test_a_raylet_that_crashed_is_still_reported():
    shown = _through_ray_printer(_REPORT.format(lines=_CRASHED), None)
    assert "Termination is unexpected" in shown and "Sending heartbeat" in shown and shown.endswith("progress line\n")
