"""The candidate operations as torch modules, built from :class:`~raytune_k8s.spec.nas.Operation`.

``build_operation(op, c_in, c_out, stride)`` maps ``c_in`` channels to ``c_out`` and divides the
spatial size by ``stride`` (padding keeps ``ceil(size / stride)``), whatever the type, so any
candidate can sit on any edge. Convolutions are ReLU -> conv -> BatchNorm, as in DARTS and ENAS.
Parameters an operation's type defines and Katib's examples use: ``filter_size`` (every type but
skip), ``stride`` and ``num_filter`` (the output channels; ENAS children), ``depth_multiplier``
(separable and depthwise), ``reduction_type``/``pool_size`` (``reduction``).
"""

from __future__ import annotations

import torch
from torch import nn

from ...spec.nas import Operation


def build_operation(op: Operation, c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
    """The module for ``op``; ``affine=False`` drops BatchNorm's learned scale (DARTS' supernet)."""
    k = int(op.get("filter_size", 3))
    if k < 1:
        raise ValueError(f"{op.name}: filter_size must be >= 1")
    if op.type == "skip_connection":
        return Identity() if stride == 1 and c_in == c_out else FactorizedReduce(c_in, c_out, stride, affine)
    if op.type == "convolution":
        return ConvBN(c_in, c_out, k, stride, affine=affine)
    if op.type in ("separable_convolution", "depthwise_convolution", "dilated_convolution"):
        multiplier = int(op.get("depth_multiplier", 1))
        dilation = 2 if op.type == "dilated_convolution" else 1
        return SeparableConv(c_in, c_out, k, stride, dilation, multiplier, affine)
    if op.type in ("avg_pooling", "max_pooling", "reduction"):
        kind = str(op.get("reduction_type", op.type))
        size = int(op.get("pool_size", k))
        return Pool(kind, size, c_in, c_out, stride, affine)
    raise ValueError(f"no torch module for operation type {op.type!r}")


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """DARTS' ``none``: no connection (zeros of the output shape)."""

    def __init__(self, c_out: int, stride: int):
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return x.new_zeros(n, self.c_out, -(-h // self.stride), -(-w // self.stride))


class ConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, dilation: int = 1, affine: bool = True):
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, k, stride, padding=dilation * (k - 1) // 2, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SeparableConv(nn.Sequential):
    """ReLU -> depthwise k x k (x ``multiplier`` channels) -> pointwise 1 x 1 -> BatchNorm."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, dilation: int, multiplier: int, affine: bool):
        mid = c_in * max(1, multiplier)
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, mid, k, stride, padding=dilation * (k - 1) // 2, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(mid, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class Pool(nn.Module):
    """Max or average pooling over a replicate-padded input (so the output is ``ceil(size /
    stride)`` for any window), then a 1 x 1 convolution if the channel count changes."""

    def __init__(self, kind: str, size: int, c_in: int, c_out: int, stride: int, affine: bool):
        super().__init__()
        if kind not in ("max_pooling", "avg_pooling"):
            raise ValueError(f"reduction_type must be max_pooling or avg_pooling, got {kind!r}")
        self.size, self.stride = size, stride
        self.pool = nn.MaxPool2d(size, stride) if kind == "max_pooling" else nn.AvgPool2d(size, stride)
        self.project = None if c_in == c_out else ConvBN(c_in, c_out, 1, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h = max(0, (-(-h // self.stride) - 1) * self.stride + self.size - h)
        pad_w = max(0, (-(-w // self.stride) - 1) * self.stride + self.size - w)
        x = nn.functional.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="replicate")
        out = self.pool(x)
        return out if self.project is None else self.project(out)


class FactorizedReduce(nn.Module):
    """Halve the spatial size without losing every other pixel: two 1 x 1 stride-2 convolutions,
    one shifted by a pixel, concatenated (DARTS' skip connection across a reduction)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2, affine: bool = True):
        super().__init__()
        self.stride = stride
        half = c_out // 2
        self.a = nn.Conv2d(c_in, half, 1, stride, bias=False)
        self.b = nn.Conv2d(c_in, c_out - half, 1, stride, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        a = self.a(x)
        shifted = nn.functional.pad(x[..., 1:, 1:], (0, 1, 0, 1)) if self.stride > 1 else x
        return self.bn(torch.cat([a, self.b(shifted)], dim=1))
