"""Connecting to Ray: an embedded local Ray by default, or a cluster by address."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Use the Ray already connected, else join ``address``/``$RAY_ADDRESS``, else start one.

    Only a Ray started here is shut down here.
    """
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address)
    else:  # "local": a Ray of its own, never one that `ray start` left running on this machine
        ray.init(address="local", include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()
