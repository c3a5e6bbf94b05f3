"""One Ray for the whole test session: a local head started with ``ray start --head`` (token
authentication on), which the tests' driver joins and ``ray job submit`` targets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

# Ray reads its authentication mode when it is imported: set it before the first `import ray`.
os.environ["RAY_AUTH_MODE"] = "token"

import pytest  # noqa: E402
import ray  # noqa: E402

from raytune_k8s.sim.cluster import LocalRayHead  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_head() -> Iterator[LocalRayHead]:
    with LocalRayHead(num_cpus=2) as head:
        os.environ.pop("RAY_ADDRESS", None)
        ray.init(address=head.address, log_to_driver=False)
        try:
            yield head
        finally:
            ray.shutdown()


@pytest.fixture
def ray_connected(ray_head: LocalRayHead) -> LocalRayHead:
    """The session's Ray, connected in this process (other fixtures may have disconnected it)."""
    if not ray.is_initialized():
        ray.init(address=ray_head.address, log_to_driver=False)
    return ray_head


_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the test process once pytest is done (summary printed, session's Ray head stopped),
    with pytest's own exit status, skipping the interpreter's teardown: a native library the
    tests loaded (Ray's core worker, MXNet, PyTorch) once crashed there after every test had
    passed (exit 139 after "430 passed" in a clean-clone run), which CI would count as a failure."""
    if _exit_status:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1])
