"""Distributed trials on the session's Ray: a Katib PyTorchJob of a Master and a Worker runs as a
gang of two processes that really train together (torch DDP over gloo), only the primary's
metrics are the trial's, a lost replica ends the whole gang, and a gang that cannot fit is
refused before anything starts."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import raytune_k8s
from raytune_k8s.cli import main
from raytune_k8s.spec import SpecError

from .helpers import wait_for

_PROGRAM = "/opt/pytorch-mnist/mnist.py"


def _pytorchjob(command: list[str], *, cpu: str | None = None, volumes: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "pytorch", "image": "ghcr.io/kubeflow/katib/pytorch-mnist-cpu:latest",
                                 "command": command}
    pod: dict[str, Any] = {"containers": [container]}
    if cpu is not None:
        container["resources"] = {"requests": {"cpu": cpu}}
    if volumes:  # each replica's own folder at /out, as a pod's emptyDir
        container["volumeMounts"] = [{"name": "out", "mountPath": "/out"}]
        pod["volumes"] = [{"name": "out", "emptyDir": {}}]
    replica = {"restartPolicy": "OnFailure", "template": {"spec": pod}}
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, **copy.deepcopy(replica)},
                                             "Worker": {"replicas": 1, **copy.deepcopy(replica)}}}}


def _experiment(name: str, trial_spec: dict, parameters: list[dict], *, trials: int, parallel: int,
                algorithm: str = "grid") -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": algorithm},
            "parallelTrialCount": parallel, "maxTrialCount": trials, "maxFailedTrialCount": trials,
            "parameters": parameters,
            "trialTemplate": {
                "primaryContainerName": "pytorch",
                "trialParameters": [{"name": p["name"], "reference": p["name"]} for p in parameters],
                "trialSpec": trial_spec,
            },
        },
    }


def _trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if (p / "params.json").exists())


def test_a_pytorchjob_trial_trains_as_two_ddp_ranks_and_reports_only_the_masters_metrics(ray_connected, tmp_path):
    """Each rank trains on its own shard; with DDP's all-reduce the two replicas end with the same
    weights, with it switched off (the control trial) they do not."""
    command = [sys.executable, _PROGRAM, "--epochs=1", "--batch-size=50", "--log-interval=2", "--train-size=400",
               "--lr=0.05", "--save-weights=/out/weights.pt", "${trialParameters.mode}"]
    # `mode` is one more flag: --no-allreduce (the control), or --no-cuda (no effect on a CPU).
    doc = _experiment("ddp", _pytorchjob(command, volumes=True),
                      [{"name": "mode", "parameterType": "categorical", "feasibleSpace": {"list": ["--no-cuda", "--no-allreduce"]}}],
                      trials=2, parallel=2)
    summary = raytune_k8s.run(doc, storage_path=tmp_path, report=False)
    assert (summary["status"], summary["succeeded"]) == ("Succeeded", 2), summary
    experiment = tmp_path / "ddp"
    weights: dict[str, bool] = {}
    for trial_dir in _trial_dirs(experiment):
        mode = json.loads((trial_dir / "params.json").read_text())["mode"]
        logs = {name: (trial_dir / "replicas" / f"{name}.log").read_text() for name in ("master-0", "worker-0")}
        assert "distributed: rank 0 of 2 (backend gloo)" in logs["master-0"]
        assert "distributed: rank 1 of 2 (backend gloo)" in logs["worker-0"]
        master, worker = (torch.load(trial_dir / "replicas" / name / "volumes" / "out" / "weights.pt") for name in ("master-0", "worker-0"))
        weights[mode] = all(torch.equal(master[k], worker[k]) for k in master)
        # Only the primary's (the Master's) losses were reported; the Worker's differ (other data).
        reported = [json.loads(line)["loss"] for line in (trial_dir / "result.json").read_text().splitlines()]
        master_losses = [float(v) for v in re.findall(r"loss=([0-9.]+)", logs["master-0"])]
        worker_losses = [float(v) for v in re.findall(r"loss=([0-9.]+)", logs["worker-0"])]
        assert reported == master_losses and master_losses != worker_losses
    assert weights == {"--no-cuda": True, "--no-allreduce": False}


_HOLD = ("import os, sys, time\n"
         "print('loss=1.0', flush=True)\n"
         "time.sleep(300)\n")


def _gang_processes(marker: str) -> list[int]:
    """Live processes whose command line has ``marker``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "cmdline").read_bytes() and \
                    not (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_a_lost_worker_replica_fails_the_trial_and_ends_the_whole_gang(ray_connected, tmp_path):
    marker = f"gang-marker-{os.getpid()}"
    command = [sys.executable, "-c", _HOLD, marker]
    doc = _experiment("lost-worker", _pytorchjob(command), [{"name": "lr", "parameterType": "double",
                                                            "feasibleSpace": {"min": "0.1", "max": "0.2"}}],
                      trials=1, parallel=1, algorithm="random")
    path = tmp_path / "lost.yaml"
    path.write_text(yaml.safe_dump(doc))
    codes: list[int] = []
    run = threading.Thread(target=lambda: codes.append(main(["run", str(path), "--storage-path", str(tmp_path / "runs"),
                                                             "--no-report"])))
    run.start()

    def worker_pid() -> int | None:
        for pid in _gang_processes(marker):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"RANK=1" in environ:
                return pid
        return None

    pid = wait_for(worker_pid, 120, "the worker replica's process")
    wait_for(lambda: len(_gang_processes(marker)) >= 2, 60, "both replicas running")
    os.kill(pid, signal.SIGKILL)
    run.join(120)
    assert not run.is_alive()
    summary = json.loads((tmp_path / "runs" / "lost-worker" / "summary.json").read_text())
    assert summary["failed"] == 1
    error = summary["trial_table"][0]["error"]
    assert "replica worker-0 exited with status -9" in error, error
    wait_for(lambda: not _gang_processes(marker), 30, "no process of the gang left")


def test_a_gang_that_cannot_fit_is_refused_before_anything_starts(tmp_path, capsys):
    """The quota counts the whole gang; each replica must fit one worker (here: this machine)."""
    command = [sys.executable, _PROGRAM, "--lr=${trialParameters.lr}"]
    params = [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.2"}}]
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(_experiment("big-gang", _pytorchjob(command, cpu="1"), params, trials=2, parallel=2,
                                               algorithm="random")))
    assert main(["run", str(path), "--storage-path", str(tmp_path / "runs"), "--no-report", "--quota-cpu", "1"]) == 2
    err = capsys.readouterr().err
    assert "2 vCPU per trial does not fit the tenant quota of 1 vCPU" in err, err
    too_big = _experiment("huge-replica", _pytorchjob(command, cpu=str((os.cpu_count() or 2) + 1)), params, trials=2,
                          parallel=2, algorithm="random")
    with pytest.raises(SpecError) as info:
        raytune_k8s.run(too_big, storage_path=tmp_path / "runs", report=False)
    assert info.value.field.endswith("pytorchReplicaSpecs.Master.template.spec.containers[0].resources.cpu")
    assert "per replica is more than" in info.value.reason, info.value.reason
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("example", ["pytorchjob-mnist", "trainjob-pytorch"])
def test_the_distributed_katib_examples_run_unchanged(ray_connected, tmp_path, example):
    """Our PyTorchJob (Master + Worker) and TrainJob (2 nodes) examples, as a Katib user writes
    them, run to Succeeded: each trial a gang of 2 replica processes with their own logs."""
    from .helpers import REPO

    path = REPO / "examples" / "katib" / f"{example}.yaml"
    assert main(["run", str(path), "--storage-path", str(tmp_path), "--no-report"]) == 0
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    assert summary["status"] == "Succeeded" and summary["succeeded"] == summary["trials"], summary
    for trial_dir in _trial_dirs(tmp_path / name):
        logs = sorted(p.name for p in (trial_dir / "replicas").glob("*.log"))
        assert logs == (["master-0.log", "worker-0.log"] if example == "pytorchjob-mnist" else ["node-0.log", "node-1.log"])
        assert all("loss=" in (trial_dir / "replicas" / log).read_text() for log in logs)


# Each rank keeps its own mark of a first attempt (no race between the ranks): on its second
# attempt it reports and ends; on the first it waits to be killed.
_ONCE = ("import os, sys, time\n"
         "flag = sys.argv[2] + '.' + os.environ['RANK']\n"
         "print('loss=1.0', flush=True)\n"
         "if os.path.exists(flag):\n"
         "    sys.exit(0)\n"
         "open(flag, 'w').close()\n"
         "time.sleep(300)\n")


def test_a_retried_trial_starts_the_whole_gang_again(ray_connected, tmp_path):
    """The short format's 2-replica PyTorch trial with ``retries: 1``: the worker's process is
    killed in the first attempt; the retry starts both replicas again, and they finish."""
    marker = f"retry-marker-{os.getpid()}"
    flag = tmp_path / "first-attempt-ran"
    spec = {"name": "gang-retry", "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"}, "maxTrialCount": 1, "parallelTrialCount": 1,
            "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0.1, "max": 0.2}}],
            "trial": {"command": [sys.executable, "-c", _ONCE, marker, str(flag)], "replicas": 2, "framework": "pytorch",
                      "retries": 1, "resources": {"cpu": 0.5}}}
    summaries: list[dict] = []
    run = threading.Thread(target=lambda: summaries.append(raytune_k8s.run(spec, storage_path=tmp_path, report=False)))
    run.start()
    marks = [Path(f"{flag}.{rank}") for rank in (0, 1)]
    first = wait_for(lambda: all(m.exists() for m in marks) and len(_gang_processes(marker)) >= 2 and _gang_processes(marker),
                     120, "the first attempt's two replicas")
    worker = next(pid for pid in first if b"RANK=1" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
    os.kill(worker, signal.SIGKILL)
    run.join(120)
    assert not run.is_alive() and summaries[0]["status"] == "Succeeded", summaries
    assert not any(Path(f"/proc/{pid}").exists() for pid in first)  # the first gang's master ended with it
    trial_dir = _trial_dirs(tmp_path / "gang-retry")[0]
    assert (trial_dir / "replicas" / "worker-0.log").read_text().count("loss=1.0") == 2  # both attempts


_TREE = ("import subprocess, sys, time\n"
         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', sys.argv[1] + '-grandchild'])\n"
         "print('loss=1.0', flush=True)\n"
         "time.sleep(300)\n")


def test_a_gang_past_its_deadline_ends_with_every_process_tree(ray_connected, tmp_path):
    """runPolicy.activeDeadlineSeconds: the trial fails with Timeout, and no replica's process
    (nor what it started) is left."""
    marker = f"deadline-marker-{os.getpid()}"
    job = _pytorchjob([sys.executable, "-c", _TREE, marker])
    job["spec"]["runPolicy"] = {"activeDeadlineSeconds": 4}
    doc = _experiment("gang-deadline", job, [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.2"}}],
                      trials=1, parallel=1, algorithm="random")
    summary = raytune_k8s.run(doc, storage_path=tmp_path, report=False)
    assert summary["failed"] == 1 and "Timeout: the trial ran longer than 4 s" in summary["trial_table"][0]["error"], summary
    wait_for(lambda: not _gang_processes(marker), 30, "no process of the gang (grandchildren included) left")


def test_a_users_stop_ends_every_gang_with_its_grandchildren(ray_connected, tmp_path):
    """``ray job stop`` and Kubernetes stop a driver with SIGTERM: the run ends Interrupted and
    no process of any gang is left, grandchildren included (Ray SIGKILLs a dead worker's direct
    children, so each trial's watchdog must not be one)."""
    marker = f"stop-marker-{os.getpid()}"
    spec = {"name": "gang-stop", "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"}, "maxTrialCount": 2, "parallelTrialCount": 2,
            "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0.1, "max": 0.2}}],
            "trial": {"command": [sys.executable, "-c", _TREE, marker], "replicas": 2, "framework": "pytorch",
                      "resources": {"cpu": 0.5}}}
    path = tmp_path / "stop.yaml"
    path.write_text(yaml.safe_dump(spec))
    driver = subprocess.Popen([sys.executable, "-m", "raytune_k8s", "run", str(path), "--storage-path", str(tmp_path),
                               "--no-report", "--address", ray_connected.address],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: len(_gang_processes(marker)) >= 8, 120, "2 gangs of 2 replicas, each with a grandchild", proc=driver)
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(120) != 0
    assert json.loads((tmp_path / "gang-stop" / "summary.json").read_text())["status"] == "Interrupted"
    wait_for(lambda: not _gang_processes(marker), 60, "no process of any gang left")
