"""The one place that imports MXNet.

MXNet 1.9.1 (the last release) still uses ``numpy.bool``, an alias numpy removed; restore it
before the import.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np


def import_mxnet() -> ModuleType:
    if not hasattr(np, "bool"):
        np.bool = bool  # type: ignore[attr-defined]
    import mxnet

    return mxnet
