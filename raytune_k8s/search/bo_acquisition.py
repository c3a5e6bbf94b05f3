"""bayes_opt's acquisition functions, maximised the same way for a fraction of the CPU time.

bayes_opt maximises an acquisition over 10,000 random points and then runs L-BFGS-B from the
best few, with finite-difference gradients: one GP ``predict`` per coordinate per step, each
paying sklearn's input checks and the kernel's input transform. With a categorical parameter it
runs differential evolution instead (minutes per suggestion for EI and PI here). Late in a run
that costs about as long as a one-second trial. Here:

* the GP posterior comes straight from the fitted GP's Cholesky factor (what ``predict`` computes,
  without its checks), every candidate of a step in one call;
* a gradient's finite differences are one batched call, handed to the same L-BFGS-B;
* categorical coordinates are improved by local search (every categorical set to each of its
  other values, all neighbours in one call), alternating with L-BFGS-B over the continuous
  coordinates, from the same seeds bayes_opt would start from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from bayes_opt import acquisition
from scipy.linalg import solve_triangular
from scipy.optimize import minimize

Acquisition = Callable[[np.ndarray], np.ndarray]
#: forward-difference step in the unit cube (scipy's default for L-BFGS-B's own differences)
_STEP = float(np.sqrt(np.finfo(float).eps))
#: rounds of (continuous L-BFGS-B, categorical neighbours) per seed, at most
_ROUNDS = 20


class Posterior:
    """Mean and standard deviation of a fitted sklearn ``GaussianProcessRegressor`` (``predict``
    with ``return_std=True``), for many points at once."""

    def __init__(self, gp: Any):
        kernel = gp.kernel_
        transform = getattr(kernel, "_transform", None)  # bayes_opt's wrapped kernel one-hots categoricals
        self._transform: Callable[[np.ndarray], np.ndarray] = transform if transform is not None else (lambda x: x)
        # The wrapped kernel's base class is the GP's own kernel: call that one, on transformed points.
        self._kernel = super(type(kernel), kernel).__call__ if transform is not None else kernel.__call__  # type: ignore[misc]  # a class known at run time
        self._diag = kernel.diag
        self._train = self._transform(gp.X_train_)
        self._alpha = np.ravel(gp.alpha_)
        self._cholesky = gp.L_
        self._y_mean = float(np.ravel(gp._y_train_mean)[0]) if np.size(gp._y_train_mean) else 0.0
        self._y_std = float(np.ravel(gp._y_train_std)[0]) if np.size(gp._y_train_std) else 1.0

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xt = self._transform(np.atleast_2d(x))
        k = self._kernel(xt, self._train)
        mean = k @ self._alpha * self._y_std + self._y_mean
        v = solve_triangular(self._cholesky, k.T, lower=True, check_finite=False)
        var = self._diag(xt) - np.einsum("ij,ij->j", v, v)
        return mean, np.sqrt(np.maximum(var, 0.0)) * self._y_std


if TYPE_CHECKING:  # what the mixin is mixed into (its super() and base_acq)
    _Mixed = acquisition.AcquisitionFunction
else:
    _Mixed = object


class FastMaximiser(_Mixed):
    """Mixin for a bayes_opt ``AcquisitionFunction`` (before it in the bases)."""

    def _get_acq(self, gp: Any, constraint: Any = None) -> Acquisition:
        if constraint is not None:
            return super()._get_acq(gp, constraint)
        posterior = Posterior(gp)

        def acq(x: np.ndarray) -> np.ndarray:
            mean, std = posterior(x)
            return -self.base_acq(mean, std)

        return acq

    def _smart_minimize(self, acq: Acquisition, space: Any, x_seeds: np.ndarray, random_state: Any) -> tuple[np.ndarray, float]:
        return minimise(acq, space, np.atleast_2d(x_seeds))


class UpperConfidenceBound(FastMaximiser, acquisition.UpperConfidenceBound):
    pass


class ExpectedImprovement(FastMaximiser, acquisition.ExpectedImprovement):
    pass


class ProbabilityOfImprovement(FastMaximiser, acquisition.ProbabilityOfImprovement):
    pass


def minimise(acq: Acquisition, space: Any, seeds: np.ndarray) -> tuple[np.ndarray, float]:
    """The lowest ``acq`` found from each seed: L-BFGS-B over the continuous coordinates and
    one-category moves over the categorical ones, alternately, until neither improves."""
    continuous = np.flatnonzero(space.continuous_dimensions)
    groups = [np.flatnonzero(space.masks[key]) for key in space.keys if not space.masks[key][continuous].any()]
    groups = [g for g in groups if len(g) > 1]
    bounds = space.bounds
    best_x, best_f = np.full(bounds.shape[0], np.nan), np.inf
    for seed in seeds:
        x = np.clip(np.asarray(seed, dtype=float), bounds[:, 0], bounds[:, 1])
        f = float(acq(x)[0])
        for _ in range(_ROUNDS):
            before = f
            if len(continuous):
                x, f = _lbfgs(acq, x, f, continuous, bounds[continuous])
            if not groups:
                break
            x, f = _best_neighbour(acq, x, f, groups)
            if not f < before:
                break
        if f < best_f:
            best_x, best_f = x, f
    return np.clip(best_x, bounds[:, 0], bounds[:, 1]), best_f


def _lbfgs(acq: Acquisition, x: np.ndarray, f: float, coords: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
    """L-BFGS-B over ``coords`` of ``x``, the rest fixed; gradients by forward differences, one
    batched call per step."""
    n = len(coords)

    def value_and_gradient(z: np.ndarray) -> tuple[float, np.ndarray]:
        step = np.where(z + _STEP <= bounds[:, 1], _STEP, -_STEP)  # stay inside the box
        points = np.repeat(x[None, :], n + 1, axis=0)
        points[:, coords] = z
        points[np.arange(1, n + 1), coords] += step
        values = acq(points)
        return float(values[0]), (values[1:] - values[0]) / step

    result = minimize(value_and_gradient, x[coords], jac=True, bounds=bounds, method="L-BFGS-B")
    if np.isfinite(result.fun) and result.fun < f:
        x = x.copy()
        x[coords] = np.clip(result.x, bounds[:, 0], bounds[:, 1])
        f = float(result.fun)
    return x, f


def _best_neighbour(acq: Acquisition, x: np.ndarray, f: float, groups: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """``x`` or, if better, the best point that differs from it in one categorical's value."""
    neighbours = []
    for group in groups:
        current = group[np.argmax(x[group])]
        for column in group:
            if column != current:
                y = x.copy()
                y[group] = 0.0
                y[column] = 1.0
                neighbours.append(y)
    values = acq(np.asarray(neighbours))
    i = int(np.argmin(values))
    return (neighbours[i], float(values[i])) if values[i] < f else (x, f)
