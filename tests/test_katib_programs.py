"""Our stand-ins for Katib's example programs, run for real as trial commands run them
(``python -m <module> args``, no Ray): distributed PyTorch, TensorBoard summaries, LightGBM lines."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import torch

from raytune_k8s.collectors.tfevent import TensorFlowEventCollector
from raytune_k8s.trials.katib_programs import STAND_INS, entrypoint_for, stand_in

from .helpers import REPO

PACKAGE = "raytune_k8s.trials.katib_programs"
# Katib's xgboostjob-lightgbm example: its metrics filter, and the args its container gets.
LIGHTGBM_FILTER = re.compile(r"(\w+\s\w+)\s:\s((-?\d+)(\.\d+)?)")
LIGHTGBM_ARGS = ["--job_type=Train", "--metric=binary_logloss,auc", "--learning_rate=0.1", "--num_leaves=50",
                 "--num_trees=20", "--boosting_type=gbdt", "--objective=binary", "--metric_freq=1",
                 "--is_training_metric=true", "--max_bin=255", "--data=data/binary.train",
                 "--valid_data=data/binary.test", "--tree_learner=feature", "--feature_fraction=0.8",
                 "--bagging_freq=5", "--bagging_fraction=0.8", "--min_data_in_leaf=50",
                 "--min_sum_hessian_in_leaf=50", "--is_enable_sparse=true", "--use_two_round_loading=false",
                 "--is_save_binary_file=false"]


def _env(**extra: str) -> dict[str, str]:
    # One thread each: two ranks share the test machine's cores.
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pytorch_gang(tmp_path: Path, *flags: str) -> list[dict[str, torch.Tensor]]:
    """Two ranks of the pytorch-mnist stand-in as a PyTorchJob runs them; each rank's weights."""
    port = str(_free_port())
    procs = [subprocess.Popen(
        [sys.executable, "-u", "-m", f"{PACKAGE}.pytorch_mnist", "--epochs=1", "--train-size=256",
         "--batch-size=32", f"--save-weights={tmp_path / f'rank{rank}.pt'}", *flags],
        cwd=tmp_path, env=_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE="2", RANK=str(rank)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    for rank, (proc, out) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, out
        assert f"distributed: rank {rank} of 2 (backend gloo)" in out
        assert "loss=" in out and "{metricName: accuracy" in out
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]


def test_pytorch_ranks_keep_equal_weights_through_the_allreduce(tmp_path):
    """Each rank trains on its own shard; DDP's gradient all-reduce keeps their weights equal,
    and without it (the control) the ranks drift apart."""
    synced = _pytorch_gang(tmp_path)
    assert synced[0].keys() == synced[1].keys()
    assert all(torch.equal(synced[0][k], synced[1][k]) for k in synced[0])
    apart = _pytorch_gang(tmp_path, "--no-allreduce")
    assert not all(torch.equal(apart[0][k], apart[1][k]) for k in apart[0])


def test_tf_mnist_summaries_are_read_by_the_tensorflow_event_collector(tmp_path):
    run = subprocess.run(
        [sys.executable, "-u", "-m", f"{PACKAGE}.tf_mnist_with_summaries", "--epochs=1", "--train-size=256",
         "--batch-size=32", "--learning-rate=0.01", f"--log-path={tmp_path / 'logs'}"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"loss=\d+\.\d+, accuracy=\d+\.\d+", run.stdout) and "Test Accuracy: " in run.stdout
    assert any((tmp_path / "logs" / "train").glob("*tfevents*"))
    collector = TensorFlowEventCollector(["accuracy", "loss"], "/mnist-with-summaries-logs/test",
                                         tmp_path / "logs" / "test")
    (epoch0,) = collector.flush()  # one report: epoch 0's scalars
    values = dict(epoch0)
    assert 0 < float(values["accuracy"]) <= 1 and float(values["loss"]) > 0


def test_lightgbm_stand_in_prints_what_katibs_filter_reads(tmp_path):
    """Katib's example args (fewer trees); every iteration's ``valid_1 auc`` matches its filter."""
    run = subprocess.run([sys.executable, "-u", "-m", f"{PACKAGE}.xgboost_lightgbm", *LIGHTGBM_ARGS],
                         cwd=tmp_path, env=_env(WORLD_SIZE="3", RANK="0"), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    found: dict[str, list[float]] = {}
    for line in run.stdout.splitlines():
        for name, value, *_ in LIGHTGBM_FILTER.findall(line):
            found.setdefault(name, []).append(float(value))
    assert set(found) == {"valid_1 auc", "valid_1 binary_logloss", "training auc", "training binary_logloss"}
    assert len(found["valid_1 auc"]) == 20
    assert 0.9 < found["valid_1 auc"][-1] <= 1


def test_the_lightgbm_image_entrypoint_runs_our_stand_in():
    for image in ("ghcr.io/kubeflow/katib/xgboost-lightgbm:1.0", "ghcr.io/kubeflow/katib/xgboost-lightgbm",
                  "ghcr.io/kubeflow/katib/xgboost-lightgbm@sha256:" + "0" * 64):
        assert entrypoint_for(image) == ["python", "/app/main.py"], image
    assert entrypoint_for("localhost:5000/xgboost-lightgbm:1.0") is None and entrypoint_for(None) is None
    argv = stand_in(["python", "/app/main.py", "--job_type=Train"])
    assert argv == [sys.executable, "-u", "-m", STAND_INS["/app/main.py"], "--job_type=Train"]
