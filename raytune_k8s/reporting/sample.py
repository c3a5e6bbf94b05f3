"""Which trials a plot shows when it cannot show them all, and the note that says so."""

from __future__ import annotations

import random
from typing import Sequence

from .experiment_dir import TrialRecord


def sample_trials(trials: Sequence[TrialRecord], limit: int, mode: str, what: str = "trials") -> tuple[list[TrialRecord], str | None]:
    """All ``trials`` if there are at most ``limit``; else the best fifth of ``limit`` by
    objective plus an evenly random draw (seed 0) of the rest, in their original order, and a
    note for the plot's title."""
    if len(trials) <= limit:
        return list(trials), None
    scored = sorted((t for t in trials if t.objective is not None), key=lambda t: t.objective or 0.0, reverse=mode == "max")
    best = scored[: limit // 5]
    chosen = {id(t) for t in best}
    rest = [t for t in trials if id(t) not in chosen]
    chosen.update(id(t) for t in random.Random(0).sample(rest, limit - len(best)))
    kept = [t for t in trials if id(t) in chosen]
    note = f"sampled: {len(kept):,} of {len(trials):,} {what} (the best {len(best):,} and {len(kept) - len(best):,} drawn at random)"
    return kept, note
