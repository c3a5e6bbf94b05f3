"""MNIST as image tensors for the NAS networks, optionally subsampled and shrunk for CPUs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data import load_mnist


@dataclass(frozen=True)
class Images:
    train_x: torch.Tensor  # (n, 1, size, size) float32
    train_y: torch.Tensor  # (n,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        channels, height, width = self.train_x.shape[1:]
        return channels, height, width


def mnist_images(data_dir: str | None = None, image_size: int = 28, train_size: int | None = None, val_size: int | None = None) -> Images:
    """The project's offline MNIST split (``trials.data.load_mnist``) as images of ``image_size``
    pixels a side (area-averaged), the first ``train_size``/``val_size`` examples of each split."""
    if not 4 <= image_size <= 28:
        raise ValueError(f"image_size must be in [4, 28], got {image_size}")
    data = load_mnist(data_dir)

    def images(x, n: int | None) -> torch.Tensor:
        t = torch.from_numpy(x[:n]).reshape(-1, 1, 28, 28)
        return t if image_size == 28 else nn.functional.interpolate(t, size=(image_size, image_size), mode="area")

    return Images(
        images(data.train_x, train_size),
        torch.from_numpy(data.train_y[:train_size]),
        images(data.val_x, val_size),
        torch.from_numpy(data.val_y[:val_size]),
    )


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` in eval mode."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            correct += (model(x[start : start + batch_size]).argmax(1) == y[start : start + batch_size]).sum().item()
    return correct / max(1, len(y))
