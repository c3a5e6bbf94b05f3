"""Where an experiment created through a Kubeflow client runs its driver: a Ray job on the
cluster whose dashboard address is given (``http(s)://...``: Ray's Jobs API, so the driver runs
on the cluster's head and outlives the notebook's machine), else a process of its own here (its
own session, so the notebook may exit), joining ``address`` when one is given.

Either way the driver is ``raytune-k8s run <manifest> --storage-path <storage>``: the storage
path must be one both the notebook and the driver see (on a cluster: a shared volume or bucket).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any


def for_address(address: str | None) -> "LocalDriver | RayJobDriver":
    if address and address.startswith(("http://", "https://")):
        return RayJobDriver(address)
    return LocalDriver(address)


class LocalDriver:
    """A background process of its own session, on the embedded Ray or joining ``address``."""

    def __init__(self, address: str | None):
        self.address = address

    def start(self, record: Path, manifest: Path, storage: Path) -> dict[str, Any]:
        env = dict(os.environ)
        if self.address:
            env["RAY_ADDRESS"] = self.address
        with open(record / "driver.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "raytune_k8s", "run", str(manifest), "--storage-path", str(storage), "--no-report"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            )
        return {"pid": proc.pid}

    def running(self, driver: dict[str, Any]) -> bool:
        return _alive(int(driver["pid"]))

    def stop(self, driver: dict[str, Any]) -> None:
        """SIGTERM, as ``ray job stop`` does: finished trials are kept, the summary written."""
        pid = int(driver["pid"])
        if _alive(pid):
            os.killpg(pid, 15)
            deadline = time.monotonic() + 60
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)

    def log_tail(self, record: Path, driver: dict[str, Any]) -> str:
        return _tail((record / "driver.log").read_text(errors="replace") if (record / "driver.log").exists() else "")


class RayJobDriver:
    """A Ray job submitted through the Jobs API at ``address`` (the cluster's dashboard)."""

    def __init__(self, address: str):
        self.address = address

    def _client(self) -> Any:
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.address)

    def start(self, record: Path, manifest: Path, storage: Path) -> dict[str, Any]:
        job_id = f"katib-{manifest.parent.name}-{uuid.uuid4().hex[:8]}"
        entrypoint = (f"python -m raytune_k8s run {shlex.quote(str(manifest))} --storage-path {shlex.quote(str(storage))} "
                      "--no-report")
        self._client().submit_job(entrypoint=entrypoint, submission_id=job_id)
        return {"job_id": job_id, "address": self.address}

    def running(self, driver: dict[str, Any]) -> bool:
        from ray.job_submission import JobStatus

        return self._client().get_job_status(driver["job_id"]) in (JobStatus.PENDING, JobStatus.RUNNING)

    def stop(self, driver: dict[str, Any]) -> None:
        client = self._client()
        client.stop_job(driver["job_id"])  # SIGTERM to the driver, as `ray job stop`
        deadline = time.monotonic() + 60
        while self.running(driver) and time.monotonic() < deadline:
            time.sleep(0.5)

    def log_tail(self, record: Path, driver: dict[str, Any]) -> str:
        try:
            return _tail(self._client().get_job_logs(driver["job_id"]))
        except Exception as exc:  # the cluster is gone: say so
            return f"(job logs unavailable: {exc})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child, not yet reaped) has ended
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    if state == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no driver output)"
