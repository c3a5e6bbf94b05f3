"""The experiment's journal: every trial event, written to the experiment directory as it happens.

Tune writes each trial's ``result.json`` in the driver's local staging folder and copies it to
the experiment directory (the storage path) when it saves the experiment, about every 10 s, and
at the end of the run. A driver killed between two saves (``ray job stop`` SIGKILLs after its
wait, a pod is evicted, the head dies) would leave the results since the last save only in the
staging folder, which dies with it. :class:`ResultJournal`, a Tune callback, appends each trial's
start, results, checkpoints and end to ``journal.jsonl`` in the experiment directory the moment
the driver receives them (flushed at once, fsynced at most ``FSYNC_EVERY_S`` later), so every
reported result is on the storage path within a second of reaching the driver.
``raytune_k8s.recovery.reconcile`` reads it back when an experiment resumes.
"""

from __future__ import annotations

import json
import os
import re
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Container, Iterator

from ray.tune import Callback

from ..files import write_atomic

JOURNAL_FILE = "journal.jsonl"
FSYNC_EVERY_S = 0.5
#: The key of the journal's length (bytes) in the state Tune saves for it.
JOURNAL_BYTES = "journal_bytes"
#: A copy of a trial's ``start`` event, in its folder of the experiment directory: a journal
#: damaged after the fact (cut, partly lost) still leaves every trial that started findable.
START_RECORD = ".trial_start.json"


class ResultJournal(Callback):
    """Appends trial events to ``<experiment_dir>/journal.jsonl``: ``start`` (with Tune's own
    serialized trial, so a trial the saved experiment state does not know yet can be restored),
    ``result``, ``checkpoint`` (its path), ``complete`` and ``error``.

    Each event is one ``write`` of a whole line to a file opened for appending, so a kill never
    leaves half an event. Tune saves the journal's length with its experiment state
    (:meth:`get_state`): a resume that finds a shorter journal knows it was cut, not just
    behind (:func:`raytune_k8s.recovery.reconcile.check_saved_state`). The file is closed at the
    experiment's end, and on every other way out of ``fit()`` (:func:`closing_journals`)."""

    def __init__(self, experiment_dir: Path):
        self.path = Path(experiment_dir) / JOURNAL_FILE
        self._fd: int | None = None
        self._size = 0
        self._synced = 0.0
        self._dirty = False

    def __getstate__(self) -> dict[str, Any]:  # pickled with the Tuner: no open file
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        ResultJournal.__init__(self, state["path"].parent)

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def _write(self, event: dict[str, Any]) -> None:
        from ray.tune.utils.util import SafeFallbackEncoder

        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
            _open_journals.add(self)
        data = (json.dumps(event, cls=SafeFallbackEncoder) + "\n").encode()
        view = memoryview(data)
        while view:  # a regular file takes it in one write; the loop is for the rare short write
            view = view[os.write(self._fd, view):]
        self._size += len(data)
        self._dirty = True
        self._sync(force=False)

    def _sync(self, force: bool) -> None:
        if self._fd is not None and self._dirty and (force or time.monotonic() - self._synced >= FSYNC_EVERY_S):
            os.fsync(self._fd)
            self._synced, self._dirty = time.monotonic(), False

    def close(self) -> None:
        """fsync and close the file (it reopens, appending, if another event comes)."""
        if self._fd is None:
            return
        try:
            self._sync(force=True)
        finally:
            os.close(self._fd)
            self._fd = None
            _open_journals.discard(self)

    # ---- saved with Tune's experiment state

    def get_state(self) -> dict[str, Any]:
        size = self._size if self._fd is not None else (self.path.stat().st_size if self.path.exists() else 0)
        return {JOURNAL_BYTES: size}

    def set_state(self, state: dict[str, Any]) -> None:
        pass  # the file itself is the state; the length is for the check before a resume

    # ---- Tune's events

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from ray.tune.utils.util import SafeFallbackEncoder

        state, metadata = trial.get_json_state()
        event = {"event": "start", "trial_id": trial.trial_id, "dir": trial.storage.trial_dir_name,
                 "state": state, "metadata": metadata, "t": time.time()}
        # The folder's record first: a trial the journal names always has it, so a journal cut
        # after the fact never loses a trial (a kill in between leaves the record alone, and
        # the resume writes its start back into the journal).
        record = self.path.parent / event["dir"] / START_RECORD
        if not record.exists():  # a retried trial keeps its first record (the journal has the rest)
            record.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(record, json.dumps(event, cls=SafeFallbackEncoder), fsync=False)
        self._write(event)

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
        self.close()


#: Journals with an open file (weakly: one dropped unclosed is closed by the OS at exit).
_open_journals: "weakref.WeakSet[ResultJournal]" = weakref.WeakSet()


@contextmanager
def closing_journals() -> Iterator[None]:
    """Every journal opened in this block is closed when it ends, however it ends (Tune calls
    ``on_experiment_end`` only when its loop ran, not on an error before it or on a
    KeyboardInterrupt)."""
    before = set(_open_journals)
    try:
        yield
    finally:
        for journal in list(_open_journals):
            if journal not in before:
                journal.close()


#: Every event starts with its kind and its trial: ``{"event": "...", "trial_id": "..."`` (the
#: order :class:`ResultJournal` writes them in), so a trial's events can be passed over unparsed.
_EVENT_TRIAL = re.compile(r'^\{"event": "[a-z]+", "trial_id": "([^"]+)"')
_EVENT_TRIAL_BYTES = re.compile(_EVENT_TRIAL.pattern.encode())


def first_damaged_line(experiment_dir: Path, skip_trials: Container[str] = ()) -> int | None:
    """The number of the journal's first whole line that does not parse (None: none). A last
    line cut short by a kill is not damage (it is skipped when read); the lines of
    ``skip_trials`` (retired: their records are final elsewhere) are passed over unparsed."""
    path = Path(experiment_dir) / JOURNAL_FILE
    if not path.exists():
        return None
    with open(path, "rb") as f:  # line by line: a 100,000-trial journal is hundreds of MB
        for i, line in enumerate(f):
            if not line.endswith(b"\n"):
                return None
            if skip_trials:
                head = _EVENT_TRIAL_BYTES.match(line)
                if head is not None and head.group(1).decode() in skip_trials:
                    continue
            try:
                json.loads(line)
            except ValueError:
                return i + 1
    return None


def read_journal(experiment_dir: Path, skip_trials: Container[str] = ()) -> Iterator[dict[str, Any]]:
    """The journal's events in order; a last line cut short by a kill is skipped. The events of
    ``skip_trials`` are passed over without being parsed (a resume skips the retired trials')."""
    path = Path(experiment_dir) / JOURNAL_FILE
    if not path.exists():
        return
    with open(path) as f:
        for line in f:
            if skip_trials:
                head = _EVENT_TRIAL.match(line)
                if head is not None and head.group(1) in skip_trials:
                    continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
