"""Finished trials leave Tune's controller, so its bookkeeping stays the size of what still runs.

Tune's controller holds every trial of an experiment until the end: the Trial objects (config,
last result, running statistics of every metric), each one's JSON state, which every experiment
snapshot writes again, and the sets by status; its loop checks all of them at each step
(``is_finished``). Measured at 10,000 trivial trials: 54-92 KB of driver memory per trial, and
an experiment snapshot of 11 KB per trial. Nothing of ours needs Tune to hold a finished
trial: its results are in its folder and in the journal, the searcher actor has been told its
result, and the stop rules and the progress line count it themselves.

:class:`Retirement` takes finished trials out of the controller once Tune is done with them
(ended, no actor, no pending decision or save), in a batch whenever more than ``keep`` have
accumulated. First it appends one line per trial to :data:`RETIRED_FILE` in the experiment
directory (what the summary, ``results``, the report and a resume need: id, status, config,
folder, start and end times, error file, the metrics' running statistics) and fsyncs it, copies
their folders out of the driver's staging area (which Tune copies whole at each save); only then
are they removed (from the controller and from its callbacks' tables), so a trial is always in Tune's next snapshot or in this file (in both
for a moment: the file's line is the final word). :func:`read_retired` reads it back.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from .atomic_files import upload_tree_atomic
from .internals import (CONTROLLER_BY_TRIAL_ID, CONTROLLER_ENDED_SETS, CONTROLLER_TRIAL_ACTORS, CONTROLLER_TRIAL_SETS,
                        CONTROLLER_TRIALS, controller_callbacks, controller_of, experiment_dir_of,
                        forget_logged_encodings)

RETIRED_FILE = "retired_trials.jsonl"
#: How many finished trials Tune keeps before a batch of them is retired (the environment
#: variable sets it, for tests and for runs that want Tune's own view of more of them).
KEEP_ENV = "RAYTUNE_K8S_TUNE_KEEPS_FINISHED"
DEFAULT_KEEP = 1000

_ENDED = ("TERMINATED", "ERROR")


def keep_from_env() -> int:
    try:
        return max(0, int(os.environ.get(KEEP_ENV, DEFAULT_KEEP)))
    except ValueError:
        return DEFAULT_KEEP


def retired_record(trial: Any) -> dict[str, Any]:
    """What is kept of a retired trial (see the module docstring)."""
    meta = trial.run_metadata
    return {
        "trial_id": trial.trial_id,
        "tune_status": trial.status,
        "config": trial.config,
        "relative_logdir": trial.storage.trial_dir_name,
        "start": meta.start_time,
        "end": meta.last_result_time,
        "error": meta.error_filename,
        "metric_analysis": {m: {k: v for k, v in stats.items() if k in ("max", "min", "last", "avg")}
                            for m, stats in meta.metric_analysis.items()},
    }


class Retirement:
    """Retires the finished trials a controller is done with (see the module docstring), when
    more than ``keep`` are held. Called with the controller Tune hands its scheduler at every
    step; the check costs O(1) until there is a batch to retire."""

    def __init__(self, keep: int | None = None):
        self.keep = keep_from_env() if keep is None else keep

    def maybe_retire(self, wrapped_controller: Any) -> int:
        """Retire a batch if more than ``keep`` finished trials are held; returns how many."""
        controller = controller_of(wrapped_controller)
        ended: list[set[Any]] = [s for s in (getattr(controller, name, None) for name in CONTROLLER_ENDED_SETS)
                                 if isinstance(s, set)]
        if len(ended) != len(CONTROLLER_ENDED_SETS) or sum(len(s) for s in ended) <= self.keep:
            return 0
        actors = getattr(controller, CONTROLLER_TRIAL_ACTORS)
        decisions = getattr(controller, CONTROLLER_BY_TRIAL_ID[1])
        ready = [t for s in ended for t in s
                 if t.status in _ENDED and t not in actors and t.trial_id not in decisions
                 and t.temporary_state.saving_to is None]
        if not ready:
            return 0
        append_retired(Path(experiment_dir_of(controller)), [retired_record(t) for t in ready])
        for trial in ready:
            _unstage(trial)
        _forget(controller, ready)
        forget_logged_encodings()
        return len(ready)


def _unstage(trial: Any) -> None:
    """Copy the trial's folder from the driver's staging area to the experiment directory now,
    and remove it from the staging area: Tune copies the whole staging area at each save of its
    state, walking every trial's folder, which took a third of the driver's time at 30,000
    trials. Only for local storage (the copy is then a local one); otherwise Tune's saves go on
    copying it."""
    storage = trial.storage
    try:
        local, dest = storage.trial_driver_staging_path, storage.trial_fs_path
        is_local = getattr(storage.storage_filesystem, "type_name", None) == "local"
    except (AttributeError, RuntimeError):
        return
    if not is_local or not os.path.isdir(local) or os.path.realpath(local) == os.path.realpath(dest):
        return
    try:
        upload_tree_atomic(local, dest)
    except OSError:
        return  # kept where it is: Tune's next save copies it
    shutil.rmtree(local, ignore_errors=True)


def _forget(controller: Any, trials: list[Any]) -> None:
    """Remove ``trials`` from the controller and from every table of its callbacks keyed by them."""
    gone = set(trials)
    ids = {t.trial_id for t in trials}
    held = getattr(controller, CONTROLLER_TRIALS)
    held[:] = [t for t in held if t not in gone]
    for name in CONTROLLER_TRIAL_SETS:
        getattr(controller, name).difference_update(gone)
    for name in CONTROLLER_BY_TRIAL_ID:
        table = getattr(controller, name)
        for trial_id in ids:
            table.pop(trial_id, None)
    for callback in controller_callbacks(controller):
        # Tune's own callbacks keep tables keyed by the Trial (the JSON logger's configs, the
        # progress callback's last results and prints): the retired trials leave them too.
        for value in vars(callback).values():
            if isinstance(value, dict) and value:
                for trial in gone:
                    value.pop(trial, None)
            elif isinstance(value, set) and value:
                value.difference_update(gone)


def append_retired(experiment_dir: Path, records: list[dict[str, Any]]) -> None:
    """Append ``records`` to the experiment's retired-trials file, one write, fsynced."""
    from ray.tune.utils.util import SafeFallbackEncoder

    data = "".join(json.dumps(r, cls=SafeFallbackEncoder) + "\n" for r in records).encode()
    fd = os.open(experiment_dir / RETIRED_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_retired(experiment_dir: Path) -> Iterator[dict[str, Any]]:
    """The retired trials' records, in the order they were retired; a last line cut short by a
    kill is skipped (those trials were still Tune's: removal comes after the write)."""
    path = Path(experiment_dir) / RETIRED_FILE
    if not path.exists():
        return
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "trial_id" in record:
                yield record
