"""Says so when the resources trials wait for are not coming, instead of waiting in silence.

Two things are watched while an experiment runs (a Tune ``Callback``, polled from Tune's loop):

* workers that failed to start: the simulated cluster's provider records each one with its
  log's last line in the file ``$RAYTUNE_K8S_FAILED_STARTS`` names; each is printed once, at
  once: ``worker n1 failed to start: <its last log line>``;
* a stall: trials pending with a free slot and none started for ``$RAYTUNE_K8S_RESOURCE_WAIT_S``
  seconds (default 60). One line then says what the trials need and what the cluster has, and
  what the autoscaler reports (workers starting, launches failed), and it repeats each period
  for as long as the stall lasts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.stopper import Stopper

from ..scaling.quota import FAILED_STARTS_ENV
from ..scaling.quota import WORKER_CPU_ENV, WORKER_GPU_ENV, WORKER_MEMORY_ENV

#: Seconds trials may wait for resources before the run says so (environment override).
WAIT_ENV = "RAYTUNE_K8S_RESOURCE_WAIT_S"
DEFAULT_WAIT_S = 60.0
#: How often the failed-starts file and the stall are looked at.
POLL_S = 1.0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _amounts(resources: Mapping[str, float]) -> str:
    shown = {k: v for k, v in resources.items() if v}
    return ", ".join(f"{k} {v:g}" for k, v in shown.items()) or "nothing"


class ResourceWatch(Callback):
    """Reports workers that failed to start and trials that wait too long for resources.

    ``trial_resources`` is one trial's Ray request (``{"CPU": 2}``) and ``parallel`` the trials
    meant to run at once. Picklable: Tune saves it with the experiment and a resume restores it;
    the clock and the file position start afresh in :meth:`setup`.
    """

    def __init__(self, trial_resources: Mapping[str, float], parallel: int):
        self.trial_resources = {k: float(v) for k, v in trial_resources.items() if v}
        self.parallel = parallel
        self._reset()

    def _reset(self) -> None:
        self._wait_s = float(os.environ.get(WAIT_ENV) or DEFAULT_WAIT_S)
        self._failed_starts = Path(os.environ[FAILED_STARTS_ENV]) if os.environ.get(FAILED_STARTS_ENV) else None
        self._read_to = 0
        self._last_poll = float("-inf")
        self._last_start = time.monotonic()
        self._said_at: float | None = None
        self._started = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"trial_resources": self.trial_resources, "parallel": self.parallel}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def setup(self, stop: Stopper | None = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        self._reset()
        if self._failed_starts is not None and self._failed_starts.exists():
            self._read_to = self._failed_starts.stat().st_size  # earlier runs' failures are not this run's

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._last_start = time.monotonic()
        self._said_at = None
        self._started += 1

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        now = time.monotonic()
        if now - self._last_poll < POLL_S:
            return
        self._last_poll = now
        self.report_failed_starts()
        pending = sum(t.status == Trial.PENDING for t in trials)
        running = sum(t.status == Trial.RUNNING for t in trials)
        if not pending or running >= self.parallel:
            self._last_start = now  # nothing waits for a slot: no stall
            self._said_at = None
            return
        waited = now - self._last_start
        if waited >= self._wait_s and (self._said_at is None or now - self._said_at >= self._wait_s):
            self._said_at = now
            _say(self.stall_message(waited, pending, running))

    def report_failed_starts(self) -> list[dict[str, Any]]:
        """Print each worker start failure recorded since the last call; return them."""
        if self._failed_starts is None or not self._failed_starts.exists():
            return []
        with open(self._failed_starts, "rb") as f:
            f.seek(self._read_to)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        self._read_to += len(complete)
        records = [json.loads(line) for line in complete.decode(errors="replace").splitlines() if line.strip()]
        for record in records:
            _say(f"worker {record.get('node') or record.get('instance')} failed to start: {record.get('reason')}")
        return records

    def stall_message(self, waited: float, pending: int, running: int) -> str:
        """What the waiting trials need, what the cluster has and what the autoscaler reports."""
        import ray

        parts = [f"waiting {waited:.0f} s for resources: {pending} trial(s) pending, {running} running of "
                 f"{self.parallel}; each trial needs {_amounts(self.trial_resources)}"]
        try:
            total, free = ray.cluster_resources(), ray.available_resources()
            nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
            parts.append(f"the cluster has {nodes} node(s) with CPU {free.get('CPU', 0):g} free of "
                         f"{total.get('CPU', 0):g}" + (f", GPU {free.get('GPU', 0):g} free of {total['GPU']:g}"
                                                      if total.get("GPU") else ""))
        except Exception as exc:  # noqa: BLE001 - the message is best effort; the run goes on
            parts.append(f"the cluster's resources are unknown ({exc})")
        parts.extend(_autoscaler_view())
        worker = {name: os.environ[env] for name, env in (("CPU", WORKER_CPU_ENV), ("memory", WORKER_MEMORY_ENV),
                                                          ("GPU", WORKER_GPU_ENV)) if os.environ.get(env)}
        if worker:
            parts.append("one worker offers " + ", ".join(f"{k} {v}" for k, v in worker.items()))
        return "; ".join(parts)


def _autoscaler_view() -> list[str]:
    """The autoscaler's own report (workers launching, launches failed), where one runs."""
    try:
        import ray
        from ray.autoscaler.v2.sdk import get_cluster_status

        status = get_cluster_status(ray.get_runtime_context().gcs_address, timeout=5)
    except Exception:  # noqa: BLE001 - no autoscaler (an embedded Ray): nothing to add
        return []
    launching = sum(r.count for r in status.pending_launches) + len(status.pending_nodes)
    failed = sum(r.count for r in status.failed_launches)
    text = f"the autoscaler is starting {launching} worker(s)"
    if failed:
        text += f", {failed} launch(es) failed"
    if status.failed_nodes:
        text += f", {len(status.failed_nodes)} worker(s) died"
    return [text]
