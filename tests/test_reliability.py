"""Stops that keep their promises: every reported result reaches the experiment directory at
once, a SIGKILLed driver resumes with nothing lost or run twice, `ray job stop` leaves an
Interrupted summary with the results, and a failure in fit() keeps its own error.

The trials are ``raytune_k8s.trials.witness``: they log what they reported to their own files,
which is checked against the experiment directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raytune_k8s.recovery.journal import read_journal
from raytune_k8s.trials.witness import audit, read_log

from .helpers import wait_for, witness_spec

CLI = [sys.executable, "-m", "raytune_k8s"]


def _witness_spec(name: str, log_dir: Path, *, trials: int, parallel: int = 2, steps: int = 5, sleep: float = 0.3) -> dict:
    return witness_spec(name, log_dir, trials=trials, parallel=parallel, steps=steps, sleep=sleep, retries=2)


def _events(log_dir: Path, kind: str) -> list[tuple[str, dict]]:
    return [(tid, e) for tid, events in read_log(log_dir).items() for e in events if e["event"] == kind]


def _live_actors(head) -> list[str]:
    """The head's actors still alive, but for detached ones (which outlive any driver)."""
    from ray.util.state import list_actors

    # The dashboard URL, not the GCS address: a GCS client made here for a head that a test later
    # stops would end this process 60 s after (Ray gives up on an unreachable GCS with exit 1).
    return [a.class_name for a in list_actors(address=head.dashboard_url, filters=[("state", "=", "ALIVE")], limit=10_000,
                                               raise_on_missing_output=False) if not a.is_detached]


@pytest.fixture
def own_head():
    """A head of this test's own, so that no other test's actors share it."""
    from raytune_k8s.sim.cluster import LocalRayHead

    with LocalRayHead(num_cpus=2) as head:
        yield head


def test_sigkilled_driver_resumes_with_no_result_lost_and_no_finished_trial_rerun(own_head, tmp_path):
    ray_head = own_head
    logs, storage = tmp_path / "logs", tmp_path / "storage"
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_witness_spec("sigkill", logs, trials=10)))
    experiment_dir = storage / "sigkill"
    driver = subprocess.Popen([*CLI, "run", str(spec_path), "--address", ray_head.address, "--storage-path", str(storage),
                               "--no-report"], env=ray_head.client_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:  # halfway: some trials done, some mid-way (Tune saved its state at the start, and ~10 s later)
        wait_for(lambda: len(_events(logs, "done")) >= 3 and len(_events(logs, "acked")) > 5 * len(_events(logs, "done")),
                 180, "three trials done and others mid-way", interval=0.1, proc=driver)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    # Every report the driver had acknowledged is in the experiment directory: no clean shutdown ran.
    acked = {(tid, e["step"]) for tid, e in _events(logs, "acked")}
    journaled = {(e["trial_id"], e["result"]["step"]) for e in read_journal(experiment_dir) if e["event"] == "result"}
    assert acked and acked <= journaled, sorted(acked - journaled)
    finished_before = {tid for tid, _ in _events(logs, "done")}
    # The head notices the driver is gone and ends its actors (the trials, the searcher's).
    wait_for(lambda: not _live_actors(ray_head), 120, "the dead driver's actors ended", interval=0.2)

    resumed = subprocess.run([*CLI, "resume", str(experiment_dir), "--address", ray_head.address],
                             env=ray_head.client_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Tune's last save" not in resumed.stderr, resumed.stderr[-3000:]  # Tune's private formats still read
    summary = json.loads((experiment_dir / "summary.json").read_text())
    assert summary["status"] == "Succeeded" and summary["trials"] == 10 and summary["trials_total"] == 10, summary["reason"]
    found = audit(logs, experiment_dir)
    assert found["lost"] == [] and found["rerun"] == [], found
    assert found["duplicates"] == [], found
    assert finished_before <= {r["trial_id"] for r in summary["trial_table"] if r["status"] == "Succeeded"}


def test_a_lost_head_keeps_every_acknowledged_result_in_the_experiment_directory(own_head, tmp_path):
    """The whole head dies at once (driver, GCS, raylet, workers: SIGKILL, as when its pod is
    lost): every report a trial saw acknowledged is already in the experiment directory's journal,
    not only in the head's session folder."""
    import psutil

    from raytune_k8s.sim.cluster import _cluster_processes, _kill_trees

    logs, storage = tmp_path / "logs", tmp_path / "storage"
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_witness_spec("head-loss", logs, trials=6, steps=8)))
    driver = subprocess.Popen([*CLI, "run", str(spec_path), "--address", own_head.address, "--storage-path", str(storage),
                               "--no-report"], env=own_head.client_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(_events(logs, "acked")) >= 6, 180, "six reports acknowledged", interval=0.1, proc=driver)
    finally:
        _kill_trees([psutil.Process(driver.pid), *_cluster_processes(own_head.temp_dir)], graceful_s=0)
        driver.wait(30)
    acked = {(tid, e["step"]) for tid, e in _events(logs, "acked")}
    journaled = {(e["trial_id"], e["result"]["step"]) for e in read_journal(storage / "head-loss") if e["event"] == "result"}
    assert len(acked) >= 6 and acked <= journaled, sorted(acked - journaled)


def test_ray_job_stop_leaves_an_interrupted_summary_with_every_reported_result(ray_head, tmp_path):
    """`ray job stop` sends SIGTERM, waits RAY_JOB_STOP_WAIT_TIME_S (set in the job's runtime env,
    as our RayJob does), then SIGKILLs: the run ends Interrupted, and what the trials reported is
    in the experiment directory, not only in the head's session folder."""
    work, logs, storage = tmp_path / "work", tmp_path / "logs", tmp_path / "storage"
    work.mkdir()
    (work / "experiment.yaml").write_text(yaml.safe_dump(_witness_spec("job-stop", logs, trials=6, steps=8, sleep=0.5)))
    ray_cli = shutil.which("ray") or "ray"
    env, job = ray_head.client_env(), f"job-stop-{os.getpid()}"
    submit = subprocess.run(
        [ray_cli, "job", "submit", "--address", ray_head.dashboard_url, "--no-wait", "--submission-id", job,
         "--working-dir", str(work), "--runtime-env-json", json.dumps({"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": "30"}}),
         "--", "raytune-k8s", "run", "experiment.yaml", "--storage-path", str(storage), "--no-report"],
        env=env, capture_output=True, text=True, timeout=120)
    assert submit.returncode == 0, submit.stdout[-2000:] + submit.stderr[-2000:]
    wait_for(lambda: len(_events(logs, "done")) >= 1 and len(_events(logs, "acked")) >= 10, 180,
             "a trial done and ten reports acknowledged", interval=0.1)
    stop = subprocess.run([ray_cli, "job", "stop", "--address", ray_head.dashboard_url, job], env=env,
                          capture_output=True, text=True, timeout=120)
    assert stop.returncode == 0, stop.stdout[-2000:] + stop.stderr[-2000:]
    experiment_dir = storage / "job-stop"
    summary = json.loads((experiment_dir / "summary.json").read_text())
    assert summary["status"] == "Interrupted"
    assert summary["trials"] >= 1 and summary["best"] is not None
    iterations = {r["trial_id"]: r["iterations"] for r in summary["trial_table"]}
    acked: dict[str, int] = {}
    for tid, e in _events(logs, "acked"):
        acked[tid] = max(acked.get(tid, 0), e["step"])
    assert all(iterations.get(tid, 0) >= step for tid, step in acked.items()), (acked, iterations)
    recorded = {(tid, s) for tid, s in _recorded_steps(experiment_dir)}
    assert {(tid, e["step"]) for tid, e in _events(logs, "acked")} <= recorded


def _recorded_steps(experiment_dir: Path) -> list[tuple[str, int]]:
    out = []
    for path in experiment_dir.glob("*/result.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                out.append((row["trial_id"], row["step"]))
    return out


def test_a_failure_in_fit_keeps_its_own_error_when_the_summary_cannot_be_built(ray_connected, tmp_path, capsys):
    """fit() fails (a callback raises as the run starts) before Tune wrote anything, so building
    the summary fails too: the caller sees fit()'s error, and a warning names the other."""
    from ray import tune

    from raytune_k8s.experiment.runner import _fit_and_summarize
    from raytune_k8s.spec import load_document

    class Broken(tune.Callback):
        def setup(self, **info):
            raise RuntimeError("the storage went away")

    spec = load_document(_witness_spec("fit-fails", tmp_path / "logs", trials=2)).spec
    tuner = tune.Tuner(lambda config: None, run_config=tune.RunConfig(name="fit-fails", storage_path=str(tmp_path / "s"),
                                                                      callbacks=[Broken()], verbose=0))
    with pytest.raises(RuntimeError, match="the storage went away"):
        _fit_and_summarize(tuner, spec, tmp_path / "elsewhere", 1, None)
    assert "warning: could not write the summary after the run failed" in capsys.readouterr().err


def test_a_trial_that_dies_right_after_a_report_retries_from_that_reports_checkpoint(ray_connected, tmp_path):
    """The trial process exits just after its step-2 report returned, before Tune asked for the
    step's checkpoint: the retry starts after step 2 (the checkpoint that result named), so no
    step is reported twice and none is lost."""
    from raytune_k8s import run

    logs = tmp_path / "logs"
    spec = _witness_spec("die-after-report", logs, trials=1, parallel=1, steps=4, sleep=0.1)
    spec["trial"]["fixedParameters"]["die_after_step"] = 2
    summary = run(spec, storage_path=tmp_path / "storage", report=False)
    assert summary["status"] == "Succeeded", summary["reason"]
    [(trial_id, events)] = read_log(logs).items()
    assert [e["after"] for e in events if e["event"] == "start"] == [0, 2]  # it died once, and went on from step 2
    found = audit(logs, tmp_path / "storage" / "die-after-report")
    assert found["lost"] == [] and found["duplicates"] == [], found
