"""MNIST in PyTorch: an MLP (``model: mlp``) or a small CNN (``model: cnn``).

Same parameters and metrics as the MXNet trial: ``lr``, ``num-layers``, ``num-hidden``,
``optimizer`` (sgd|adam|adagrad|rmsprop), ``batch-size``, ``num-epochs``, ``seed``,
``data-dir``; reports ``Train-accuracy`` and ``Validation-accuracy`` every epoch, with the
network's size (``parameters``, its weights) and speed (``inference-ms``: milliseconds to
classify 1,000 validation images, the best of 3 timings) for cost-aware tuning, and a
checkpoint, and resumes from the last one - also one PBT copied from another trial, with this
trial's (perturbed) ``lr``, ``optimizer`` and ``batch-size``; the network's shape (``model``,
``num-layers``, ``num-hidden``) must match the checkpoint's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from .checkpoints import check_same_shape, latest_checkpoint, report_with_checkpoint
from .data import load_mnist

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}


def build_model(kind: str, num_layers: int, num_hidden: int) -> nn.Module:
    if kind == "cnn":
        convs: list[nn.Module] = [nn.Unflatten(1, (1, 28, 28))]
        channels = 1
        for i in range(max(1, min(num_layers, 3))):
            convs += [nn.Conv2d(channels, 16 * 2**i, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels = 16 * 2**i
        side = 28 // 2 ** max(1, min(num_layers, 3))
        return nn.Sequential(*convs, nn.Flatten(), nn.Linear(channels * side * side, 10))
    if kind != "mlp":
        raise ValueError(f"model must be 'mlp' or 'cnn', got {kind!r}")
    layers: list[nn.Module] = []
    width = 784
    for _ in range(num_layers):
        layers += [nn.Linear(width, num_hidden), nn.ReLU()]
        width = num_hidden
    return nn.Sequential(*layers, nn.Linear(width, 10))


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def _inference_ms(model: nn.Module, x: torch.Tensor) -> float:
    """Milliseconds to classify 1,000 images of ``x`` (the best of 3 timings: the least disturbed)."""
    model.eval()
    batch = x[:1000]
    timings = []
    with torch.no_grad():
        for _ in range(3):
            start = time.perf_counter()
            model(batch)
            timings.append(time.perf_counter() - start)
    return min(timings) * 1000.0 * 1000 / len(batch)


def setup(config: dict[str, Any]) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The network and optimizer a trial of ``config`` trains (seeded by ``seed``)."""
    optimizer_name = str(config.get("optimizer", "sgd"))
    if optimizer_name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer_name!r}")
    torch.manual_seed(int(config.get("seed", 0)))
    model = build_model(str(config.get("model", "mlp")), int(config.get("num-layers", 2)), int(config.get("num-hidden", 128)))
    return model, OPTIMIZERS[optimizer_name](model.parameters(), lr=float(config.get("lr", 0.01)))


def run_epochs(config: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, first_epoch: int = 0) -> Iterator[dict[str, Any]]:
    """Train epochs ``first_epoch + 1 .. num-epochs``; yield each epoch's metrics."""
    data = load_mnist(config.get("data-dir"))
    batch_size = int(config.get("batch-size", 64))
    loss_fn = nn.CrossEntropyLoss()
    train_x, train_y = torch.from_numpy(data.train_x), torch.from_numpy(data.train_y)
    val_x, val_y = torch.from_numpy(data.val_x), torch.from_numpy(data.val_y)
    generator = torch.Generator().manual_seed(int(config.get("seed", 0)))
    for epoch in range(first_epoch, int(config.get("num-epochs", 10))):
        model.train()
        correct = 0
        for idx in torch.randperm(len(train_y), generator=generator).split(batch_size):
            out = model(train_x[idx])
            loss = loss_fn(out, train_y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += (out.argmax(1) == train_y[idx]).sum().item()
        yield {"epoch": epoch + 1, "Train-accuracy": correct / len(train_y), "Validation-accuracy": _accuracy(model, val_x, val_y),
               "parameters": sum(p.numel() for p in model.parameters()), "inference-ms": _inference_ms(model, val_x)}


def train(config: dict[str, Any]) -> None:
    model, optimizer = setup(config)
    optimizer_name = str(config.get("optimizer", "sgd"))
    shape = {k: config.get(k) for k in ("model", "num-layers", "num-hidden")}
    first_epoch = 0
    with latest_checkpoint() as (directory, state):
        if directory is not None:
            check_same_shape(state.get("shape", shape), shape)
            saved = torch.load(directory / "model.pt", weights_only=True)
            model.load_state_dict(saved["model"])
            if state.get("optimizer", optimizer_name) == optimizer_name:  # PBT may have switched it
                optimizer.load_state_dict(saved["optimizer"])
                for group in optimizer.param_groups:  # the optimizer state holds the old lr
                    group["lr"] = float(config.get("lr", 0.01))
            first_epoch = state["epoch"]

    def save(path: Path) -> None:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path / "model.pt")

    for metrics in run_epochs(config, model, optimizer, first_epoch):
        report_with_checkpoint(metrics, {"epoch": metrics["epoch"], "optimizer": optimizer_name, "shape": shape}, save)
