"""Kubeflow Trainer's TrainJob status endpoint, as a TrainJob trial's process sees it: Kubeflow's
own SDK helper (``update_trainjob_status``) reports metrics over HTTPS with the CA and token it is
given, a request without the token is refused, and the helper's 5 s throttle drops updates."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import requests

from raytune_k8s.collectors.stdout import StdOutCollector
from raytune_k8s.collectors.trainer_status import CA_CERT_ENV, SERVER_URL_ENV, WithTrainerStatus

_TRAINER = """
import json, time
from kubeflow.trainer.backends.kubernetes.utils import update_trainjob_status
sent = [update_trainjob_status(metrics={"loss": 0.5, "accuracy": 0.75})]
sent.append(update_trainjob_status(metrics={"loss": 0.4}))   # within 5 s of the first: dropped by the helper
time.sleep(5.1)
sent.append(update_trainjob_status(progress_percent=100, metrics={"loss": 0.25}))
print(json.dumps(sent))
"""


def test_the_sdks_helper_reports_through_the_endpoint(tmp_path):
    collector = WithTrainerStatus(StdOutCollector(["loss", "accuracy"], []), tmp_path / "status")
    collector.prepare()
    try:
        env = {**os.environ, **collector.env()}
        run = subprocess.run([sys.executable, "-c", _TRAINER], env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout.strip().splitlines()[-1]) == [True, False, True]
        refused = requests.post(env[SERVER_URL_ENV], json={"trainerStatus": {"metrics": [{"name": "loss", "value": "0"}]}},
                                headers={"Authorization": "Bearer wrong"}, verify=env[CA_CERT_ENV], timeout=10)
        assert refused.status_code == 401
        groups = collector.flush()
    finally:
        collector.close()
    assert [dict(g) for g in groups] == [{"loss": 0.5, "accuracy": 0.75}, {"loss": 0.25}]


def test_the_optimization_job_example_reports_through_the_sdk_helper(ray_connected, tmp_path, capsys):
    """examples/optimization-job.yaml, unchanged, with `raytune-k8s run`: its program prints no
    metric lines; every metric comes through the status endpoint from Kubeflow's helper."""
    import yaml

    from raytune_k8s.cli import main

    from .helpers import REPO

    assert main(["run", str(REPO / "examples" / "optimization-job.yaml"), "--storage-path", str(tmp_path), "--no-report"]) == 0
    summary = json.loads((tmp_path / "optimization-job-mnist" / "summary.json").read_text())
    assert summary["status"] == "Succeeded" and summary["succeeded"] == 4, summary
    for row in summary["trial_table"]:
        assert row["iterations"] == 2 and 0 < row["metrics"]["loss"] < 2.3  # two epochs, learning (chance: 2.3)
    logs = list((tmp_path / "optimization-job-mnist").glob("*/replicas/node-0.log"))
    assert len(logs) == 4 and all(log.read_text().count("(sent)") == 2 and "loss=" not in log.read_text() for log in logs)
    capsys.readouterr()
    assert main(["results", str(tmp_path / "optimization-job-mnist"), "--optimization-job"]) == 0
    status = yaml.safe_load(capsys.readouterr().out)
    assert status["status"]["conditions"][-1]["type"] == "Complete"
    assert status["status"]["result"]["trainJobName"] == f"optimization-job-mnist-{summary['best']['trial_id']}"
