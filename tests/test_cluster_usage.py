"""Using a running Ray head as a user would: `ray job submit`, and a stop (SIGTERM) + `raytune-k8s resume`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from raytune_k8s.cli import main


def _curve_spec(name: str, trials: int) -> dict:
    return {
        "name": name,
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 1}]},
        "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 1e-4, "max": 1.0, "distribution": "logUniform"}}],
        "parallelTrialCount": 1,
        "maxTrialCount": trials,
        "trial": {"function": "raytune_k8s.trials.probes:learning_curve", "fixedParameters": {"steps": 4, "sleep": 0.4}, "resources": {"cpu": 1}},
    }


def test_ray_job_submit_runs_an_experiment(ray_head, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "experiment.yaml").write_text(yaml.safe_dump(_curve_spec("submitted", 3)))
    storage = tmp_path / "storage"
    proc = subprocess.run(
        [shutil.which("ray") or "ray", "job", "submit", "--address", ray_head.dashboard_url, "--working-dir", str(work),
         "--", "raytune-k8s", "run", "experiment.yaml", "--storage-path", str(storage)],
        env=ray_head.client_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout + proc.stderr
    summary = json.loads((storage / "submitted" / "summary.json").read_text())
    assert summary["status"] == "Succeeded" and summary["trials"] == 3


def _reports(experiment_dir: Path) -> dict[str, list[dict]]:
    """trial id -> the results it reported, in order (from each trial's result.json)."""
    out = {}
    for result in experiment_dir.glob("*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if lines:
            out[lines[0]["trial_id"]] = lines
    return out


def _fully_reported(experiment_dir: Path) -> int:
    return sum(1 for lines in _reports(experiment_dir).values() if lines[-1].get("step") == 4)


def test_interrupted_experiment_resumes_without_rerunning_finished_trials(ray_connected, tmp_path, capsys):
    spec_path = tmp_path / "experiment.yaml"
    spec_path.write_text(yaml.safe_dump(_curve_spec("interrupted", 8)))
    storage = tmp_path / "storage"
    experiment_dir = storage / "interrupted"
    cli = [sys.executable, "-m", "raytune_k8s"]
    driver = subprocess.Popen([*cli, "run", str(spec_path), "--address", ray_connected.address, "--storage-path", str(storage),
                               "--no-report"],
                              env=ray_connected.client_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while _fully_reported(experiment_dir) < 2 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.2)
    driver.send_signal(signal.SIGTERM)  # what `ray job stop` and Kubernetes send a driver
    out, _ = driver.communicate(timeout=120)
    interrupted = json.loads((experiment_dir / "summary.json").read_text())
    assert interrupted["status"] == "Interrupted", out[-3000:]
    # "Finished" is what Tune recorded: a trial that sent its last report but was stopped before
    # its function returned is still running, and resume may run it again.
    finished = {row["trial_id"] for row in interrupted["trial_table"] if row["status"] == "Succeeded"}
    assert 1 <= len(finished) < 8, out[-3000:]
    before = _reports(experiment_dir)

    # The resume in this process (the driver that was stopped had a process of its own).
    assert main(["resume", str(experiment_dir), "--no-report"]) == 0, capsys.readouterr().err[-3000:]
    summary = json.loads((experiment_dir / "summary.json").read_text())
    after = _reports(experiment_dir)
    assert summary["status"] == "Succeeded" and summary["trials"] == 8 and len(summary["trial_table"]) == 8
    assert all(row["status"] == "Succeeded" for row in summary["trial_table"])
    for trial in finished:
        assert after[trial] == before[trial] and len(after[trial]) == 4, f"finished trial {trial} was run again"
    for trial, reports in before.items():  # nothing reported before the interrupt is lost
        assert after[trial][: len(reports)] == reports, f"results of trial {trial} were lost"
