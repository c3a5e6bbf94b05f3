"""The type check: mypy over raytune_k8s/ by pyproject.toml's [tool.mypy] (issue 26).

Run as a test so that the README's test command (which .ci/run runs) checks the types too.
A cold run takes about a minute on 2 cores; mypy keeps its cache in .mypy_cache/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_passes() -> None:
    # mypy comes with the dev extra (bash scripts/setup-dev.sh); without it this fails, naming it.
    run = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"python -m mypy failed:\n{run.stdout}{run.stderr}"
