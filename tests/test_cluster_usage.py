"""Using a running Ray head as a user would: `ray job submit`, and interrupt + `raytune-k8s resume`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml


def _curve_spec(name: str, trials: int) -> dict:
    return {
        "name": name,
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 1}]},
        "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 1e-4, "max": 1.0, "distribution": "logUniform"}}],
        "parallelTrialCount": 1,
        "maxTrialCount": trials,
        "trial": {"function": "raytune_k8s.trials.synthetic:learning_curve", "fixedParameters": {"steps": 4, "sleep": 0.4}, "resources": {"cpu": 1}},
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


def _finished_trials(experiment_dir: Path) -> dict[str, int]:
    """trial dir -> number of results it reported, for trials that reported all 4 steps."""
    out = {}
    for result in experiment_dir.glob("*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if lines and lines[-1].get("step") == 4:
            out[result.parent.name] = len(lines)
    return out


def test_interrupted_experiment_resumes_without_rerunning_finished_trials(ray_head, tmp_path):
    spec_path = tmp_path / "experiment.yaml"
    spec_path.write_text(yaml.safe_dump(_curve_spec("interrupted", 6)))
    storage = tmp_path / "storage"
    experiment_dir = storage / "interrupted"
    cli = [sys.executable, "-m", "raytune_k8s"]
    driver = subprocess.Popen([*cli, "run", str(spec_path), "--address", ray_head.address, "--storage-path", str(storage)],
                              env=ray_head.client_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while len(_finished_trials(experiment_dir)) < 2 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)  # what Ctrl-C or a stopped job does
    out, _ = driver.communicate(timeout=120)
    before = _finished_trials(experiment_dir)
    assert 2 <= len(before) < 6, out[-3000:]
    interrupted = json.loads((experiment_dir / "summary.json").read_text())
    assert interrupted["status"] == "Interrupted", out[-3000:]

    resumed = subprocess.run([*cli, "resume", str(experiment_dir), "--address", ray_head.address],
                             env=ray_head.client_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((experiment_dir / "summary.json").read_text())
    after = _finished_trials(experiment_dir)
    assert summary["status"] == "Succeeded" and summary["trials"] == 6 and len(summary["trial_table"]) == 6
    for trial, reports in before.items():
        assert after[trial] == reports == 4, f"finished trial {trial} was run again"
