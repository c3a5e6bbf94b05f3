"""Real MNIST trials: the Katib paper's MXNet experiment, the PyTorch trial, and the data loaders."""

from __future__ import annotations

import numpy as np
import yaml

import raytune_k8s
from raytune_k8s.trials.data import load_mnist, read_idx, write_idx

from .helpers import REPO


def test_paper_example_trains_real_mnist(ray_connected, tmp_path):
    """The Katib paper's experiment (examples/mnist-mxnet-random.yaml), at a third of its size:
    4 trials of 4 epochs (the README's main command runs all 12 trials of 10 epochs)."""
    spec = yaml.safe_load((REPO / "examples" / "mnist-mxnet-random.yaml").read_text())
    spec["maxTrialCount"] = 4
    spec["trial"]["fixedParameters"]["num-epochs"] = 4
    summary = raytune_k8s.run(spec, storage_path=tmp_path, report=False)
    best = summary["best"]["metrics"]["Validation-accuracy"]
    print(f"paper example: {summary['trials']} trials in {summary['wall_s']:.1f} s, best Validation-accuracy {best:.3f}")
    assert summary["status"] == "Succeeded" and summary["trials"] == 4 and summary["failed"] == 0
    assert best >= 0.8  # 10 epochs of the same trials reach 0.93; chance is 0.1
    assert {"lr", "num-layers", "optimizer"} == set(summary["best"]["params"])
    assert all(r["iterations"] == 4 for r in summary["trial_table"])  # reported each epoch


def test_torch_trial_on_idx_files(ray_connected, tmp_path):
    """The PyTorch trial learns MNIST read from standard IDX files in a directory."""
    data = load_mnist()
    idx_dir = tmp_path / "mnist"
    idx_dir.mkdir()
    to_bytes = lambda x: np.round(x * 255).astype(np.uint8).reshape(len(x), 28, 28)  # noqa: E731
    write_idx(idx_dir / "train-images-idx3-ubyte.gz", to_bytes(data.train_x))
    write_idx(idx_dir / "train-labels-idx1-ubyte.gz", data.train_y.astype(np.uint8))
    write_idx(idx_dir / "t10k-images-idx3-ubyte", to_bytes(data.val_x))
    write_idx(idx_dir / "t10k-labels-idx1-ubyte", data.val_y.astype(np.uint8))
    from_idx = load_mnist(idx_dir)
    assert from_idx.train_x.shape == (4000, 784) and from_idx.val_x.shape == (1000, 784)
    np.testing.assert_array_equal(from_idx.val_y, data.val_y)
    np.testing.assert_allclose(from_idx.train_x, data.train_x, atol=1 / 255)
    assert read_idx(idx_dir / "t10k-images-idx3-ubyte").shape == (1000, 28, 28)

    spec = yaml.safe_load((REPO / "examples" / "mnist-torch-asha.yaml").read_text())
    spec.update(maxTrialCount=3, earlyStopping=None)
    spec["parameters"][0]["feasibleSpace"] = {"min": "0.001", "max": "0.003", "distribution": "logUniform"}
    spec["parameters"][2]["feasibleSpace"] = {"list": ["adam"]}
    spec["trial"]["fixedParameters"] = {"num-epochs": 3, "batch-size": 64, "data-dir": str(idx_dir)}
    summary = raytune_k8s.run({k: v for k, v in spec.items() if v is not None}, storage_path=tmp_path, report=False)
    assert summary["status"] == "Succeeded" and summary["trials"] == 3
    assert summary["best"]["metrics"]["Validation-accuracy"] >= 0.85
    assert all(r["iterations"] == 3 for r in summary["trial_table"])
