"""Our own programs standing in for those inside Katib's example images, with the same flags and
the same metric output, trained on the offline MNIST. A trial command that names Katib's path
runs ours when that path is not on the machine (the project's worker image installs ours there).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Path inside Katib's example image -> our module that does the same job.
STAND_INS: dict[str, str] = {
    "/opt/pytorch-mnist/mnist.py": "raytune_k8s.trials.katib_programs.pytorch_mnist",
    "/opt/pbt/pbt_test.py": "raytune_k8s.trials.katib_programs.simple_pbt",
}


def stand_in(argv: list[str]) -> list[str] | None:
    """``argv`` running our program instead of a missing Katib one; None when nothing changes."""
    for i, arg in enumerate(argv[:2]):
        module = STAND_INS.get(arg)
        if module is None or os.path.exists(arg):
            continue
        if i == 1 and not Path(argv[0]).name.startswith("python"):
            continue
        return [sys.executable, "-m", module, *argv[i + 1:]]
    return None


def stand_ins_used(argv: list[str]) -> list[str]:
    """The Katib programs that ``argv`` names and this machine lacks (for one note per run)."""
    return [a for a in argv[:2] if a in STAND_INS and not os.path.exists(a)]
