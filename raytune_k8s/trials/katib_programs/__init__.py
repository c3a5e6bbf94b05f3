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
    "/opt/tf-mnist-with-summaries/mnist.py": "raytune_k8s.trials.katib_programs.tf_mnist_with_summaries",
    # The xgboost-lightgbm image's entrypoint (see IMAGE_ENTRYPOINTS): Katib's example gives only args.
    "/app/main.py": "raytune_k8s.trials.katib_programs.xgboost_lightgbm",
    # Katib's NAS images run their program from the image's working directory.
    "run_trial.py": "raytune_k8s.trials.nas.run_darts_trial",
    "RunTrial.py": "raytune_k8s.trials.nas.run_enas_trial",
}

#: Katib example images (repository, no tag) whose container runs their entrypoint: the command
#: a trial without one runs there, so that ``stand_in`` can replace it.
IMAGE_ENTRYPOINTS: dict[str, list[str]] = {
    "ghcr.io/kubeflow/katib/xgboost-lightgbm": ["python", "/app/main.py"],
}


def entrypoint_for(image: str | None) -> list[str] | None:
    """The entrypoint of a known Katib image (any tag or digest); None for other images."""
    if not image:
        return None
    repository = image.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    entrypoint = IMAGE_ENTRYPOINTS.get(repository)
    return list(entrypoint) if entrypoint is not None else None


def _script_index(argv: list[str]) -> int | None:
    """Where the program's path is: after ``python`` and its options, else first."""
    if argv and Path(argv[0]).name.startswith("python"):
        i = 1
        while i < len(argv) and argv[i].startswith("-") and argv[i] not in ("-m", "-c"):
            i += 1
        return i if i < len(argv) and argv[i] not in ("-m", "-c") else None
    return 0 if argv else None


def stand_in(argv: list[str]) -> list[str] | None:
    """``argv`` running our program instead of a missing Katib one; None when nothing changes."""
    i = _script_index(argv)
    if i is None or argv[i] not in STAND_INS or os.path.exists(argv[i]):
        return None
    return [sys.executable, "-u", "-m", STAND_INS[argv[i]], *argv[i + 1:]]


def stand_ins_used(argv: list[str]) -> list[str]:
    """The Katib programs that ``argv`` names and this machine lacks (for one note per run)."""
    i = _script_index(argv)
    return [argv[i]] if i is not None and argv[i] in STAND_INS and not os.path.exists(argv[i]) else []
