"""CMA-ES (Hansen's covariance matrix adaptation) on the ``cmaes`` library, with IPOP/BIPOP restarts.

Katib serves ``cmaes`` from Optuna's ``CmaEsSampler``, which wraps this same library; Optuna 4.4
dropped the sampler's ``restart_strategy`` (5.0 ignores it), so the adapter is ours: every
parameter is a coordinate in [0, 1] (log-warped, snapped onto steps and ints; a choice takes the
coordinate's quantile), searched by ``cmaes.CMA``.

Asynchronous trials: suggestions are drawn from the current generation's distribution as slots
free up; once ``popsize`` results of that generation are in, CMA-ES is told them and moves on
(results of an earlier generation, still running when it ended, are dropped, as Optuna does).
When the run has converged (``should_stop``) it restarts from a random mean: IPOP doubles the
population each time (Auger & Hansen 2005); BIPOP alternates that with small populations and
step sizes, giving each regime about the same number of evaluations (Hansen 2009).

Settings (Katib's): ``sigma`` (initial step size, in the unit cube; default 1/6, Optuna's
``min range / 6``), ``restart_strategy`` none|ipop|bipop, ``random_state``; ours:
``population_size`` (default 4 + 3 ln d).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from cmaes import CMA

from .space import SearchSpace
from ..spec import Objective
from ..spec.settings import Settings
from .stateful import StatefulSearcher


class CmaEsSearcher(StatefulSearcher):
    """CMA-ES over the unit cube of the search space (minimises; negates for ``max``)."""

    def __init__(
        self,
        space: SearchSpace,
        metric: str,
        mode: str,
        *,
        sigma: float = 1 / 6,
        restart_strategy: str = "none",
        population_size: int | None = None,
        seed: int | None = None,
    ):
        super().__init__(metric=metric, mode=mode)
        self._space = space
        self._sigma0 = sigma
        self._restart = restart_strategy
        self._rng = np.random.default_rng(seed)
        self._default_popsize = population_size or 4 + math.floor(3 * math.log(max(len(space), 1)))
        self._large_popsize = self._default_popsize  # IPOP/BIPOP: the growing population
        self._evals = {"large": 0, "small": 0}  # BIPOP: evaluations spent by each regime
        self._regime = "large"
        self.restarts = 0
        self._cma = self._new_cma(np.full(len(space), 0.5), sigma, self._default_popsize)
        self._pending: dict[str, tuple[tuple[int, int], np.ndarray]] = {}  # trial -> (run, generation), point
        self._run = 0  # restarts so far: told results of an older run are stale
        self._told: list[tuple[np.ndarray, float]] = []

    def _new_cma(self, mean: np.ndarray, sigma: float, popsize: int) -> CMA:
        bounds = np.tile([0.0, 1.0], (len(self._space), 1))
        return CMA(mean=mean, sigma=sigma, bounds=bounds, population_size=popsize, seed=int(self._rng.integers(2**31)))

    @property
    def population_size(self) -> int:
        return self._cma.population_size

    def suggest(self, trial_id: str) -> dict[str, Any]:
        x = self._cma.ask()
        self._pending[trial_id] = ((self._run, self._cma.generation), x)
        return {d.name: d.from_unit(float(u)) for d, u in zip(self._space, x)}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        entry = self._pending.pop(trial_id, None)
        if entry is None or error or not result or self.metric not in result:
            return
        value = float(result[self.metric])
        if not math.isfinite(value) or entry[0] != (self._run, self._cma.generation):
            return
        self._told.append((entry[1], -value if self.mode == "max" else value))
        if len(self._told) >= self._cma.population_size:
            batch, self._told = self._told[: self._cma.population_size], self._told[self._cma.population_size :]
            self._cma.tell(batch)
            self._evals[self._regime] += len(batch)
            if self._restart != "none" and self._cma.should_stop():
                self._restart_run()

    def _restart_run(self) -> None:
        """A new run from a random mean: IPOP doubles the population; BIPOP picks the regime
        that has spent fewer evaluations, the small one with a random smaller population and step."""
        self.restarts += 1
        self._run += 1
        self._told = []
        mean = self._rng.random(len(self._space))
        if self._restart == "bipop" and self.restarts > 1 and self._evals["small"] < self._evals["large"]:
            self._regime = "small"
            u = self._rng.random()
            popsize = math.floor(self._default_popsize * (0.5 * self._large_popsize / self._default_popsize) ** (u**2))
            self._cma = self._new_cma(mean, self._sigma0 * 10 ** (-2 * self._rng.random()), max(popsize, 2))
            return
        self._regime = "large"
        self._large_popsize *= 2
        self._cma = self._new_cma(mean, self._sigma0, self._large_popsize)

    @property
    def observations(self) -> int:
        return sum(self._evals.values()) + len(self._told)

    _STATE = ("_rng", "_large_popsize", "_evals", "_regime", "restarts", "_cma", "_pending", "_run", "_told")

    def get_state(self) -> dict:
        # A pickled CMA comes back with a fresh, unseeded generator: keep its state ourselves.
        return {**{name: getattr(self, name) for name in self._STATE}, "cma_rng": self._cma._rng.get_state()}

    def set_state(self, state: dict) -> None:
        for name in self._STATE:
            setattr(self, name, state[name])
        self._cma._rng.set_state(state["cma_rng"])


def create(space: SearchSpace, objective: Objective, settings: Settings) -> CmaEsSearcher:
    return CmaEsSearcher(
        space,
        objective.metric,
        objective.mode,
        sigma=settings.number("sigma", 1 / 6, low=1e-6),
        restart_strategy=settings.choice("restart_strategy", "none", ["none", "ipop", "bipop"]),
        population_size=settings.integer("population_size", 0, minimum=2) or None,
        seed=settings.optional_integer("random_state"),
    )
