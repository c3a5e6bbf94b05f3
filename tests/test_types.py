"""The type check: mypy over raytune_k8s/ by pyproject.toml's [tool.mypy] (issue 26).

Run as a test so that the README's test command (which .ci/run runs) checks the types too.
A cold run takes about 30 s of one core; mypy keeps its cache in .mypy_cache/. When the session
collects this test, ``conftest.py`` starts the check as the session starts (:func:`start_early`),
at a lower priority than the tests' own processes: it runs while other tests wait on Ray, and
this test only collects its verdict.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_ID = "tests/test_types.py::test_mypy_passes"

_early: list[subprocess.Popen[str]] = []


def _mypy(nice: int = 0) -> subprocess.Popen[str]:
    # mypy comes with the dev extra (bash scripts/setup-dev.sh); without it this fails, naming it.
    return subprocess.Popen([sys.executable, "-m", "mypy"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=(lambda: os.nice(nice)) if nice else None)


def start_early() -> None:
    if not _early:
        _early.append(_mypy(nice=10))


def stop_early() -> None:
    """A check started for a session that did not run this test (stopped by -x, say)."""
    for proc in _early:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_mypy_passes() -> None:
    proc = _early.pop() if _early else _mypy()
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"python -m mypy failed:\n{out}"
