"""Bringing Tune's saved experiment state up to date from the journal before a resume.

Tune saves its experiment state (each trial's status, last result and checkpoint, and the
search generator's count) every ~10 s. A driver killed between two saves (SIGKILL, a lost head)
leaves a state that is behind: trials that finished since are "running", trials started since
are missing, their checkpoints since are unknown, and results since may be missing from their
``result.json``. Tune would then run finished trials again, from older checkpoints, and report
steps twice. :func:`reconcile` replays ``journal.jsonl`` (see ``raytune_k8s.journal``) onto the
saved state with Tune's own Trial methods: finished trials become TERMINATED with their last
result, a trial's latest checkpoint is the one the driver last received, missing trials are
added (and counted by the search generator), and every journaled result is in ``result.json``.
The search state is made to agree (:func:`_reconcile_search`). While a run goes on,
:class:`CheckpointOfLastResult` gives a retried trial the checkpoint its last result named.

This reads and writes Tune's private file formats (Ray is pinned; ``tests/test_reliability.py``
trips when they change). If they cannot be read, the resume goes on with Tune's state as it is,
with one warning.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from .journal import read_journal
from .tune_state import ERROR, TERMINATED


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


@dataclass
class Reconciled:
    """What :func:`reconcile` changed."""

    finished: list[str] = field(default_factory=list)  # running in the state, finished in the journal
    added: list[str] = field(default_factory=list)  # missing from the state
    checkpoints: list[str] = field(default_factory=list)  # a newer checkpoint than the state's
    results_restored: int = 0  # result lines put back into result.json

    def __bool__(self) -> bool:
        return bool(self.finished or self.added or self.checkpoints or self.results_restored)


def _journaled(experiment_dir: Path) -> dict[str, _Journaled]:
    trials: dict[str, _Journaled] = {}
    for event in read_journal(experiment_dir):
        trial = trials.setdefault(event["trial_id"], _Journaled(event["trial_id"]))
        kind = event["event"]
        if kind == "start":
            trial.dir, trial.state, trial.metadata = event["dir"], event["state"], event["metadata"]
        elif kind == "result":
            trial.results.append(event["result"])
            # A result names the checkpoint it came with, which the trial had written before it
            # reported: Tune registers it a moment later (``checkpoint``), and a kill in between
            # would restart the trial from the one before and report this step again.
            name = event["result"].get("checkpoint_dir_name")
            if name and _checkpoint_index(name) > _checkpoint_index(trial.checkpoint or ""):
                base = Path(trial.checkpoint).parent if trial.checkpoint else experiment_dir / trial.dir
                trial.checkpoint = str(base / name)
        elif kind == "checkpoint":
            if _checkpoint_index(event["path"]) >= _checkpoint_index(trial.checkpoint or ""):
                trial.checkpoint = event["path"]
        elif kind == "complete":
            trial.completed = event["result"] or (trial.results[-1] if trial.results else {})
        elif kind == "error":
            trial.errored = True
    return trials


def _newest(experiment_dir: Path, pattern: str) -> Path | None:
    files = sorted(experiment_dir.glob(pattern))
    return files[-1] if files else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _restore_results(experiment_dir: Path, trial: _Journaled) -> int:
    """Make ``result.json`` hold every journaled result (it lags when the driver was killed)."""
    from ray.tune.utils.util import SafeFallbackEncoder

    if not trial.dir or not trial.results:
        return 0
    path = experiment_dir / trial.dir / "result.json"
    have = [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    if len(have) >= len(trial.results):
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, "".join(json.dumps(r, cls=SafeFallbackEncoder) + "\n" for r in trial.results))
    return len(trial.results) - len(have)


def _checkpoint_index(path: str) -> int:
    match = re.search(r"checkpoint_(\d+)$", path.rstrip("/"))
    return int(match.group(1)) if match else -1


def adopt_checkpoint(trial: Any, path: str) -> bool:
    """Make ``path``, a checkpoint the trial wrote after the one Tune tracks as its latest, the
    one it restores from; False if it is not newer or no longer exists."""
    from ray.tune import Checkpoint

    from .tune_internals import set_tracked_checkpoints, tracked_checkpoints, training_result

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
    if not journaled:
        return done
    for trial in journaled.values():
        done.results_restored += _restore_results(experiment_dir, trial)
    state_path = _newest(experiment_dir, "experiment_state-*.json")
    if state_path is None:
        return done
    try:
        _reconcile_state(experiment_dir, state_path, journaled, done)
    except Exception as exc:  # a Ray whose private formats moved: resume as Tune saved it
        print(f"warning: could not bring the saved experiment state up to date from {experiment_dir / 'journal.jsonl'} "
              f"({type(exc).__name__}: {exc}); resuming from Tune's last save", file=sys.stderr)
    if done:
        print(f"note: recovered from the journal what Tune had not saved: {len(done.finished)} finished trials, "
              f"{len(done.added)} trials it did not know, {len(done.checkpoints)} newer checkpoints, "
              f"{done.results_restored} results", file=sys.stderr)
    return done


def _reconcile_state(experiment_dir: Path, state_path: Path, journaled: dict[str, _Journaled], done: Reconciled) -> None:
    from ray.tune.utils.serialization import TuneFunctionEncoder

    from .tune_internals import load_tune_state

    state = load_tune_state(state_path.read_bytes())
    known: dict[str, int] = {}
    for i, (trial_json, _) in enumerate(state["trial_data"]):
        known[json.loads(trial_json)["trial_id"]] = i
    for trial_id, journal in journaled.items():
        try:
            _reconcile_trial(state, known, trial_id, journal, done)
        except Exception as exc:  # one trial Tune's way, the others still brought up to date
            print(f"warning: trial {trial_id} resumes from Tune's last save ({type(exc).__name__}: {exc})", file=sys.stderr)
    if done.finished or done.added or done.checkpoints:
        _write_atomic(state_path, json.dumps(state, cls=TuneFunctionEncoder))
    _reconcile_search(experiment_dir, state, journaled)


def _reconcile_search(experiment_dir: Path, state: dict[str, Any], journaled: dict[str, _Journaled]) -> None:
    """Make the search's saved state agree with the trials that will run on resume.

    Tune saves the search state and the trials at slightly different moments, and the journal
    may have finished trials since. The concurrency limit Tune wraps around the searcher counts
    a trial as running until told it ended, and Tune tells it nothing about a trial it restores
    as finished: left alone, such trials hold the limit's slots forever and the resumed run waits
    for suggestions that never come. So: the limit counts exactly the trials that will run; the
    searcher actor's saved state learns the results of the trials that ended, and which of its
    suggestions the trials added from the journal took.
    """
    import pickle

    import ray.cloudpickle as cloudpickle

    trials = [(json.loads(trial_json), metadata) for trial_json, metadata in state["trial_data"]]
    will_run = {t["trial_id"]: t for t, _ in trials if t["status"] not in (TERMINATED, ERROR)}
    ended = {t["trial_id"]: (t["status"], metadata) for t, metadata in trials if t["trial_id"] not in will_run}
    gen_path = _newest(experiment_dir, "search_gen_state-*.json")
    if gen_path is not None:
        gen = cloudpickle.loads(gen_path.read_bytes())  # Tune pickles it despite the name
        before = (gen["counter"], gen.get("name:ConcurrencyLimiter", {}).get("live_trials"))
        gen["counter"] = max(int(gen["counter"]), len(trials))  # trials added from the journal were created too
        limiter = gen.get("name:ConcurrencyLimiter")
        if limiter is not None and "live_trials" in limiter:
            limiter["live_trials"] = set(will_run)
            limiter["num_unfinished_live_trials"] = len(will_run)
        if (gen["counter"], gen.get("name:ConcurrencyLimiter", {}).get("live_trials")) != before:
            tmp = gen_path.with_name(f".{gen_path.name}.tmp")
            tmp.write_bytes(cloudpickle.dumps(gen))
            tmp.replace(gen_path)
    searcher_path = _newest(experiment_dir, "searcher-state-*.pkl")
    if searcher_path is None:
        return
    saved = pickle.loads(searcher_path.read_bytes())
    if not (isinstance(saved, dict) and {"assigned", "results", "ready"} <= set(saved)):
        return  # not a searcher actor's state (see raytune_k8s.search.actor.ActorSearcher.save)
    assigned, results, ready = dict(saved["assigned"]), dict(saved["results"]), list(saved["ready"])
    taken = set(assigned)
    for trial, _ in trials:  # a suggestion still "ready" when Tune saved, taken by a trial since
        trial_id = trial["trial_id"]
        if trial_id in taken or not isinstance(trial.get("config"), dict):
            continue
        for i, (key, config) in enumerate(ready):
            if isinstance(config, dict) and all(trial["config"].get(k) == v for k, v in config.items()):
                assigned[trial_id] = key
                del ready[i]
                break
    for trial_id, (status, metadata) in ended.items():
        key = assigned.pop(trial_id, None)
        if key is None:
            continue
        journal = journaled.get(trial_id)
        last = journal.completed if journal is not None and journal.completed is not None else json.loads(metadata).get("last_result")
        results[key] = (last, status == ERROR)
    if (assigned, results, ready) != (saved["assigned"], saved["results"], list(saved["ready"])):
        saved.update(assigned=assigned, results=results, ready=ready)
        tmp = searcher_path.with_name(f".{searcher_path.name}.tmp")
        tmp.write_bytes(pickle.dumps(saved))
        tmp.replace(searcher_path)


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
