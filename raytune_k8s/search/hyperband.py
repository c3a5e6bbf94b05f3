"""Hyperband as Katib's *algorithm* (Li et al. 2018): brackets of successive halving, where every
trial gets the budget parameter (``resource_name``, e.g. epochs) set to its rung's budget.

Unlike the ``hyperband`` early-stopping rule (asynchronous Hyperband in ``stopping.py``, which
stops running trials at rungs of ``training_iteration``), this one starts new trials: a rung's
best configurations are run again with ``eta`` times the budget, so any trial that reads the
budget parameter works, even one that never reports intermediate results. It is synchronous, as
in Katib: a rung's survivors are picked once all its trials are done (``suggest`` says "not now"
meanwhile), so free slots wait at the end of each rung.

Schedule, with ``r_l`` the largest budget and ``s_max = floor(log_eta(r_l))``: for brackets
``s = s_max, ..., 0``, ``n = ceil((s_max + 1) eta^s / (s + 1))`` random configurations start with
budget ``r = r_l eta^-s``; rung ``i`` runs ``n_i = ceil(n eta^-i)`` of them with budget
``r eta^i`` and keeps the best ``ceil(n_i / eta)`` for rung ``i + 1``.

Settings (Katib's): ``resource_name`` (required; a numeric parameter of the experiment), ``r_l``
(required, >= 1), ``eta`` (default 3); ours: ``random_state``. With ``r_l < eta`` (``s_max = 0``)
there is one bracket of full-budget trials, random search; Katib's service makes it as many trials
as its first request asks for (``parallelTrialCount``), and so do we when told that count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from .space import SearchSpace
from ..spec import Objective, SpecError
from ..spec.settings import Settings
from . import Search
from .stateful import StatefulSearcher

_FIELD = "algorithm.algorithmSettings"


@dataclass(frozen=True)
class Rung:
    bracket: int  # s
    index: int  # i
    trials: int  # n_i
    budget: float  # r_i


def s_max_of(r_l: float, eta: int) -> int:
    return int(math.floor(math.log(r_l) / math.log(eta) + 1e-9))


def schedule(r_l: float, eta: int, single_bracket_trials: int | None = None) -> list[list[Rung]]:
    """Every bracket's rungs, most exploratory bracket first. ``single_bracket_trials``: the
    trials of the one bracket when ``s_max`` is 0 (Katib: its first request), instead of 1."""
    s_max = s_max_of(r_l, eta)
    brackets = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) * eta**s / (s + 1))
        if s_max == 0 and single_bracket_trials:
            n = single_bracket_trials
        r = r_l * eta ** (-s)
        brackets.append([Rung(s, i, math.ceil(n * eta ** (-i)), r * eta**i) for i in range(s + 1)])
    return brackets


class HyperbandSearcher(StatefulSearcher):
    """Hands out each rung's trials, waits for the rung, promotes its best ``1/eta``."""

    def __init__(self, space: SearchSpace, metric: str, mode: str, *, resource: str, r_l: float, eta: int = 3, seed: int | None = None,
                 single_bracket_trials: int | None = None):
        super().__init__(metric=metric, mode=mode)
        self._space = space
        self._resource = next(d for d in space if d.name == resource)
        self._eta = eta
        self._rungs = [rung for bracket in schedule(r_l, eta, single_bracket_trials) for rung in bracket]
        self._rng = np.random.default_rng(seed)
        self._rung = -1  # index into _rungs
        self._queue: list[dict[str, Any]] = []  # the current rung's configurations not handed out yet
        self._running: dict[str, dict[str, Any]] = {}
        self._results: list[tuple[float, dict[str, Any]]] = []  # the current rung's (score, config)
        self._next_rung([])

    @property
    def rungs(self) -> list[Rung]:
        return list(self._rungs)

    @property
    def total_trials(self) -> int:
        """Trials the whole schedule runs (Katib's maxTrialCount should be at least this)."""
        return sum(r.trials for r in self._rungs)

    def budget(self, rung: Rung) -> int | float:
        """The value the budget parameter gets in ``rung``."""
        whole = self._resource.kind == "int" or (self._resource.kind == "discrete" and all(isinstance(v, int) for v in self._resource.values))
        return int(round(rung.budget)) if whole else float(rung.budget)

    def _next_rung(self, survivors: list[dict[str, Any]]) -> None:
        self._rung += 1
        self._results = []
        if self._rung >= len(self._rungs):
            self._queue = []
            return
        rung = self._rungs[self._rung]
        configs = survivors if rung.index > 0 else [self._space.sample(self._rng) for _ in range(rung.trials)]
        self._queue = [{**c, self._resource.name: self.budget(rung)} for c in configs]

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # Ray's Searcher.suggest leaves out its own FINISHED (a str)
        if self._rung >= len(self._rungs):
            return Searcher.FINISHED
        if not self._queue:
            return None  # the rung is still running: its survivors are not known yet
        config = self._queue.pop(0)
        self._running[trial_id] = config
        return dict(config)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config = self._running.pop(trial_id, None)
        if config is None:
            return
        value = None if error or not result else result.get(self.metric)
        if value is not None and math.isfinite(float(value)):
            self._results.append((float(value) if self.mode == "max" else -float(value), config))
        if self._queue or self._running:
            return
        rung = self._rungs[self._rung]
        keep = math.ceil(rung.trials / self._eta)
        best = sorted(self._results, key=lambda item: item[0], reverse=True)[:keep]
        last_of_bracket = self._rung + 1 >= len(self._rungs) or self._rungs[self._rung + 1].index == 0
        self._next_rung([] if last_of_bracket else [c for _, c in best])

    _STATE = ("_rng", "_rung", "_queue", "_running", "_results")

    def get_state(self) -> dict:
        return {name: getattr(self, name) for name in self._STATE}

    def set_state(self, state: dict) -> None:
        for name in self._STATE:
            setattr(self, name, state[name])


def create(space: SearchSpace, objective: Objective, settings: Settings, *, parallel_trials: int | None = None) -> Search:
    """``parallel_trials``: the experiment's parallelTrialCount, Katib's first request, which is
    the one bracket's size when ``r_l < eta``."""
    for required in ("resource_name", "r_l"):
        if required not in settings:
            raise SpecError(_FIELD, f"hyperband needs the setting {required!r} (resource_name: the budget parameter; r_l: its largest value)")
    resource = settings.text("resource_name", "")
    r_l = settings.number("r_l", 0.0, low=1.0)
    eta = settings.integer("eta", 3, minimum=2)
    seed = settings.optional_integer("random_state")
    dimension = next((d for d in space if d.name == resource), None)
    # Katib's own example declares the budget parameter as a placeholder range with min == max.
    constant = dimension is not None and dimension.kind == "discrete" and len(dimension.values) == 1 \
        and isinstance(dimension.values[0], (int, float)) and not isinstance(dimension.values[0], bool)
    if dimension is None or (dimension.kind not in ("int", "double") and not constant):
        raise SpecError(_FIELD, f"resource_name {resource!r} must name an int or double parameter of the experiment")
    searcher = HyperbandSearcher(space, objective.metric, objective.mode, resource=resource, r_l=r_l, eta=eta, seed=seed,
                                 single_bracket_trials=parallel_trials)
    notes: tuple[str, ...] = ()
    if s_max_of(r_l, eta) == 0:  # Katib accepts it: s_max = 0
        (rung,) = searcher.rungs
        whom = " (parallelTrialCount, Katib's first request)" if parallel_trials else ""
        notes = (f"hyperband: r_l {r_l:g} < eta {eta}: Hyperband has one bracket of {rung.trials} trials{whom} "
                 f"at the full budget {resource} = {searcher.budget(rung):g}, i.e. random search",)
    return Search(searcher, notes=notes)
