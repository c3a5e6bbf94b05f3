"""Bringing Tune's saved experiment state up to date from the journal before a resume.

Tune saves its experiment state (each trial's status, last result and checkpoint, and the
search generator's count) every ~10 s. A driver killed between two saves (SIGKILL, a lost head)
leaves a state that is behind: trials that finished since are "running", trials started since
are missing, their checkpoints since are unknown, and results since may be missing from their
``result.json``. Tune would then run finished trials again, from older checkpoints, and report
steps twice. :func:`reconcile` replays ``journal.jsonl`` (see ``raytune_k8s.recovery.journal``) onto the
saved state with Tune's own Trial methods: finished trials become TERMINATED with their last
result, a trial's latest checkpoint is the one the driver last received, missing trials are
added (and counted by the search generator), and every journaled result is in ``result.json``.
The search state is made to agree (:func:`_reconcile_search`). While a run goes on,
:class:`CheckpointOfLastResult` gives a retried trial the checkpoint its last result named.

Before any of that, :func:`check_saved_state` reads every file the resume will read (Tune's
``tuner.pkl``, experiment state, search and callback states, and our journal): a damaged one
falls back to its previous version (kept by :mod:`.atomic_files`) or an older session's, and
without one the resume stops with a :class:`ResumeError` that says what was found and what is
safe; Tune, given a file it cannot read, would log "Failed to restore the run state" and start
the experiment over. :class:`ResumeGuard` checks, before the resumed run's first step, that Tune
really holds every trial the journal knows, finished ones finished.

This reads and writes Tune's private file formats (Ray is pinned; ``tests/test_reliability.py``
trips when they change). If their content is not what this module expects, nothing is changed,
the resume goes on with Tune's state as it is (one warning), and :class:`ResumeGuard` stops it if
finished trials would run again. A rewrite is all or nothing: every new file is computed first,
then written (each atomically), and put back as it was if a write fails.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import pickletools
import re
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ray.tune import Callback

from ..files import PREVIOUS_SUFFIX, TMP_MARK, fsync_dir, previous_path, write_atomic
from .._tune.retire import RETIRED_FILE, read_retired
from .journal import JOURNAL_BYTES, JOURNAL_FILE, START_RECORD, first_damaged_line, read_journal
from ..trials import RETURNED_MARKER
from ..results.tune_state import ERROR, TERMINATED, ResumeError

TUNER_FILE = "tuner.pkl"
#: What a saved state in a format this module does not expect raises while it is read.
FORMAT_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, pickle.UnpicklingError, EOFError)



@dataclass
class _Journaled:
    trial_id: str
    dir: str = ""
    state: str | None = None
    metadata: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: str | None = None
    completed: dict[str, Any] | None = None
    errored: bool = False
    in_journal: tuple[bool, int, bool] = (False, 0, False)  # the journal had: its start, results, its end


@dataclass
class Reconciled:
    """What :func:`reconcile` changed."""

    finished: list[str] = field(default_factory=list)  # running in the state, finished in the journal
    added: list[str] = field(default_factory=list)  # missing from the state
    checkpoints: list[str] = field(default_factory=list)  # a newer checkpoint than the state's
    results_restored: int = 0  # result lines put back into result.json
    journal_events_restored: int = 0  # events the journal had lost, written back from the trial folders

    def __bool__(self) -> bool:
        return bool(self.finished or self.added or self.checkpoints or self.results_restored
                    or self.journal_events_restored)


#: While :func:`reading_once` is active: what was read, by the versions of the files read.
_read: dict[tuple[Any, ...], Any] | None = None


@contextmanager
def reading_once() -> Iterator[None]:
    """Within the block, each version of the journal and of the retired-trials file (its size,
    mtime and inode: a rewrite makes a new one) is read once: a resume's check, reconcile and
    expectations share one reading instead of three (at 60,000 trials each took 11-20 s).
    For a resume's preparation only, when nothing but this module changes the trial folders."""
    global _read
    outer = _read
    _read = {} if outer is None else outer
    try:
        yield
    finally:
        _read = outer


def _version(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _once(kind: str, experiment_dir: Path, read: Callable[[], Any]) -> Any:
    if _read is None:
        return read()
    key = (kind, str(experiment_dir), _version(experiment_dir / JOURNAL_FILE), _version(experiment_dir / RETIRED_FILE))
    if key not in _read:
        _read[key] = read()
    return _read[key]


def _journaled(experiment_dir: Path) -> dict[str, _Journaled]:
    """Every trial the journal knows, with what it knows; then what the trial folders add (a
    journal damaged after the fact: see :func:`_add_from_folders`). Trials retired from Tune's
    controller are left out: they ended, and their records are final (:func:`_retired`)."""
    return _once("journaled", experiment_dir, functools.partial(_read_journaled, experiment_dir))


def _read_journaled(experiment_dir: Path) -> dict[str, _Journaled]:
    trials: dict[str, _Journaled] = {}
    retired = _retired(experiment_dir)
    for event in read_journal(experiment_dir, skip_trials=retired):
        trial = trials.setdefault(event["trial_id"], _Journaled(event["trial_id"]))
        kind = event["event"]
        if kind == "start":
            trial.dir, trial.state, trial.metadata = event["dir"], event["state"], event["metadata"]
        elif kind == "result":
            _add_result(experiment_dir, trial, event["result"])
        elif kind == "checkpoint":
            if _checkpoint_index(event["path"]) >= _checkpoint_index(trial.checkpoint or ""):
                trial.checkpoint = event["path"]
        elif kind == "complete":
            trial.completed = event["result"] or (trial.results[-1] if trial.results else {})
        elif kind == "error":
            trial.errored = True
    for trial in trials.values():
        trial.in_journal = (trial.state is not None, len(trial.results), trial.completed is not None or trial.errored)
    _add_from_folders(experiment_dir, trials, set(retired.values()))
    for trial in trials.values():
        # Its function returned (the trial said so in its folder) but the driver died before it
        # heard: finished all the same, with the last result it reported.
        if (trial.completed is None and not trial.errored and trial.dir
                and (experiment_dir / trial.dir / RETURNED_MARKER).exists()):
            trial.completed = dict(trial.results[-1]) if trial.results else {}
    return trials


def _add_result(experiment_dir: Path, trial: _Journaled, result: dict[str, Any]) -> None:
    trial.results.append(result)
    # A result names the checkpoint it came with, which the trial had written before it
    # reported: Tune registers it a moment later (``checkpoint``), and a kill in between
    # would restart the trial from the one before and report this step again.
    name = result.get("checkpoint_dir_name")
    if name and _checkpoint_index(name) > _checkpoint_index(trial.checkpoint or ""):
        base = Path(trial.checkpoint).parent if trial.checkpoint else experiment_dir / trial.dir
        trial.checkpoint = str(base / name)


def _add_from_folders(experiment_dir: Path, trials: dict[str, _Journaled],
                      retired_folders: frozenset[str] | set[str] = frozenset()) -> None:
    """What the trial folders know and the journal does not: a journal cut or partly lost
    after the fact (a kill never does it: each event is one whole append). A trial that started
    has its start record (:data:`START_RECORD`) in its folder; a trial's ``result.json`` longer
    than its journaled results holds the results the journal lost (:func:`reconcile` writes
    them back into the journal: :func:`_lost_events`)."""
    for record in sorted(experiment_dir.glob(f"*/{START_RECORD}")):
        if record.parent.name in retired_folders:
            continue
        try:
            event = json.loads(record.read_text())
            trial_id, folder, state, metadata = event["trial_id"], event["dir"], event["state"], event["metadata"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a record cut short: the journal's word only
        trial = trials.get(trial_id)
        if trial is None or trial.state is None:
            trial = trials.setdefault(trial_id, _Journaled(trial_id))
            trial.dir, trial.state, trial.metadata = folder, state, metadata
    for trial in trials.values():
        if not trial.dir:
            continue
        path = experiment_dir / trial.dir / "result.json"
        lines = path.read_text().splitlines() if path.exists() else []
        saved = [json.loads(line) for line in lines if line.strip() and _parses(line)]
        if len(saved) > len(trial.results):
            trial.results, trial.checkpoint = [], None
            for result in saved:
                _add_result(experiment_dir, trial, result)


def _lost_events(trials: dict[str, _Journaled]) -> list[dict[str, Any]]:
    """The events the journal lacks of what was recovered without it (from the trial folders,
    or a function's returned marker), in the journal's own form."""
    events: list[dict[str, Any]] = []
    for trial in trials.values():
        started, results, ended = trial.in_journal
        if not started and trial.state is not None:
            events.append({"event": "start", "trial_id": trial.trial_id, "dir": trial.dir, "state": trial.state,
                           "metadata": trial.metadata, "recovered": True})
        events += [{"event": "result", "trial_id": trial.trial_id, "result": r, "recovered": True}
                   for r in trial.results[results:]]
        if not ended and trial.completed is not None:
            events.append({"event": "complete", "trial_id": trial.trial_id, "result": trial.completed, "recovered": True})
    return events


def _journal_with(experiment_dir: Path, events: list[dict[str, Any]]) -> Path:
    """A new journal, prepared beside the journal (not yet in its place: see
    :func:`_apply_all_or_nothing`): its whole lines followed by ``events`` (a line cut short or
    damaged is dropped). Copied line by line: holding a 60,000-trial journal in memory (370 MB,
    a few copies while it was split and joined) left a resumed driver 650 MB larger for the rest
    of its run."""
    from ray.tune.utils.util import SafeFallbackEncoder

    path = experiment_dir / JOURNAL_FILE
    prepared = path.with_name(f".{path.name}{TMP_MARK}reconcile")
    try:
        with open(prepared, "wb") as out:
            if path.exists():
                with open(path, "rb") as f:
                    for line in f:
                        if line.endswith(b"\n") and line.strip() and _parses(line.decode(errors="replace")):
                            out.write(line)
            for event in events:
                out.write((json.dumps(event, cls=SafeFallbackEncoder) + "\n").encode())
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        prepared.unlink(missing_ok=True)
        raise
    return prepared


def _newest(experiment_dir: Path, pattern: str) -> Path | None:
    files = sorted(experiment_dir.glob(pattern))
    return files[-1] if files else None


def _write_atomic(path: Path, text: str) -> None:
    write_atomic(path, text)


def _restore_results(experiment_dir: Path, trial: _Journaled) -> int:
    """Make ``result.json`` hold every journaled result (it lags when the driver was killed)."""
    from ray.tune.utils.util import SafeFallbackEncoder

    if not trial.dir or not trial.results:
        return 0
    path = experiment_dir / trial.dir / "result.json"
    have = [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    whole = sum(1 for line in have if _parses(line))
    if len(have) >= len(trial.results) and whole == len(have):
        return 0
    # Behind, or cut mid-line: the journal has every result the driver received (result.json
    # only ever gets results the journal got first).
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, "".join(json.dumps(r, cls=SafeFallbackEncoder) + "\n" for r in trial.results))
    return max(0, len(trial.results) - whole)


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _checkpoint_index(path: str) -> int:
    match = re.search(r"checkpoint_(\d+)$", path.rstrip("/"))
    return int(match.group(1)) if match else -1


def adopt_checkpoint(trial: Any, path: str) -> bool:
    """Make ``path``, a checkpoint the trial wrote after the one Tune tracks as its latest, the
    one it restores from; False if it is not newer or no longer exists."""
    from ray.tune import Checkpoint

    from .._tune.internals import set_tracked_checkpoints, tracked_checkpoints, training_result

    current = trial.checkpoint.path if trial.checkpoint is not None else ""
    if _checkpoint_index(path) <= _checkpoint_index(current) or not Path(path).exists():
        return False
    manager = trial.run_metadata.checkpoint_manager
    # Checkpoints already deleted (num_to_keep) are no longer tracked.
    set_tracked_checkpoints(manager, [r for r in tracked_checkpoints(manager) if Path(r.checkpoint.path).exists()])
    manager.register_checkpoint(training_result(Checkpoint.from_directory(path), dict(trial.last_result)))
    trial.storage.current_checkpoint_index = _checkpoint_index(path)
    return True


class CheckpointOfLastResult(Callback):
    """When a trial fails and Tune retries it, the retry starts from the checkpoint its last
    result came with, even if the trial died before Tune registered that checkpoint (Tune asks
    for it a moment after the result): otherwise the retry would report that step again."""

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        name = (trial.last_result or {}).get("checkpoint_dir_name")
        if name:
            try:
                adopt_checkpoint(trial, str(Path(trial.storage.trial_fs_path) / name))
            except Exception as exc:  # a Ray whose private names moved: Tune's own retry
                print(f"warning: trial {trial.trial_id} retries from Tune's last checkpoint ({type(exc).__name__}: {exc})",
                      file=sys.stderr)


def _bring_up_to_date(trial: Any, journaled: _Journaled) -> bool:
    """Apply the journal to one Tune Trial; True if anything changed."""
    from ray.tune.experiment import Trial

    changed = False
    last_iteration = int(trial.last_result.get("training_iteration", 0) or 0) if trial.last_result else 0
    for result in journaled.results:
        if int(result.get("training_iteration", 0) or 0) > last_iteration:
            trial.update_last_result(dict(result))
            changed = True
    if journaled.checkpoint and adopt_checkpoint(trial, journaled.checkpoint):
        changed = True
    if journaled.completed is not None and trial.status != Trial.TERMINATED:
        trial.set_status(Trial.TERMINATED)
        changed = True
    elif journaled.errored and trial.status not in (Trial.TERMINATED, Trial.ERROR):
        trial.set_status(Trial.ERROR)
        changed = True
    trial.invalidate_json_state()
    trial.run_metadata.invalidate_cache()
    return changed


def reconcile(experiment_dir: str | Path) -> Reconciled:
    """Bring the newest saved experiment state of ``experiment_dir`` up to date with its
    journal (see the module docstring); returns what changed."""
    experiment_dir = Path(experiment_dir)
    done = Reconciled()
    journaled = _journaled(experiment_dir)
    if not journaled and not (experiment_dir / RETIRED_FILE).exists():
        return done  # (with every journaled trial retired, Tune's state must still drop them)
    for trial in journaled.values():
        done.results_restored += _restore_results(experiment_dir, trial)
    lost = _lost_events(journaled)
    state_path = _newest(experiment_dir, "experiment_state-*.json")
    planned = Reconciled(results_restored=done.results_restored, journal_events_restored=len(lost))
    writes: list[tuple[Path, bytes | Path]] = [(experiment_dir / JOURNAL_FILE, _journal_with(experiment_dir, lost))] if lost else []
    try:
        if state_path is not None:
            try:
                writes += _reconcile_state(experiment_dir, state_path, journaled, planned)
            except FORMAT_ERRORS as exc:  # a Ray whose private formats moved: nothing changed, Tune's last save
                print(f"warning: could not bring the saved experiment state up to date from {experiment_dir / JOURNAL_FILE} "
                      f"({type(exc).__name__}: {exc}); nothing was changed, resuming from Tune's last save", file=sys.stderr)
                return done
        _apply_all_or_nothing(writes)
    finally:
        for _, data in writes:  # a prepared file not put in place
            if isinstance(data, Path):
                data.unlink(missing_ok=True)
    done = planned
    if done:
        print(f"note: recovered from the journal what Tune had not saved: {len(done.finished)} finished trials, "
              f"{len(done.added)} trials it did not know, {len(done.checkpoints)} newer checkpoints, "
              f"{done.results_restored} results", file=sys.stderr)
    if lost:
        # A trial writes its own folder first, the journal after: a stop between the two (or a
        # damaged journal) leaves the journal short of these events.
        print(f"note: {JOURNAL_FILE} lacked {len(lost)} events of {len({e['trial_id'] for e in lost})} trials (written to "
              "their folders just before the stop, or lost from a damaged journal); recovered from the folders (start "
              "records, result.json, returned markers) and written back", file=sys.stderr)
    return done


def _apply_all_or_nothing(writes: list[tuple[Path, bytes | Path]]) -> None:
    """Write every file (each atomically: new bytes, or a file prepared beside it renamed over
    it); if one fails, put every one back as it was. The originals wait aside as hard links
    (a copy where links are not supported), never read into memory: the journal may be
    hundreds of MB."""
    kept: list[tuple[Path, Path | None]] = []  # each target and its original, set aside
    try:
        for path, data in writes:
            original = None
            if path.exists():
                original = path.with_name(f".{path.name}{TMP_MARK}original")
                original.unlink(missing_ok=True)
                try:
                    os.link(path, original)
                except OSError:
                    shutil.copy2(path, original)
            kept.append((path, original))
            if isinstance(data, Path):
                os.replace(data, path)
                fsync_dir(path.parent)
            else:
                write_atomic(path, data)
    except BaseException:
        for path, original in reversed(kept):
            if original is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(original, path)
        raise
    finally:
        for path, original in kept:
            if original is not None:
                original.unlink(missing_ok=True)


def _reconcile_state(experiment_dir: Path, state_path: Path, journaled: dict[str, _Journaled],
                     done: Reconciled) -> list[tuple[Path, bytes]]:
    """The files to rewrite (search states first, the experiment state last); writes nothing."""
    from ray.tune.utils.serialization import TuneFunctionEncoder

    from .._tune.internals import load_tune_state

    state = load_tune_state(state_path.read_bytes())
    retired = _retired(experiment_dir)
    # A trial retired after this save is ended and out of Tune's hands: its record is final, and
    # Tune must not restore it (as the "running" trial the save may say it is).
    kept = [entry for entry in state["trial_data"] if json.loads(entry[0])["trial_id"] not in retired]
    dropped = len(state["trial_data"]) - len(kept)
    state["trial_data"] = kept
    known: dict[str, int] = {}
    for i, (trial_json, _) in enumerate(state["trial_data"]):
        known[json.loads(trial_json)["trial_id"]] = i
    for trial_id, journal in journaled.items():
        if trial_id in retired:  # ended, and out of Tune's hands: its record is final
            continue
        try:
            _reconcile_trial(state, known, trial_id, journal, done)
        except FORMAT_ERRORS as exc:  # one trial Tune's way, the others still brought up to date
            print(f"warning: trial {trial_id} resumes from Tune's last save ({type(exc).__name__}: {exc})", file=sys.stderr)
    writes = _reconcile_search(experiment_dir, state, journaled, retired)
    if done.finished or done.added or done.checkpoints or dropped:
        writes.append((state_path, json.dumps(state, cls=TuneFunctionEncoder).encode()))
    return writes


def _retired(experiment_dir: Path) -> dict[str, str]:
    """The trials retired from Tune's controller (see ``raytune_k8s._tune.retire``): id -> folder.
    Only that: a resume after 60,000 retired trials that kept each one's config and metrics here
    (several copies at once) left the resumed driver 300 MB larger for the rest of the run; what
    the searcher needs of a few of them is read again, streamed (:func:`_reconcile_search`)."""
    return _once("retired", experiment_dir,
                 lambda: {str(r["trial_id"]): str(r.get("relative_logdir") or "") for r in read_retired(experiment_dir)})


def _reconcile_search(experiment_dir: Path, state: dict[str, Any], journaled: dict[str, _Journaled],
                      retired: dict[str, str] | None = None) -> list[tuple[Path, bytes]]:
    """Make the search's saved state agree with the trials that will run on resume.

    Tune saves the search state and the trials at slightly different moments, and the journal
    may have finished trials since. The concurrency limit Tune wraps around the searcher counts
    a trial as running until told it ended, and Tune tells it nothing about a trial it restores
    as finished: left alone, such trials hold the limit's slots forever and the resumed run waits
    for suggestions that never come. So: the limit counts exactly the trials that will run; the
    searcher actor's saved state learns the results of the trials that ended, and which of its
    suggestions the trials added from the journal took. Returns the files to rewrite.
    """
    from .._tune.internals import reconciled_search_gen_state

    writes: list[tuple[Path, bytes]] = []

    retired = retired or {}
    trials = [(json.loads(trial_json), metadata) for trial_json, metadata in state["trial_data"]]
    trials = [(t, metadata) for t, metadata in trials if t["trial_id"] not in retired]
    will_run = {t["trial_id"]: t for t, _ in trials if t["status"] not in (TERMINATED, ERROR)}
    ended = {t["trial_id"]: (t["status"], metadata) for t, metadata in trials if t["trial_id"] not in will_run}
    gen_path = _newest(experiment_dir, "search_gen_state-*.json")
    if gen_path is not None:
        # trials added from the journal, and the retired ones, were created too; the limit
        # counts the ones that will run
        gen = reconciled_search_gen_state(gen_path.read_bytes(), len(trials) + len(retired), set(will_run))
        if gen is not None:
            writes.append((gen_path, gen))
    searcher_path = _newest(experiment_dir, "searcher-state-*.pkl")
    if searcher_path is None:
        return writes
    saved = pickle.loads(searcher_path.read_bytes())
    if not (isinstance(saved, dict) and {"assigned", "results", "ready"} <= set(saved)):
        return writes  # not a searcher actor's state (see raytune_k8s.search.actor.driver.ActorSearcher.save)
    assigned, results, ready = dict(saved["assigned"]), dict(saved["results"]), list(saved["ready"])
    taken = set(assigned)

    def take_ready(trial_id: str, trial_config: Any) -> None:
        """A suggestion still "ready" when the searcher's state was saved, taken by a trial since."""
        if trial_id in taken or not isinstance(trial_config, dict):
            return
        for i, (key, config) in enumerate(ready):
            if isinstance(config, dict) and all(trial_config.get(k) == v for k, v in config.items()):
                assigned[trial_id] = key
                del ready[i]
                return

    for trial, _ in trials:
        take_ready(trial["trial_id"], trial.get("config"))
    for trial_id, (status, metadata) in ended.items():
        key = assigned.pop(trial_id, None)
        if key is None:
            continue
        journal = journaled.get(trial_id)
        last = journal.completed if journal is not None and journal.completed is not None else json.loads(metadata).get("last_result")
        results[key] = (last, status == ERROR)
    if retired:  # streamed: the few retired trials the saved searcher state still waits for
        for record in read_retired(experiment_dir):
            trial_id = str(record["trial_id"])
            take_ready(trial_id, record.get("config"))
            key = assigned.pop(trial_id, None)
            if key is not None:
                last = {m: stats.get("last") for m, stats in (record.get("metric_analysis") or {}).items()
                        if isinstance(stats, dict)}
                results[key] = (last, record.get("tune_status") == ERROR)
    if (assigned, results, ready) != (saved["assigned"], saved["results"], list(saved["ready"])):
        saved.update(assigned=assigned, results=results, ready=ready)
        writes.append((searcher_path, pickle.dumps(saved)))
    return writes


def _reconcile_trial(state: dict[str, Any], known: dict[str, int], trial_id: str, journal: _Journaled, done: Reconciled) -> None:
    """Bring one trial's entry in ``state`` (or a new one) up to date with its journal."""
    from ray.tune.experiment import Trial

    if trial_id in known:
        trial_json, metadata = state["trial_data"][known[trial_id]]
    elif journal.state is not None and journal.metadata is not None:
        trial_json, metadata = journal.state, journal.metadata
    else:
        return
    trial = Trial.from_json_state(trial_json, stub=True)
    trial.restore_run_metadata(metadata)
    was_finished = trial.status == Trial.TERMINATED
    had_checkpoint = trial.checkpoint.path if trial.checkpoint is not None else None
    if trial_id not in known and trial.status == Trial.RUNNING:
        trial.set_status(Trial.PENDING)
    if not _bring_up_to_date(trial, journal) and trial_id in known:
        return
    trial.stub = False
    trial.invalidate_json_state()
    entry = list(trial.get_json_state())
    if trial_id in known:
        state["trial_data"][known[trial_id]] = entry
        if trial.status == Trial.TERMINATED and not was_finished:
            done.finished.append(trial_id)
    else:
        state["trial_data"].append(entry)
        done.added.append(trial_id)
    if trial.checkpoint is not None and trial.checkpoint.path != had_checkpoint:
        done.checkpoints.append(trial_id)


# ---- the check before a resume: every file it reads is whole, or a fallback is, or it stops


def _whole_pickle(data: bytes) -> None:
    """Raises ValueError unless ``data`` is one whole pickle (read opcode by opcode, nothing
    imported or run)."""
    if not data:
        raise ValueError("empty (0 bytes)")
    stopped = False
    for op, _, _ in pickletools.genops(data):
        stopped = op.name == "STOP"
    if not stopped:
        raise ValueError("cut short")


def _whole_experiment_state(data: bytes) -> None:
    from .._tune.internals import load_tune_state

    if not data:
        raise ValueError("empty (0 bytes)")
    state = load_tune_state(data)
    if not (isinstance(state, dict) and isinstance(state.get("trial_data"), list) and "runner_data" in state):
        raise ValueError("not a Tune experiment state")


#: Each file a resume reads, and how it is checked: (glob pattern, check, what it holds).
_CHECKED: list[tuple[str, Callable[[bytes], None], str]] = [
    ("experiment_state-*.json", _whole_experiment_state, "Tune's experiment state (every trial's status)"),
    ("search_gen_state-*.json", _whole_pickle, "Tune's search state (trials created, the concurrency limit)"),
    ("searcher-state-*.pkl", _whole_pickle, "the searcher's state"),
    ("callback-states-*.pkl", _whole_pickle, "the callbacks' state"),
]


def _problem(path: Path, check: Callable[[bytes], None]) -> str | None:
    try:
        check(path.read_bytes())
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except Exception as exc:  # any failure to parse is the answer, not an error here
        return f"is damaged ({path.stat().st_size} bytes: {type(exc).__name__}: {str(exc)[:120]})"
    return None


def journal_summary(experiment_dir: Path) -> str:
    trials = _journaled(experiment_dir)
    retired = _retired(experiment_dir)
    finished = sum(t.completed is not None for t in trials.values())
    results = sum(len(t.results) for t in trials.values())
    return (f"{JOURNAL_FILE} knows {len(trials)} trials ({finished} finished) and {results} results"
            + (f", and {len(retired)} more finished trials are recorded in {RETIRED_FILE}" if retired else "")
            + "; each trial's result.json and checkpoints are in its folder")


def _stop(experiment_dir: Path, found: list[str]) -> ResumeError:
    return ResumeError(
        f"cannot resume {experiment_dir}: " + "; ".join(found) + ". "
        "Nothing was started and nothing in the directory was changed. "
        f"Safe: {journal_summary(experiment_dir)}. To continue, put a good copy of the file back and run resume "
        "again; starting the experiment over (another name or directory) would run every trial again.")


def check_saved_state(experiment_dir: str | Path) -> list[str]:
    """Check every file a resume of ``experiment_dir`` reads (see the module docstring). A
    damaged state file is replaced by its previous version or set aside for an older session's
    (each such step is returned as a note); :class:`ResumeError` if one cannot be, or if the
    journal is shorter than Tune last saw it (cut, not just behind)."""
    experiment_dir = Path(experiment_dir)
    found: list[str] = []
    tuner = experiment_dir / TUNER_FILE
    if not tuner.exists():
        found.append(f"{TUNER_FILE} is missing (Tune's record of the run: trainable, searcher, callbacks)")
    elif (problem := _problem(tuner, _whole_pickle)) is not None:
        found.append(f"{TUNER_FILE} (Tune's record of the run: trainable, searcher, callbacks) {problem}; "
                     "it is written once, when the experiment starts, and has no earlier version")
    fixes: list[tuple[str, Callable[[], None]]] = []
    for pattern, check, holds in _CHECKED:
        files = sorted(experiment_dir.glob(pattern))
        if not files or (problem := _problem(files[-1], check)) is None:
            continue
        newest = files[-1]
        prev = previous_path(newest)
        if prev.exists() and _problem(prev, check) is None:
            fixes.append((f"{newest.name} {problem}: its previous version ({prev.name}) is used",
                          functools.partial(_replace_with_previous, newest, prev)))
            continue
        older = [f for f in files[:-1] if _problem(f, check) is None]
        if older:
            fixes.append((f"{newest.name} {problem}: set aside, the older {older[-1].name} is used",
                          functools.partial(_set_aside, newest)))
            continue
        found.append(f"{newest.name} ({holds}) {problem}, and no earlier version of it is whole")
    found += _journal_problems(experiment_dir)
    if found:
        raise _stop(experiment_dir, found)
    for note, fix in fixes:
        fix()
        print(f"note: {note}; the journal brings it up to date", file=sys.stderr)
    return [note for note, _ in fixes]


def _replace_keeping(path: Path, data: bytes) -> None:
    damaged = path.with_name(f".{path.name}.damaged")
    damaged.write_bytes(path.read_bytes())
    write_atomic(path, data)


def _replace_with_previous(path: Path, previous: Path) -> None:
    _replace_keeping(path, previous.read_bytes())


def _set_aside(path: Path) -> None:
    os.replace(path, path.with_name(f".{path.name}.damaged"))


def _journal_problems(experiment_dir: Path) -> list[str]:
    """The journal must be at least as long as Tune last saw it, whole line by line (each event
    is one append), and know every trial Tune's saved state has seen running or reporting."""
    path = experiment_dir / JOURNAL_FILE
    size = path.stat().st_size if path.exists() else 0
    problems = []
    saved = _saved_journal_bytes(experiment_dir)
    if saved is not None and size < saved:
        problems.append(f"{JOURNAL_FILE} has {size} bytes where Tune's last save recorded {saved}: it was cut")
    retired = _retired(experiment_dir)  # ended, and out of Tune's hands: their lines are not read again
    damaged = first_damaged_line(experiment_dir, skip_trials=retired)
    if damaged is not None:
        problems.append(f"{JOURNAL_FILE} line {damaged} is damaged")
    known = {tid for tid, t in _journaled(experiment_dir).items() if t.state is not None}  # or their folders
    known |= set(retired)
    unknown = [tid for tid in _started_in_saved_state(experiment_dir) if tid not in known]
    if unknown:
        problems.append(f"{JOURNAL_FILE} does not know {len(unknown)} trials Tune's saved state has seen start "
                        f"({', '.join(sorted(unknown)[:5])}{'...' if len(unknown) > 5 else ''}): it lost events")
    return problems


def _saved_journal_bytes(experiment_dir: Path) -> int | None:
    files = sorted(experiment_dir.glob("callback-states-*.pkl"))
    if not files:
        return None
    try:
        states = pickle.loads(files[-1].read_bytes())
    except Exception:  # checked whole above; a class that no longer imports: no length to compare
        return None
    for value in (states.values() if isinstance(states, dict) else []):
        if isinstance(value, dict) and isinstance(value.get(JOURNAL_BYTES), int):
            return value[JOURNAL_BYTES]
    return None


def _started_in_saved_state(experiment_dir: Path) -> list[str]:
    """Trials Tune's newest saved state has seen running or reporting (each is journaled first)."""
    from .._tune.internals import load_tune_state

    path = _newest(experiment_dir, "experiment_state-*.json")
    if path is None:
        return []
    try:
        state = load_tune_state(path.read_bytes())
        out = []
        for trial_json, metadata in state["trial_data"]:
            trial = json.loads(trial_json)
            last = (json.loads(metadata).get("last_result") or {}) if metadata else {}
            if trial.get("status") == "RUNNING" or int(last.get("training_iteration", 0) or 0) > 0:
                out.append(str(trial["trial_id"]))
        return out
    except FORMAT_ERRORS:
        return []


# ---- the check after the restore: Tune holds every trial the journal knows


def journal_expectations(experiment_dir: str | Path) -> tuple[set[str], set[str]]:
    """(every trial the journal saw start, those it saw finish or fail)."""
    trials = _journaled(Path(experiment_dir))
    retired = _retired(Path(experiment_dir))  # Tune does not hold them again: they ended
    started = {tid for tid, t in trials.items() if t.state is not None and tid not in retired}
    ended = {tid for tid, t in trials.items() if (t.completed is not None or t.errored) and tid not in retired}
    return started, ended


class ResumeGuard(Callback):
    """Before the resumed run's first step (nothing started yet), stops it with a
    :class:`ResumeError` unless Tune holds every trial the journal saw start, and those the
    journal saw end as ended: never Tune's "Restarting experiment", never a finished trial run
    again."""

    def __init__(self, experiment_dir: Path, started: set[str], ended: set[str]):
        self.experiment_dir, self.started, self.ended = Path(experiment_dir), set(started), set(ended)
        self.checked = False

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.checked:
            return
        self.checked = True
        have = {t.trial_id: t.status for t in trials}
        missing = sorted(self.started - set(have))
        rerun = sorted(tid for tid in self.ended if tid in have and have[tid] not in (TERMINATED, ERROR))
        if not missing and not rerun:
            return
        found = []
        if missing:
            found.append(f"Tune restored {len(have)} trials and not {len(missing)} of the {len(self.started)} the journal "
                         f"knows ({', '.join(missing[:5])}{'...' if len(missing) > 5 else ''})"
                         + ("; it logged why above ('Failed to restore the run state')" if not have else ""))
        if rerun:
            found.append(f"{len(rerun)} trials the journal saw finish would run again ({', '.join(rerun[:5])})")
        raise ResumeError(
            f"the resume of {self.experiment_dir} stopped before its first step: " + "; ".join(found) + ". "
            f"Nothing was started. Safe: {journal_summary(self.experiment_dir)}; the experiment directory holds the "
            "interrupted run's state as it was. Starting the experiment over (another name or directory) would run "
            "every trial again.")

    def get_state(self) -> None:
        return None
