"""A Searcher base whose whole state is a picklable dict (save/restore come for free)."""

from __future__ import annotations

import os
import pickle
import tempfile
from typing import Callable

from ray.tune.search import Searcher


def bytes_via_file(save: Callable[[str], None]) -> bytes:
    """What ``save(path)`` writes, for libraries that only save state to a file."""
    fd, path = tempfile.mkstemp(prefix="searcher-state-")
    os.close(fd)
    try:
        save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def load_via_file(data: bytes, load: Callable[[str], None]) -> None:
    """Hand ``data`` to ``load(path)``, for libraries that only load state from a file."""
    fd, path = tempfile.mkstemp(prefix="searcher-state-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        load(path)
    finally:
        os.unlink(path)


class StatefulSearcher(Searcher):
    """Subclasses implement ``get_state``/``set_state``; Tune's save/restore then just work."""

    def get_state(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_state(self, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, checkpoint_path: str) -> None:
        from ..files import write_atomic

        write_atomic(checkpoint_path, pickle.dumps(self.get_state()))  # whole or not at all: a resume reads it

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
