"""Per-epoch checkpoints for function trainables, through Tune's Checkpoint API.

A trial writes its state into a fresh directory and reports it with the epoch's metrics; Tune
persists it to the experiment's storage (shared storage on a cluster), so a trial restarted on
another node, or by ``Tuner.restore``, continues from its last finished epoch; under PBT a trial
also starts from a copy of a better trial's checkpoint.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ray import tune

STATE_FILE = "trial_state.json"


@contextmanager
def latest_checkpoint() -> Iterator[tuple[Path | None, dict[str, Any]]]:
    """The directory of the trial's last checkpoint (or None) and its saved state dict."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        yield None, {}
        return
    with checkpoint.as_directory() as directory:
        path = Path(directory)
        state = json.loads((path / STATE_FILE).read_text()) if (path / STATE_FILE).exists() else {}
        yield path, state


def report_with_checkpoint(metrics: dict[str, Any], state: dict[str, Any], save: Callable[[Path], object]) -> None:
    """Report ``metrics`` with a checkpoint holding ``state`` plus whatever ``save`` writes."""
    with tempfile.TemporaryDirectory(prefix="raytune-k8s-ckpt-") as directory:
        path = Path(directory)
        save(path)
        (path / STATE_FILE).write_text(json.dumps(state))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def check_same_shape(saved: dict[str, Any], wanted: dict[str, Any]) -> None:
    """A checkpoint (under PBT possibly another trial's) fits only a network of its own shape."""
    if saved != wanted:
        raise ValueError(
            f"the checkpoint holds a network of shape {saved}, this trial asks for {wanted}: "
            "under pbt, make the parameters that shape the network fixedParameters"
        )
