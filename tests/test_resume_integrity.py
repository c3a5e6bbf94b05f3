"""A resume never starts the experiment over (issue 25): every file it reads is whole or falls
back, or it stops with an error that says what it found; a resumed experiment reports what an
uninterrupted one would; recovery's rewrite is all or nothing; the journal is always closed.

The "killed" experiments are copies of a running experiment's directory taken while it ran (what
a driver SIGKILLed at that moment leaves: Tune's saved state behind, the journal current)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from raytune_k8s.recovery.journal import JOURNAL_FILE, START_RECORD, read_journal

from .helpers import witness_spec


def _spec(name: str, log_dir: Path, *, trials: int, parallel: int = 2, steps: int = 2, sleep: float = 0.1,
          goal: float | None = None) -> dict:
    return witness_spec(name, log_dir, trials=trials, parallel=parallel, steps=steps, sleep=sleep, retries=0, goal=goal)


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy a directory that is being written to (a file replaced meanwhile is skipped)."""
    for root, _, files in os.walk(src):
        target = dst / os.path.relpath(root, src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                shutil.copy2(Path(root, name), target / name)
            except FileNotFoundError:
                continue


def _events(experiment_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_journal(experiment_dir) if e.get("event") == kind]


def _run_taking_snapshot(spec: dict, storage: Path, snapshot: Path, ready) -> dict:
    """``run(spec)``, copying its experiment directory to ``snapshot`` the first time a copy
    satisfies ``ready(copy)`` (the copy, not the live directory: Tune may save between the two)."""
    from raytune_k8s import run

    experiment_dir = storage / spec["name"]
    stop = threading.Event()

    def watch() -> None:
        attempt = snapshot.with_name(snapshot.name + ".attempt")
        while not stop.wait(0.02):
            if experiment_dir.exists() and ready(experiment_dir):
                shutil.rmtree(attempt, ignore_errors=True)
                _copy_tree(experiment_dir, attempt)
                if ready(attempt):
                    attempt.rename(snapshot)
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return run(spec, storage_path=storage, report=False)
    finally:
        stop.set()
        watcher.join()


@pytest.fixture(scope="module")
def killed_midway(tmp_path_factory, ray_head):
    """A finished experiment, and a copy of its directory from when 2 of its 4 trials had
    finished, a third had started, and a trial had started since Tune last saved its state."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_head.address, log_to_driver=False)
    base = tmp_path_factory.mktemp("killed")
    spec = _spec("killed", base / "logs", trials=4, sleep=0.4)

    def ready(d: Path) -> bool:  # and a started trial Tune's saved state does not know yet
        from raytune_k8s.recovery.reconcile import _saved_journal_bytes

        starts = _events(d, "start")
        started = {e["trial_id"] for e in starts}
        # a copy lists the folders before it copies the journal: one made meanwhile is missing
        # from the copy though the journal names it (a kill never leaves that; the copy is retried)
        if not all((d / e["dir"] / START_RECORD).exists() for e in starts):
            return False
        if not (len(_events(d, "complete")) >= 2 and len(started) >= 3 and (d / "tuner.pkl").exists()
                and (saved := _in_saved_state(d)) is not None and started - saved):
            return False
        # Tune's save recorded the journal's length before that trial's start (a journal cut just
        # before the start is then behind, not cut): the save and the start may come in either order
        try:
            offset = len(_cut_before_unsaved_starts((d / JOURNAL_FILE).read_bytes(), started - saved))
        except (AssertionError, ValueError):
            return False
        recorded = _saved_journal_bytes(d)
        return recorded is not None and recorded <= offset

    with pytest.MonkeyPatch.context() as env:
        # Tune saves its state when the run starts and then not for an hour: the trials that start
        # later are known only to the journal and their folders (the timing a kill can meet).
        env.setenv("TUNE_GLOBAL_CHECKPOINT_S", "3600")
        # These tests rewrite Tune's own saved state: every trial stays in it (none retired).
        env.setenv("RAYTUNE_K8S_TUNE_KEEPS_FINISHED", "1000")
        summary = _run_taking_snapshot(spec, base / "storage", base / "snapshot", ready)
    assert summary["status"] == "Succeeded", summary["reason"]
    assert (base / "snapshot" / JOURNAL_FILE).exists(), "the run ended before the snapshot"
    return base


def _state_files(experiment_dir: Path) -> list[str]:
    """Every file a resume reads (the newest of each of Tune's), relative to the directory."""
    names = ["tuner.pkl", JOURNAL_FILE, "experiment.yaml"]
    for pattern in ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl", "callback-states-*.pkl"):
        files = sorted(experiment_dir.glob(pattern))
        if files:
            names.append(files[-1].name)
    results = sorted(experiment_dir.glob("*/result.json"))
    if results:
        names.append(str(results[0].relative_to(experiment_dir)))
    return names


def _in_saved_state(experiment_dir: Path) -> set[str] | None:
    from raytune_k8s._tune.internals import load_tune_state

    try:
        [path] = sorted(experiment_dir.glob("experiment_state-*.json"))[-1:]
        return {json.loads(t)["trial_id"] for t, _ in load_tune_state(path.read_bytes())["trial_data"]}
    except (ValueError, OSError):  # none yet, or caught mid-write
        return None


def _cut_before_unsaved_starts(journal: bytes, unsaved: set[str]) -> bytes:
    """The journal up to (not including) the first start of a trial Tune's saved state lacks:
    cut at a line boundary, so only the trial folders show that events were lost."""
    offset = 0
    for line in journal.split(b"\n"):
        event = json.loads(line) if line.strip() else {}
        if event.get("event") == "start" and event["trial_id"] in unsaved:
            return journal[:offset]
        offset += len(line) + 1
    raise AssertionError("no start of an unsaved trial in the journal")


def test_a_truncated_state_file_never_starts_the_experiment_over(killed_midway, tmp_path, ray_connected):
    from raytune_k8s.experiment.runner import resume
    from raytune_k8s.recovery.reconcile import ResumeError

    snapshot = killed_midway / "snapshot"
    known = {e["trial_id"] for e in _events(snapshot, "start")}
    finished = {e["trial_id"] for e in _events(snapshot, "complete")}
    files = _state_files(snapshot)
    assert {"tuner.pkl", JOURNAL_FILE, "experiment.yaml"} < set(files)
    assert any(f.startswith("experiment_state-") for f in files) and any(f.startswith("searcher-state-") for f in files)
    unsaved = known - (_in_saved_state(snapshot) or set())
    assert unsaved  # the fixture waited for it
    # A pickle or a JSON document cut in half fails to load as an empty one does: "empty" only for
    # those; "half" for the JSON-lines files (whole lines, then a cut one) and the YAML spec.
    whole = (".pkl",) + tuple(n for n in files if n.startswith(("experiment_state-", "search_gen_state-")))
    cases = [(name, size) for name in files for size in ("empty", "half") if size == "empty" or not name.endswith(whole)]
    cases += [("experiment_state-*.json", "removed"), (JOURNAL_FILE, "before unsaved starts")]
    outcomes = {}
    for i, (name, size) in enumerate(cases):
        case = tmp_path / f"case{i}"
        shutil.copytree(snapshot, case)
        spec_text = (case / "experiment.yaml").read_text().replace(str(killed_midway / "logs"), str(tmp_path / f"logs{i}"))
        (case / "experiment.yaml").write_text(spec_text)
        if size == "removed":
            for path in case.glob(name):
                path.unlink()
        else:
            data = (case / name).read_bytes()
            if size == "empty":
                cut = b""
            elif size == "half":
                cut = data[: len(data) // 2]
            else:
                cut = _cut_before_unsaved_starts(data, unsaved)
            (case / name).write_bytes(cut)
        try:
            summary = resume(case)
        except ResumeError as exc:
            message = str(exc)
            assert "Nothing was started" in message and "Safe:" in message, message
            assert name.split("-")[0].split("*")[0] in message or "Tune restored" in message, message
            outcomes[(name, size)] = "stopped: " + message[:200]
            continue
        rows = {r["trial_id"]: r for r in summary["trial_table"]}
        assert known <= set(rows), (name, size, sorted(known - set(rows)))  # never started over
        assert summary["status"] == "Succeeded" and summary["trials_total"] == 4, (name, size, summary["reason"])
        restarted = {e["trial_id"] for e in _events(case, "start")} - known
        new_starts = [e["trial_id"] for e in read_journal(case) if e.get("event") == "start"]
        rerun = {tid for tid in finished if new_starts.count(tid) > 1}
        assert not rerun, (name, size, rerun)
        assert len({e["trial_id"] for e in _events(case, "complete")}) == 4, (name, size)  # the resumed run journaled here
        assert len(rows) == 4 and len(restarted) <= 4 - len(known), (name, size, sorted(rows))
        outcomes[(name, size)] = "resumed"
    print(json.dumps({f"{n} {s}": o for (n, s), o in outcomes.items()}, indent=1))
    # The search state's loss cannot be resumed from silently; Tune's own "Restarting experiment" never happens.
    assert outcomes[("tuner.pkl", "empty")].startswith("stopped")
    assert outcomes[("experiment_state-*.json", "removed")].startswith("stopped")
    # A journal that lost the starts of trials Tune never saved: their folders bring them back.
    assert outcomes[(JOURNAL_FILE, "before unsaved starts")] == "resumed"


def test_an_experiment_whose_goal_is_reached_after_a_resume_labels_its_trials_as_an_uninterrupted_run(tmp_path, ray_connected):
    """Every result reaches the goal: the first one stops the experiment, and the trial running
    beside it is Killed (ExperimentGoalReached), resumed or not."""
    from raytune_k8s.experiment.runner import resume

    spec = _spec("goal", tmp_path / "logs", trials=4, steps=3, sleep=0.4, goal=0.0)

    def ready(d: Path) -> bool:  # trials started, none has reported yet
        return len(_events(d, "start")) >= 1 and any(d.glob("experiment_state-*.json")) and not _events(d, "result")

    uninterrupted = _run_taking_snapshot(spec, tmp_path / "storage", tmp_path / "snapshot", ready)
    assert (tmp_path / "snapshot" / JOURNAL_FILE).exists(), "no snapshot before the first result"
    resumed = resume(tmp_path / "snapshot")

    def labels(summary: dict) -> tuple:
        return summary["status"], summary["reason"], sorted({r["status"] for r in summary["trial_table"]})

    assert labels(uninterrupted) == ("Succeeded", "ExperimentGoalReached", ["Killed", "Succeeded"])
    assert labels(resumed) == labels(uninterrupted), resumed["trial_table"]
    assert resumed["metrics_unavailable"] == 0 and resumed["killed"] >= 1


def _rewound(killed_midway: Path, to: Path) -> Path:
    """The finished experiment, with Tune's saved state put back to every trial RUNNING (as if
    the driver died before Tune saved their ends): reconcile has something to rewrite."""
    finished = killed_midway / "storage" / "killed"
    shutil.copytree(finished, to)
    [state_path] = sorted(to.glob("experiment_state-*.json"))[-1:]
    state = json.loads(state_path.read_text())
    for entry in state["trial_data"]:
        trial = json.loads(entry[0])
        trial["status"] = "RUNNING"
        entry[0] = json.dumps(trial)
    state_path.write_text(json.dumps(state))
    return state_path


def test_reconcile_never_leaves_a_partial_rewrite(killed_midway, tmp_path, monkeypatch):
    from raytune_k8s.recovery import reconcile as recovery

    state_path = _rewound(killed_midway, tmp_path / "good")
    assert recovery.reconcile(tmp_path / "good").finished  # the rewind is what reconcile repairs

    state_path = _rewound(killed_midway, tmp_path / "failing")
    before = {p: p.read_bytes() for p in (tmp_path / "failing").iterdir() if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("the search state's rewrite failed")

    monkeypatch.setattr(recovery, "_reconcile_search", broken)
    with pytest.raises(RuntimeError, match="search state's rewrite failed"):
        recovery.reconcile(tmp_path / "failing")
    assert state_path.read_bytes() == before[state_path]  # not rewritten without the search fix

    # A write that fails half-way puts back what was already written.
    monkeypatch.undo()
    real, calls = recovery.write_atomic, []

    def second_write_fails(path, data, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(path, data, **kwargs)

    monkeypatch.setattr(recovery, "write_atomic", second_write_fails)
    journal = state_path.with_name(JOURNAL_FILE)
    prepared = recovery._journal_with(state_path.parent, [{"event": "error", "trial_id": "x"}])  # streamed beside it
    assert prepared.read_bytes() == before[journal] + b'{"event": "error", "trial_id": "x"}\n'
    writes = [(journal, prepared), (state_path, b"new state"), (state_path.with_name("other.json"), b"new")]
    with pytest.raises(OSError, match="disk full"):
        recovery._apply_all_or_nothing(writes)
    assert state_path.read_bytes() == before[state_path] and journal.read_bytes() == before[journal]
    assert not state_path.with_name("other.json").exists()
    assert sorted(p.name for p in state_path.parent.iterdir() if p.is_file()) == sorted(p.name for p in before)  # nothing left aside


def test_a_resumes_preparation_reads_the_journal_once_and_concludes_the_same(killed_midway, tmp_path, monkeypatch):
    """check, reconcile and expectations share one reading of the journal (reading_once); a
    journal rewritten meanwhile (events recovered from the folders) is read again."""
    from raytune_k8s.recovery import reconcile as recovery

    def prepare(experiment_dir: Path, check: bool = True) -> tuple:
        if check:
            recovery.check_saved_state(experiment_dir)
        done = recovery.reconcile(experiment_dir)
        return done, recovery.journal_expectations(experiment_dir), experiment_dir.joinpath(JOURNAL_FILE).read_bytes()

    real, reads = recovery.read_journal, []

    def counted(*args, **kwargs):
        reads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(recovery, "read_journal", counted)
    _rewound(killed_midway, tmp_path / "each")
    separately = prepare(tmp_path / "each")
    assert len(reads) == 3 and separately[0].finished  # the rewind is what reconcile repairs
    reads.clear()
    _rewound(killed_midway, tmp_path / "once")
    with recovery.reading_once():
        together = prepare(tmp_path / "once")
    assert len(reads) == 1 and together == separately

    # the journal cut at a line (the check refuses that; reconcile alone): its lost events come
    # back from the folders, it is rewritten, and read again
    reads.clear()
    _rewound(killed_midway, tmp_path / "cut")
    journal = tmp_path / "cut" / JOURNAL_FILE
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[: len(lines) // 2]))
    with recovery.reading_once():
        done, (started, ended), _ = prepare(tmp_path / "cut", check=False)
    assert len(reads) == 2 and done.journal_events_restored > 0 and (started, ended) == separately[1]


def test_the_journal_is_closed_on_every_way_out_of_fit(tmp_path, ray_connected):
    """A KeyboardInterrupt out of a callback skips Tune's on_experiment_end: the journal's file
    is closed all the same."""
    from ray import tune

    from raytune_k8s.experiment.runner import _fit_and_summarize
    from raytune_k8s.recovery.journal import ResultJournal
    from raytune_k8s.spec import load_document

    class Interrupt(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            raise KeyboardInterrupt

    experiment_dir = tmp_path / "s" / "closing"
    journal = ResultJournal(experiment_dir)
    spec = load_document(_spec("closing", tmp_path / "logs", trials=1, parallel=1)).spec
    tuner = tune.Tuner(lambda config: tune.report({"accuracy": 1.0}),
                       tune_config=tune.TuneConfig(num_samples=1),
                       run_config=tune.RunConfig(name="closing", storage_path=str(tmp_path / "s"),
                                                 callbacks=[journal, Interrupt()], verbose=0))
    try:
        _fit_and_summarize(tuner, spec, experiment_dir, 1, None)
    except (KeyboardInterrupt, Exception):
        pass
    assert _events(experiment_dir, "start"), "the journal wrote before the interrupt"
    assert not journal.is_open
    open_files = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                  if os.path.exists(f"/proc/self/fd/{fd}")}
    assert str(experiment_dir / JOURNAL_FILE) not in open_files
    # An interrupted fit() leaves its trial actor to the driver's exit; this driver is pytest's
    # process, which goes on: disconnecting ends the actors it owns (the next test reconnects).
    import ray

    ray.shutdown()


def test_a_trial_whose_function_returned_just_before_the_head_was_lost_is_not_run_again(killed_midway, tmp_path):
    """The head dies after a trial's function returned and before the driver heard (the journal
    has its results, no ``complete``): the mark the trial left in its folder keeps it finished."""
    from raytune_k8s.recovery import reconcile as recovery
    from raytune_k8s.trials import RETURNED_MARKER

    finished = killed_midway / "storage" / "killed"
    marked = {p.parent.name for p in finished.glob(f"*/{RETURNED_MARKER}")}
    # Every trial the run finished left its mark when its function returned (other tests' resumes
    # of copies of this experiment may add trial folders here: only the journal's are checked).
    completed = {e["trial_id"] for e in _events(finished, "complete")}
    assert len(completed) >= 4 and all(any(f"_{trial_id}_" in name for name in marked) for trial_id in completed), \
        (completed, marked)
    assert any(finished.glob(".experiment_state-*.json.prev"))  # the run's syncs went through atomic_files

    for name, keep_mark in (("with-mark", True), ("without-mark", False)):
        state_path = _rewound(killed_midway, tmp_path / name)
        journal = tmp_path / name / JOURNAL_FILE
        events = [json.loads(line) for line in journal.read_text().splitlines()]
        victim = next(e["trial_id"] for e in events if e["event"] == "complete")
        journal.write_text("".join(json.dumps(e) + "\n" for e in events
                                   if not (e["event"] == "complete" and e["trial_id"] == victim)))
        if not keep_mark:
            for mark in (tmp_path / name).glob(f"*/{RETURNED_MARKER}"):
                mark.unlink()
        recovery.reconcile(tmp_path / name)
        statuses = {json.loads(t)["trial_id"]: json.loads(t)["status"] for t, _ in json.loads(state_path.read_text())["trial_data"]}
        assert statuses[victim] == ("TERMINATED" if keep_mark else "RUNNING"), (name, statuses)


def test_tunes_experiment_sync_replaces_each_file_whole_and_keeps_the_previous_state(tmp_path):
    import pyarrow.fs

    from raytune_k8s._tune.atomic_files import atomic_experiment_sync
    from raytune_k8s._tune.internals import STORAGE_UPLOAD, storage_module

    staging, dest = tmp_path / "staging", tmp_path / "experiment"
    (staging / "trial_1").mkdir(parents=True)
    state, result = staging / "experiment_state-x.json", staging / "trial_1" / "result.json"
    original = getattr(storage_module(), STORAGE_UPLOAD)
    with atomic_experiment_sync() as applied:
        assert applied and getattr(storage_module(), STORAGE_UPLOAD) is not original
        for version in ("first", "second"):
            state.write_text(version * 100)
            result.write_text(version + "\n")
            getattr(storage_module(), STORAGE_UPLOAD)(str(staging), pyarrow.fs.LocalFileSystem(), str(dest))
    assert getattr(storage_module(), STORAGE_UPLOAD) is original
    assert (dest / state.name).read_text() == "second" * 100 and (dest / "trial_1" / "result.json").read_text() == "second\n"
    assert (dest / f".{state.name}.prev").read_text() == "first" * 100
    assert sorted(p.name for p in dest.iterdir()) == [f".{state.name}.prev", state.name, "trial_1"]  # no temporary left
