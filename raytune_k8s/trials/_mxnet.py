"""The one place that imports MXNet.

MXNet 1.9.1 (the last release) still uses ``numpy.bool``, an alias numpy removed; restore it
before the import.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np


def import_mxnet() -> ModuleType:
    if not hasattr(np, "bool"):
        setattr(np, "bool", bool)  # numpy 1.24 removed the alias that mxnet 1.9 still uses
    import mxnet

    return mxnet
