"""Local Ray clusters that this process starts and stops: for development, tests and benchmarks.

``LocalRayHead`` runs ``ray start --head --block`` in its own temp dir with free ports. Stopping
it sends SIGTERM to that one ``ray start`` process, which takes down exactly the Ray processes it
started (unlike ``ray stop --force``, which kills every Ray process on the machine).
Token authentication stays on: clients get ``RAY_AUTH_MODE=token`` and the token file.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

TOKEN_FILE = Path("~/.ray/auth_token").expanduser()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRayHead:
    """A Ray head node started with ``ray start --head --block``; use as a context manager."""

    def __init__(self, num_cpus: float = 2, *, extra_args: Sequence[str] = (), env: dict[str, str] | None = None):
        self.num_cpus = num_cpus
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.dashboard_port = free_port()
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rtk8s-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.temp_dir / "ray-start.log"

    @property
    def address(self) -> str:
        """The GCS address, for ``ray.init(address=...)`` and ``--address``."""
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The Jobs API address, for ``ray job submit --address``."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def client_env(self) -> dict[str, str]:
        """Environment for a client of this cluster (token authentication on)."""
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env["RAY_AUTH_MODE"] = "token"
        if TOKEN_FILE.exists() and "RAY_AUTH_TOKEN" not in env:
            env["RAY_AUTH_TOKEN_PATH"] = str(TOKEN_FILE)
        return env

    def start(self, timeout: float = 90) -> "LocalRayHead":
        ray_cli = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
        cmd = [
            ray_cli, "start", "--head", "--block", "--disable-usage-stats",
            f"--port={self.port}", f"--dashboard-port={self.dashboard_port}",
            "--dashboard-host=127.0.0.1", "--include-dashboard=true",
            f"--num-cpus={self.num_cpus}", f"--temp-dir={self.temp_dir}",
            f"--ray-client-server-port={free_port()}",
            *self.extra_args,
        ]
        env = {**self.client_env(), **self.extra_env}
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {self._proc.returncode}:\n{self._log.read_text()[-3000:]}")
            if "Ray runtime started" in self._log.read_text(errors="replace"):
                return self
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"Ray head did not start within {timeout}s:\n{self._log.read_text()[-3000:]}")

    def stop(self, timeout: float = 30) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LocalRayHead":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
