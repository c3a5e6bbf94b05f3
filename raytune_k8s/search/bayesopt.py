"""Gaussian-process Bayesian optimisation on bayes_opt's public suggest/register API.

Ray 2.60's ``BayesOptSearch`` breaks on bayes_opt >= 2 (ray issue 49845), so this adapter talks
to ``bayes_opt.BayesianOptimization`` directly. Every numeric parameter is searched as a
coordinate in [0, 1] (log-warped where the distribution is log, rounded onto steps and ints; a
``discrete`` list, ordered numbers, takes the coordinate's quantile); a ``categorical`` one is
bayes_opt 3's typed categorical parameter, one-hot in the GP, so no order between categories is
invented. Trials still running are pending points: by default the GP
believes its own prediction there (Kriging believer; for UCB this is GP-BUCB, Desautels et al.
2014), or a constant lie as in ``bayes_opt.acquisition.ConstantLiar``.
"""

from __future__ import annotations

import copy
import json
import warnings
from typing import Any, Literal, cast

import numpy as np
import sklearn
import sklearn.base
from bayes_opt import BayesianOptimization, acquisition
from threadpoolctl import threadpool_limits

from .space import SearchSpace
from ..spec import Objective
from ..spec.settings import Settings
from . import bo_acquisition as fast
from .stateful import StatefulSearcher, bytes_via_file, load_via_file


#: pending_strategy -> bayes_opt's constant liar strategy (the believer's lie is never used)
_LIES: dict[str, Literal["min", "mean", "max"]] = {"believer": "max", "max": "max", "mean": "mean", "min": "min"}


class _PendingAware(acquisition.ConstantLiar):
    """An acquisition that accounts for pending points (``dummies``), with a set budget for its
    own optimisation: ``n_random`` random points, then ``n_smart`` L-BFGS-B restarts (bayes_opt:
    10000 and 10).

    ``strategy`` "believer" (Kriging believer; GP-BUCB for UCB) registers each pending point at
    the GP's own prediction there, with the kernel fitted on real results only: pending points
    lower the uncertainty around them without bending the mean or the length scales.
    "max"/"mean"/"min" are bayes_opt's constant liar (a lie of the best/mean/worst result so far).
    """

    # bayes_opt only puts the point it suggested into ``dummies``; ours holds exactly the pending
    # points, as arrays in the target space's encoding (one-hot for categoricals).

    def __init__(self, base: acquisition.AcquisitionFunction, n_random: int, n_smart: int, strategy: str):
        super().__init__(base, strategy=_LIES[strategy])
        self.believer = strategy == "believer"
        self.n_random, self.n_smart = n_random, n_smart

    def _copy_target_space(self, target_space: Any) -> Any:
        # bayes_opt's copy rebuilds the space from its array bounds, which turns a categorical
        # parameter's one-hot columns into floats (and breaks the acquisition search).
        return copy.deepcopy(target_space)

    def suggest(self, gp: Any, target_space: Any, n_random: int = 0, n_smart: int = 0, fit_gp: bool = True, random_state: Any = None) -> Any:
        if not (self.believer and self.dummies):
            self._fitted_on = None  # the GP is fitted with the lies (or is fitted by the base)
            return super().suggest(gp, target_space, n_random=self.n_random, n_smart=self.n_smart, fit_gp=fit_gp, random_state=random_state)
        if getattr(self, "_fitted_on", None) != len(target_space):  # else: no new result since, the fit stands
            self._fit_gp(gp=gp, target_space=target_space)
            self._fitted_on = len(target_space)
        believed = gp.predict(np.asarray(self.dummies))
        with_pending = self._copy_target_space(target_space)
        for point, value in zip(self.dummies, believed):
            with_pending.register(point, float(value))
        conditioned = sklearn.base.clone(gp).set_params(kernel=gp.kernel_, optimizer=None)
        self._fit_gp(gp=conditioned, target_space=with_pending)
        point = self.base_acquisition.suggest(
            conditioned, with_pending, n_random=self.n_random, n_smart=self.n_smart, fit_gp=False, random_state=random_state
        )
        self.dummies.append(point)
        return point


class BayesOptSearcher(StatefulSearcher):
    """GP-BO over the unit cube of the search space; maximises (negates for ``min``)."""

    def __init__(
        self,
        space: SearchSpace,
        metric: str,
        mode: str,
        *,
        seed: int | None = None,
        init_points: int = 5,
        acq: str = "ucb",
        kappa: float = 2.576,
        xi: float = 0.01,
        acq_random_points: int = 10_000,
        acq_restarts: int = 10,
        pending: str = "believer",
    ):
        super().__init__(metric=metric, mode=mode)
        self._space = space
        #: categorical dimensions are bayes_opt categorical parameters over their value indices
        self._categorical = {d.name for d in space if d.kind == "categorical"}
        self._init_points = init_points
        self._acq_args = (acq, kappa, xi, seed)
        self._acq_budget = (acq_random_points, acq_restarts)
        self._pending_strategy = pending
        self._optimizer = self._new_optimizer()
        self._pending: dict[str, dict[str, float]] = {}
        self._suggested = 0

    def _new_optimizer(self) -> BayesianOptimization:
        acq, kappa, xi, seed = self._acq_args
        kinds = {
            "ucb": lambda: fast.UpperConfidenceBound(kappa=kappa),
            "ei": lambda: fast.ExpectedImprovement(xi=xi),
            "poi": lambda: fast.ProbabilityOfImprovement(xi=xi),
        }
        base: acquisition.AcquisitionFunction
        if acq == "gp_hedge":  # Hoffman et al. 2011: a bandit over UCB, PI and EI
            base = acquisition.GPHedge([kinds[k]() for k in ("ucb", "poi", "ei")], random_state=seed)
        else:
            base = kinds[acq]()
        pbounds: dict[str, Any] = {
            d.name: tuple(range(len(d.values))) if d.name in self._categorical else (0.0, 1.0) for d in self._space
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "non-float parameters are experimental"
            return BayesianOptimization(
                f=None,
                pbounds=pbounds,
                acquisition_function=_PendingAware(base, *self._acq_budget, strategy=self._pending_strategy),
                random_state=seed,
                verbose=0,
                allow_duplicate_points=True,
            )

    # ---- Searcher API

    def suggest(self, trial_id: str) -> dict[str, Any]:
        if self._suggested < self._init_points or len(self._optimizer.space) == 0:
            suggested = self._optimizer.random_sample(1)[0]
        else:
            # The dummies are exactly the points still pending: bayes_opt's own list would keep
            # the point of a trial that failed (or reported nothing) for ever.
            space = self._optimizer.space
            acquisition_function = cast(_PendingAware, self._optimizer.acquisition_function)  # _new_optimizer's
            acquisition_function.dummies = [space.params_to_array(u) for u in self._pending.values()]
            # One BLAS thread: the GP's matrices are small, and more threads only contend
            # (measured about 2x faster per suggestion on 2 cores). The acquisition search calls
            # the GP's predict about 1,500 times on points it made itself: skip sklearn's input
            # checks (about 10% of a suggestion).
            with warnings.catch_warnings(), threadpool_limits(limits=1), sklearn.config_context(
                assume_finite=True, skip_parameter_validation=True
            ):
                warnings.simplefilter("ignore")  # sklearn convergence chatter
                suggested = self._optimizer.suggest()
        unit: dict[str, float] = {k: int(v) if k in self._categorical else float(v) for k, v in suggested.items()}
        self._pending[trial_id] = unit
        self._suggested += 1
        return {d.name: d.values[int(unit[d.name])] if d.name in self._categorical else d.from_unit(unit[d.name]) for d in self._space}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        unit = self._pending.pop(trial_id, None)
        if unit is None or error or not result or self.metric not in result:
            return
        value = float(result[self.metric])
        if not np.isfinite(value):
            return
        self._optimizer.register(params=unit, target=value if self.mode == "max" else -value)

    @property
    def observations(self) -> int:
        """How many results the GP has been given."""
        return len(self._optimizer.space)

    # ---- state

    def get_state(self) -> dict:
        optimizer = json.loads(bytes_via_file(self._optimizer.save_state))
        return {"optimizer": optimizer, "pending": dict(self._pending), "suggested": self._suggested}

    def set_state(self, state: dict) -> None:
        self._optimizer = self._new_optimizer()
        if state["optimizer"]["params"]:
            load_via_file(json.dumps(state["optimizer"]).encode(), self._optimizer.load_state)
        self._pending = dict(state["pending"])
        self._suggested = state["suggested"]


#: Katib's ``acq_func`` names (scikit-optimize's) and ours -> bayes_opt acquisition.
ACQUISITIONS = {"gp_hedge": "gp_hedge", "LCB": "ucb", "EI": "ei", "PI": "poi", "ucb": "ucb", "ei": "ei", "poi": "poi"}


def create(space: SearchSpace, objective: Objective, settings: Settings) -> BayesOptSearcher:
    """Katib's settings (scikit-optimize's names and defaults) mapped onto bayes_opt.

    ``base_estimator`` must be GP (bayes_opt has no forest/boosting surrogates); ``acq_func``
    gp_hedge|LCB|EI|PI (or ucb|ei|poi; default ucb, not Katib's gp_hedge: every benchmark here
    was measured with UCB, gp_hedge is not yet); ``acq_optimizer`` auto|lbfgs (random points then L-BFGS-B
    restarts) or sampling (random points only); ``n_initial_points`` (default 10);
    ``random_state``. Ours: ``kappa``, ``xi``, ``acq_random_points``, ``acq_restarts``,
    ``pending_strategy``.
    """
    settings.choice("base_estimator", "GP", ["GP"])
    sampling_only = settings.choice("acq_optimizer", "auto", ["auto", "lbfgs", "sampling"]) == "sampling"
    restarts = settings.integer("acq_restarts", 10, minimum=0)
    return BayesOptSearcher(
        space,
        objective.metric,
        objective.mode,
        seed=settings.optional_integer("random_state"),
        init_points=settings.integer("n_initial_points", 10, minimum=1),
        acq=ACQUISITIONS[settings.choice("acq_func", "ucb", list(ACQUISITIONS))],
        kappa=settings.number("kappa", 2.576, low=0.0),
        xi=settings.number("xi", 0.01, low=0.0),
        acq_random_points=settings.integer("acq_random_points", 10_000, minimum=1),
        acq_restarts=0 if sampling_only else restarts,
        pending=settings.choice("pending_strategy", "believer", ["believer", "max", "mean", "min"]),
    )
