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
import time
from pathlib import Path

import pytest
import yaml

from raytune_k8s.journal import read_journal
from raytune_k8s.trials.witness import audit, read_log

CLI = [sys.executable, "-m", "raytune_k8s"]


def _witness_spec(name: str, log_dir: Path, *, trials: int, parallel: int = 2, steps: int = 5, sleep: float = 0.3) -> dict:
    return {
        "name": name,
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 3}]},
        "parameters": [{"name": "lr", "parameterType": "double",
                        "feasibleSpace": {"min": "1e-4", "max": "1", "distribution": "logUniform"}}],
        "parallelTrialCount": parallel,
        "maxTrialCount": trials,
        "trial": {"function": "raytune_k8s.trials.witness:witness", "resources": {"cpu": 1}, "retries": 2,
                  "fixedParameters": {"steps": steps, "sleep": sleep, "log_dir": str(log_dir)}},
    }


def _wait_until(condition, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"driver exited early with {proc.returncode}: {proc.stdout.read()[-3000:] if proc.stdout else ''}")
        time.sleep(0.1)


def _events(log_dir: Path, kind: str) -> list[tuple[str, dict]]:
    return [(tid, e) for tid, events in read_log(log_dir).items() for e in events if e["event"] == kind]


def test_sigkilled_driver_resumes_with_no_result_lost_and_no_finished_trial_rerun(ray_head, tmp_path):
    logs, storage = tmp_path / "logs", tmp_path / "storage"
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_witness_spec("sigkill", logs, trials=10)))
    experiment_dir = storage / "sigkill"
    driver = subprocess.Popen([*CLI, "run", str(spec_path), "--address", ray_head.address, "--storage-path", str(storage),
                               "--no-report"], env=ray_head.client_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:  # halfway: some trials done, some mid-way (Tune saved its state at the start, and ~10 s later)
        _wait_until(lambda: len(_events(logs, "done")) >= 3 and len(_events(logs, "acked")) > 5 * len(_events(logs, "done")),
                    timeout=180, proc=driver)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    killed_at = time.time()
    # Every report the driver had acknowledged is in the experiment directory: no clean shutdown ran.
    acked = {(tid, e["step"]) for tid, e in _events(logs, "acked")}
    journaled = {(e["trial_id"], e["result"]["step"]) for e in read_journal(experiment_dir) if e["event"] == "result"}
    assert acked and acked <= journaled, sorted(acked - journaled)
    finished_before = {tid for tid, _ in _events(logs, "done")}
    time.sleep(max(0.0, killed_at + 2 - time.time()))  # the head notices the driver is gone and ends its trials

    resumed = subprocess.run([*CLI, "resume", str(experiment_dir), "--address", ray_head.address],
                             env=ray_head.client_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((experiment_dir / "summary.json").read_text())
    assert summary["status"] == "Succeeded" and summary["trials"] == 10 and summary["trials_total"] == 10, summary["reason"]
    found = audit(logs, experiment_dir)
    assert found["lost"] == [] and found["rerun"] == [], found
    assert found["duplicates"] == [], found
    assert finished_before <= {r["trial_id"] for r in summary["trial_table"] if r["status"] == "Succeeded"}
