"""A Searcher base whose whole state is a picklable dict (save/restore come for free)."""

from __future__ import annotations

import pickle

from ray.tune.search import Searcher


class StatefulSearcher(Searcher):
    """Subclasses implement ``get_state``/``set_state``; Tune's save/restore then just work."""

    def get_state(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_state(self, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
