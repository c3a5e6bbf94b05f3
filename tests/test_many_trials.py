"""Experiments of many trials: finished trials leave Tune's controller in batches
(``raytune_k8s._tune.retire``), and everything a user sees stays one experiment across those
batches: the summary, ``results``, the report, the progress line, ``maxFailedTrialCount``, the
goal, and a resume after SIGKILL. Small here: tens of trials, batches of a few
(``RAYTUNE_K8S_TUNE_KEEPS_FINISHED``)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from raytune_k8s._tune.retire import KEEP_ENV, RETIRED_FILE, append_retired, read_retired
from raytune_k8s.cli import main
from raytune_k8s.recovery.journal import read_journal
from raytune_k8s.recovery.reconcile import reconcile
from raytune_k8s.results.tune_state import saved_trial_ids, saved_trials
from raytune_k8s.trials.witness import audit, read_log

from .helpers import witness_spec, wait_for

CLI = ["python", "-m", "raytune_k8s"]


def _branin_spec(name: str, trials: int, **extra) -> dict:
    return {
        "name": name,
        "objective": {"type": "minimize", "objectiveMetricName": "value"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 7}]},
        "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "10"}},
                       {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "15"}}],
        "parallelTrialCount": 2,
        "maxTrialCount": trials,
        "trial": {"trainable": "branin", "resources": {"cpu": 0.5}},
        **extra,
    }


def _run(tmp_path: Path, spec: dict, keep: int, capsys) -> tuple[int, str]:
    """``raytune-k8s run`` in this process, on the session's Ray, with Tune keeping ``keep``
    finished trials: its exit code and its stderr (the progress lines)."""
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(KEEP_ENV, str(keep))
        code = main(["run", str(path), "--storage-path", str(tmp_path / "runs")])
    return code, capsys.readouterr().err


def _tune_state_trials(experiment_dir: Path) -> list[str]:
    newest = sorted(experiment_dir.glob("experiment_state-*.json"))[-1]
    return [json.loads(t)["trial_id"] for t, _ in json.loads(newest.read_text())["trial_data"]]


def test_finished_trials_leave_tune_and_every_view_still_has_them(ray_connected, tmp_path, capsys):
    code, err = _run(tmp_path, _branin_spec("many", 30), 3, capsys)
    assert code == 0, err[-3000:]
    experiment_dir = tmp_path / "runs" / "many"
    retired = list(read_retired(experiment_dir))
    held = _tune_state_trials(experiment_dir)
    # Tune's last snapshot holds what was not retired yet; the file, the rest; together each trial once
    assert len(retired) >= 22 and len(held) <= 3 + 2, (len(retired), held)
    ids = [r["trial_id"] for r in retired] + held
    assert len(ids) == len(set(ids)) == 30
    summary = json.loads((experiment_dir / "summary.json").read_text())
    assert summary["status"] == "Succeeded" and summary["trials"] == 30 and summary["succeeded"] == 30
    rows = {r["trial_id"]: r for r in summary["trial_table"]}
    assert set(rows) == set(ids)
    # what a resume reads to keep new trial ids apart: the ids alone, the same trials
    assert saved_trial_ids(experiment_dir) == {t["trial_id"] for t in saved_trials(experiment_dir)} == set(ids)
    for record in retired:  # each retired trial's row is its own result.json's, with its own parameters
        row = rows[record["trial_id"]]
        last = json.loads((experiment_dir / record["relative_logdir"] / "result.json").read_text().splitlines()[-1])
        assert row["objective"] == last["value"] and row["params"] == record["config"], record["trial_id"]
    assert "30/30 done" in err  # the progress line counted every trial
    assert main(["results", str(experiment_dir), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["trial_table"]) == 30
    (experiment_dir / "report.html").unlink()  # the run's own; `report` writes it again
    assert main(["report", str(experiment_dir)]) == 0
    html = (experiment_dir / "report.html").read_text()
    assert all(trial_id in html for trial_id in list(rows)[:5])  # the best five trials' rows

    # A kill just after a batch was retired and before Tune saved again, with every trial the
    # journal knows retired: the resume still drops them from Tune's snapshot (it once returned
    # early, and Tune ran them again: CI, a SIGKILL test).
    copy = tmp_path / "copy"
    shutil.copytree(experiment_dir, copy)
    folders = {t: next(p.name for p in copy.iterdir() if f"_{t}_" in p.name) for t in held}
    append_retired(copy, [{**retired[0], "trial_id": t, "relative_logdir": folders[t]} for t in held])
    reconcile(copy)
    assert _tune_state_trials(copy) == []


def test_max_failed_trials_counts_failures_tune_no_longer_holds(ray_connected, tmp_path, capsys):
    """Failures retired from Tune still count: the fourth of maxFailedTrialCount 3 stops it."""
    spec = _branin_spec("failing", 40, maxFailedTrialCount=3)
    spec["trial"] = {"function": "raytune_k8s.trials.synthetic:branin", "resources": {"cpu": 0.5},
                     "fixedParameters": {"sleep": "not a number"}}  # every trial fails
    code, _ = _run(tmp_path, spec, 1, capsys)
    assert code != 0
    experiment_dir = tmp_path / "runs" / "failing"
    summary = json.loads((experiment_dir / "summary.json").read_text())
    assert summary["status"] == "Failed" and summary["reason"] == "ExperimentMaxFailedTrialsReached", summary["reason"]
    assert summary["failed"] == 4 and any(r["tune_status"] == "ERROR" for r in read_retired(experiment_dir))


def test_the_goal_stops_an_experiment_whose_trials_were_retired(ray_connected, tmp_path, capsys):
    spec = _branin_spec("goal", 400)
    spec["objective"]["goal"] = 2.0  # Branin's minimum is 0.398: random search reaches 2 within tens of trials
    code, err = _run(tmp_path, spec, 2, capsys)
    assert code == 0, err[-3000:]
    summary = json.loads((tmp_path / "runs" / "goal" / "summary.json").read_text())
    assert summary["reason"] == "ExperimentGoalReached" and summary["best"]["metrics"]["value"] <= 2.0
    assert summary["trials"] < 400 and len(list(read_retired(tmp_path / "runs" / "goal"))) > 0


def test_a_sigkill_between_batches_loses_nothing_and_runs_nothing_twice(tmp_path):
    """The driver and its Ray are SIGKILLed after several batches were retired (a lost pod), then
    resumed: every trial ends once, every acknowledged result is kept, the count is the
    experiment's, and the resumed progress line goes on from the trials done before."""
    from raytune_k8s.sim.cluster import LocalRayHead

    logs, storage = tmp_path / "logs", tmp_path / "runs"
    spec = witness_spec("killed-many", logs, trials=24, steps=2, sleep=0.05, retries=0)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    experiment_dir = storage / "killed-many"
    with LocalRayHead(num_cpus=2) as head:
        env = {**head.client_env(), KEEP_ENV: "2"}
        driver = subprocess.Popen([*CLI, "run", str(spec_path), "--address", head.address, "--storage-path", str(storage),
                                   "--no-report"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: len(list(read_retired(experiment_dir))) >= 8, 240, "8 trials retired", interval=0.05,
                     proc=driver)
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait(30)
        retired_before = {r["trial_id"] for r in read_retired(experiment_dir)}
        ended_before = {e["trial_id"] for e in read_journal(experiment_dir) if e["event"] == "complete"}
        assert retired_before <= ended_before
        resumed = subprocess.run([*CLI, "resume", str(experiment_dir), "--address", head.address, "--no-report"],
                                 env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((experiment_dir / "summary.json").read_text())
    assert summary["status"] == "Succeeded" and summary["trials"] == 24, summary["reason"]
    assert len({r["trial_id"] for r in summary["trial_table"]}) == 24
    ends = Counter(e["trial_id"] for e in read_journal(experiment_dir) if e["event"] in ("complete", "error"))
    assert set(ends.values()) == {1}, ends  # no trial ended twice: none ran again
    found = audit(logs, experiment_dir)
    assert found["lost"] == [] and found["rerun"] == [] and found["duplicates"] == [], found
    assert len(read_log(logs)) == 24  # exactly the experiment's trials started, across the kill
    assert "24/24 done" in resumed.stderr  # the resumed count includes the trials done before
    assert (experiment_dir / RETIRED_FILE).exists()


def test_trial_ids_do_not_collide_inside_a_run():
    """Tune's 8 random hex digits collide with probability ~69 % among 100,000 trials; inside a
    run (and only in its thread) the ids count up from a random start, avoiding taken ones."""
    import threading

    from ray.tune.experiment import Trial

    from raytune_k8s._tune.unique_ids import random_start, unique_trial_ids

    with unique_trial_ids():
        ids = [Trial.generate_id() for _ in range(100_000)]
        elsewhere: list[str] = []
        thread = threading.Thread(target=lambda: elsewhere.append(Trial.generate_id()))
        thread.start()
        thread.join()
    assert len(set(ids)) == 100_000 and all(len(i) == 8 and int(i, 16) >= 0 for i in ids)
    assert all((int(b, 16) - int(a, 16)) % 2**32 == 1 for a, b in zip(ids, ids[1:]))
    assert len(elsewhere[0]) == 8  # another thread: Tune's own (random) ids
    assert Trial.generate_id not in (None,) and Trial.generate_id.__func__.__module__.startswith("ray.")  # put back
    taken = {f"{i:08x}" for i in range(0, 2**32, 2**16)}  # one id in every 65,536
    start = random_start(taken, span=1000)
    assert not any(f"{(start + i) % 2**32:08x}" in taken for i in range(1000))
