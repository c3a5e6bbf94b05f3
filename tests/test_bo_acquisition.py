"""The fast acquisition maximiser: the same posterior as sklearn's predict, and a search that finds
the acquisition's optimum over continuous and categorical coordinates."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from bayes_opt import BayesianOptimization

from raytune_k8s.search.bo_acquisition import Posterior, UpperConfidenceBound, minimise


def _fitted(pbounds: dict, target, n: int = 30) -> BayesianOptimization:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer = BayesianOptimization(f=None, pbounds=pbounds, random_state=1, verbose=0, allow_duplicate_points=True)
        for x in optimizer.space.random_sample(n, random_state=2):
            optimizer.register(params=optimizer.space.array_to_params(x), target=float(target(x)))
        optimizer._gp.fit(optimizer.space.params, optimizer.space.target)
    return optimizer


@pytest.mark.parametrize("pbounds", [{"a": (0.0, 1.0), "b": (0.0, 1.0)}, {"a": (0.0, 1.0), "c": (0, 1, 2, 3)}], ids=["continuous", "mixed"])
def test_posterior_is_sklearns_predict(pbounds):
    optimizer = _fitted(pbounds, lambda x: np.sin(5 * x).sum())
    points = optimizer.space.random_sample(300, random_state=3)
    mean, std = optimizer._gp.predict(points, return_std=True)
    fast_mean, fast_std = Posterior(optimizer._gp)(points)
    np.testing.assert_allclose(fast_mean, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast_std, std, rtol=1e-8, atol=1e-10)


def test_minimise_finds_the_best_category_and_the_continuous_optimum():
    """A smooth target peaking at a=0.3 for category 2 only: from seeds in other categories the
    local search moves to category 2, and L-BFGS-B finds UCB's optimum there (compared with a fine
    grid of the acquisition)."""
    offsets = np.array([0.0, 0.2, 1.0, 0.1])

    def target(x):
        return offsets[np.argmax(x[1:])] - 4 * (x[0] - 0.3) ** 2

    optimizer = _fitted({"a": (0.0, 1.0), "c": (0, 1, 2, 3)}, target, n=40)
    ucb = UpperConfidenceBound(kappa=0.1)
    acq = ucb._get_acq(optimizer._gp)
    seeds = np.array([[0.9, 1, 0, 0, 0], [0.1, 0, 0, 0, 1]], dtype=float)
    x, value = minimise(acq, optimizer.space, seeds)
    grid = np.zeros((1001 * 4, 5))
    grid[:, 0] = np.tile(np.linspace(0, 1, 1001), 4)
    grid[np.arange(len(grid)), 1 + np.repeat(np.arange(4), 1001)] = 1
    best = grid[np.argmin(acq(grid))]
    assert np.argmax(x[1:]) == np.argmax(best[1:]) == 2
    assert x[0] == pytest.approx(best[0], abs=2e-3)
    assert value <= acq(best[None])[0] + 1e-9
