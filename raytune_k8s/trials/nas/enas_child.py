"""An ENAS child network: one candidate operation per layer, plus the sampled skip connections.

Layer ``i`` applies its operation to layer ``i-1``'s output (the stem's for the first layer)
and adds every earlier layer ``j`` whose skip bit is set, brought to its shape by a 1 x 1
convolution and average pooling. An operation's ``num_filter`` sets its output channels (else
its input's) and ``stride`` its downsampling (a ``reduction`` strides by its ``pool_size``, as
Keras' pooling layers in Katib's ENAS trial do). Global average pooling and a linear layer
classify.

``train(config)`` is the Ray Tune trainable for ENAS trials: config ``architecture`` and
``nn_config`` (Katib's trial parameters, JSON strings or Python values), ``num_epochs`` (1),
``lr`` (0.05, SGD with momentum 0.9), ``batch_size`` (64), ``init_channels`` (16),
``image_size``, ``train_size``, ``seed``, ``data-dir``. It reports ``Validation-accuracy`` (and
Katib's ENAS spelling ``Validation-Accuracy``) and ``Train-accuracy`` every epoch, with a
checkpoint it resumes from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence, cast

import torch
from torch import nn

from ._data import Images, accuracy, mnist_images
from ...spec.nas import Operation
from .darts import katib_value
from .ops import build_operation


def decode(config: Mapping[str, Any]) -> tuple[list[list[int]], list[Operation]]:
    """The architecture and its candidate operations from Katib's ``architecture``/``nn_config``."""
    architecture = katib_value(config["architecture"])
    embedding = katib_value(config["nn_config"])["embedding"]
    candidates = [Operation(type=e["opt_type"], params=e["opt_params"]) for _, e in sorted(embedding.items(), key=lambda kv: int(kv[0]))]
    for i, layer in enumerate(architecture):
        if len(layer) != i + 1 or not 0 <= layer[0] < len(candidates):
            raise ValueError(f"architecture layer {i} must be [operation id < {len(candidates)}, {i} skip bits], got {layer}")
    return architecture, candidates


class ChildNetwork(nn.Module):
    def __init__(self, architecture: Sequence[Sequence[int]], candidates: Sequence[Operation], input_shape: tuple[int, int, int],
                 num_classes: int = 10, init_channels: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], init_channels, 3, padding=1, bias=False), nn.BatchNorm2d(init_channels))
        shapes = [(init_channels, input_shape[1])]  # (channels, size) of the stem, then each layer
        self.layers = nn.ModuleList()
        self.skips = nn.ModuleList()
        self.skip_from: list[list[int]] = []
        for layer in architecture:
            op = candidates[layer[0]]
            c_in, size = shapes[-1]
            c_out = int(op.get("num_filter", c_in))
            stride = int(op.get("stride", op.get("pool_size", 2) if op.type == "reduction" else 1))
            self.layers.append(build_operation(op, c_in, c_out, stride))
            out_size = -(-size // stride)
            sources = [j for j, bit in enumerate(layer[1:]) if bit]
            self.skip_from.append(sources)
            self.skips.append(nn.ModuleList(_Resize(shapes[j + 1], (c_out, out_size)) for j in sources))
            shapes.append((c_out, out_size))
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(shapes[-1][0], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.stem(x)]
        for op, sources, resizes in zip(self.layers, self.skip_from, self.skips):
            out = op(outputs[-1])
            for j, resize in zip(sources, cast(nn.ModuleList, resizes)):  # torch types items as Module
                out = out + resize(outputs[j + 1])
            outputs.append(out)
        return self.head(outputs[-1])


class _Resize(nn.Module):
    """An earlier layer's output to ``(channels, size)``: 1 x 1 convolution, average pooling."""

    def __init__(self, source: tuple[int, int], target: tuple[int, int]):
        super().__init__()
        self.size = target[1]
        self.project = nn.Identity() if source[0] == target[0] else nn.Conv2d(source[0], target[0], 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        return x if x.shape[-1] == self.size else nn.functional.adaptive_avg_pool2d(x, self.size)


def fit(model: nn.Module, images: Images, epochs: int, lr: float, batch_size: int, seed: int, start_epoch: int = 0,
        optimizer: torch.optim.Optimizer | None = None, on_epoch=None) -> float:
    """Train with SGD (momentum 0.9); call ``on_epoch(epoch, metrics, optimizer)``; last validation accuracy."""
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=3e-4)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    val = 0.0
    for epoch in range(start_epoch, epochs):
        model.train()
        correct = 0
        for idx in torch.randperm(len(images.train_y), generator=generator).split(batch_size):
            out = model(images.train_x[idx])
            loss = loss_fn(out, images.train_y[idx])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            correct += (out.argmax(1) == images.train_y[idx]).sum().item()
        val = accuracy(model, images.val_x, images.val_y)
        if on_epoch is not None:
            metrics = {"epoch": epoch + 1, "Train-accuracy": correct / len(images.train_y), "Validation-accuracy": val, "Validation-Accuracy": val}
            on_epoch(epoch + 1, metrics, optimizer)
    return val


def build(config: Mapping[str, Any]) -> tuple[ChildNetwork, Images]:
    architecture, candidates = decode(config)
    images = mnist_images(config.get("data-dir"), int(config.get("image_size", 28)),
                          None if config.get("train_size") is None else int(config["train_size"]),
                          None if config.get("val_size") is None else int(config["val_size"]))
    torch.manual_seed(int(config.get("seed", 0)))
    return ChildNetwork(architecture, candidates, images.shape, 10, int(config.get("init_channels", 16))), images


def train(config: dict[str, Any]) -> None:
    """Ray Tune function trainable for one ENAS child (see the module docstring)."""
    from ..checkpoints import latest_checkpoint, report_with_checkpoint

    model, images = build(config)
    lr = float(config.get("lr", 0.05))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=3e-4)
    start = 0
    with latest_checkpoint() as (directory, state):
        if directory is not None:
            saved = torch.load(directory / "child.pt", weights_only=True)
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            start = state["epoch"]

    def report(epoch: int, metrics: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
        def save(path: Path) -> None:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path / "child.pt")

        report_with_checkpoint(metrics, {"epoch": epoch}, save)

    fit(model, images, int(config.get("num_epochs", 1)), lr, int(config.get("batch_size", 64)), int(config.get("seed", 0)) + start,
        start, optimizer, report)
