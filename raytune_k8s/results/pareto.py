"""The Pareto front of an experiment with several objectives (or constraints), and its
hypervolume.

A trial is on the front when it is feasible (every constraint met), has every objective's value,
and no other such trial is at least as good on every objective and better on one. Optuna decides
it: the trials go into an in-memory study with the experiment's directions, and its
``best_trials`` is the front (feasible trials only, by the constraints each carries). The
hypervolume (the region the front dominates, up to a reference point) is Optuna's exact one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spec.objectives import Targets


@dataclass(frozen=True)
class Scored:
    """One trial as the front sees it: its objective values (None if one is missing) and
    whether it met every constraint."""

    key: str
    values: list[float] | None
    feasible: bool


def scored(key: str, metrics: Mapping[str, Any], targets: Targets) -> Scored:
    values = targets.values(metrics)
    return Scored(key, values, values is not None and targets.feasible(metrics))


def front(trials: Iterable[Scored], targets: Targets) -> list[str]:
    """The keys of the trials on the Pareto front, in the order given."""
    import optuna

    candidates = [t for t in trials if t.values is not None and t.feasible]
    if not candidates:
        return []
    study = optuna.create_study(directions=targets.directions)
    study.add_trials([optuna.trial.create_trial(values=t.values, user_attrs={"key": t.key}) for t in candidates])
    on_front = {t.user_attrs["key"] for t in study.best_trials}
    return [t.key for t in candidates if t.key in on_front]


def as_losses(points: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """Points with every objective turned into one to minimize (maximized ones negated)."""
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return np.asarray(points, dtype=float).reshape(-1, len(directions)) * signs


def reference_point(points: Sequence[Sequence[float]], directions: Sequence[str], margin: float = 0.1) -> list[float]:
    """The worst value of each objective over ``points`` plus ``margin`` of its range (in the
    objective's own direction): every point then adds to the hypervolume."""
    losses = as_losses(points, directions)
    worst, best = losses.max(axis=0), losses.min(axis=0)
    span = np.where(worst > best, worst - best, np.maximum(np.abs(worst), 1.0))
    ref = worst + margin * span
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return [float(x) for x in ref * signs]


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float], directions: Sequence[str]) -> float:
    """The volume dominated by ``points`` and bounded by ``reference`` (points beyond it add nothing)."""
    from optuna._hypervolume import compute_hypervolume  # Optuna's exact WFG; exported by the package, not the top

    if len(points) == 0:
        return 0.0
    losses = as_losses(points, directions)
    ref = as_losses([reference], directions)[0]
    inside = losses[np.all(losses < ref, axis=1)]
    if len(inside) == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(compute_hypervolume(inside, ref))
    return value if math.isfinite(value) else 0.0
