"""The experiment's journal: every trial event, written to the experiment directory as it happens.

Tune writes each trial's ``result.json`` in the driver's local staging folder and copies it to
the experiment directory (the storage path) when it saves the experiment, about every 10 s, and
at the end of the run. A driver killed between two saves (``ray job stop`` SIGKILLs after its
wait, a pod is evicted, the head dies) would leave the results since the last save only in the
staging folder, which dies with it. :class:`ResultJournal`, a Tune callback, appends each trial's
start, results, checkpoints and end to ``journal.jsonl`` in the experiment directory the moment
the driver receives them (flushed at once, fsynced at most ``FSYNC_EVERY_S`` later), so every
reported result is on the storage path within a second of reaching the driver.
``raytune_k8s.recovery`` reads it back when an experiment resumes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO, Any, Iterator

from ray.tune import Callback

JOURNAL_FILE = "journal.jsonl"
FSYNC_EVERY_S = 0.5


class ResultJournal(Callback):
    """Appends trial events to ``<experiment_dir>/journal.jsonl``: ``start`` (with Tune's own
    serialized trial, so a trial the saved experiment state does not know yet can be restored),
    ``result``, ``checkpoint`` (its path), ``complete`` and ``error``."""

    def __init__(self, experiment_dir: Path):
        self.path = Path(experiment_dir) / JOURNAL_FILE
        self._file: IO[str] | None = None
        self._synced = 0.0
        self._dirty = False

    def __getstate__(self) -> dict[str, Any]:  # pickled with the Tuner: no open file
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"].parent)  # type: ignore[misc]

    def _write(self, event: dict[str, Any]) -> None:
        from ray.tune.utils.util import SafeFallbackEncoder

        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a")
        self._file.write(json.dumps(event, cls=SafeFallbackEncoder) + "\n")
        self._file.flush()
        self._dirty = True
        self._sync(force=False)

    def _sync(self, force: bool) -> None:
        if self._file is not None and self._dirty and (force or time.monotonic() - self._synced >= FSYNC_EVERY_S):
            os.fsync(self._file.fileno())
            self._synced, self._dirty = time.monotonic(), False

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        state, metadata = trial.get_json_state()
        self._write({"event": "start", "trial_id": trial.trial_id, "dir": trial.storage.trial_dir_name,
                     "state": state, "metadata": metadata, "t": time.time()})

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._write({"event": "result", "trial_id": trial.trial_id, "result": result})

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        self._write({"event": "checkpoint", "trial_id": trial.trial_id, "path": checkpoint.path})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write({"event": "complete", "trial_id": trial.trial_id, "result": trial.last_result})

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write({"event": "error", "trial_id": trial.trial_id})

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._sync(force=False)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._sync(force=True)
        if self._file is not None:
            self._file.close()
            self._file = None


def read_journal(experiment_dir: Path) -> Iterator[dict[str, Any]]:
    """The journal's events in order; a last line cut short by a kill is skipped."""
    path = Path(experiment_dir) / JOURNAL_FILE
    if not path.exists():
        return
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
