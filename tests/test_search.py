"""Searchers on the real libraries, without Ray: they learn, they walk grids, they save state."""

from __future__ import annotations

import statistics

import numpy.testing

import pytest

from raytune_k8s.search import create_searcher
from raytune_k8s.search.space import SearchSpace
from raytune_k8s.spec import parse_spec
from raytune_k8s.trials.synthetic import branin_value


def _branin_spec(algorithm: str, seed: int, extra: list | None = None):
    return parse_spec(
        {
            "name": "branin",
            "objective": {"type": "minimize", "objectiveMetricName": "value"},
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": [{"name": "random_state", "value": seed}, *(extra or [])]},
            "parameters": [
                {"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10}},
                {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15}},
            ],
            "maxTrialCount": 40,
            "trial": {"trainable": "branin"},
        }
    )


def _searcher(spec):
    return create_searcher(spec.algorithm, SearchSpace.from_spec(spec), spec.objective)


def _run_sequential(searcher, n: int) -> list[float]:
    values = []
    for i in range(n):
        config = searcher.suggest(str(i))
        value = branin_value(config["x"], config["y"])
        searcher.on_trial_complete(str(i), {"value": value})
        values.append(value)
    return values


@pytest.mark.parametrize("algorithm", ["tpe", "multivariate-tpe", "bayesianoptimization"])
def test_model_based_searchers_beat_random_on_branin(algorithm):
    """Later suggestions (evaluations 21-40) are better than random's, on the same seeds."""
    seeds = range(3)
    ours = [statistics.mean(_run_sequential(_searcher(_branin_spec(algorithm, s)), 40)[20:]) for s in seeds]
    rand = [statistics.mean(_run_sequential(_searcher(_branin_spec("random", s)), 40)[20:]) for s in seeds]
    print(f"{algorithm}: mean Branin value of evaluations 21-40 per seed {ours} vs random {rand}")
    assert statistics.median(ours) < 0.75 * statistics.median(rand)
    assert all(o < r for o, r in zip(ours, rand))


def test_grid_walks_every_point_once_then_finishes():
    spec = parse_spec(
        {
            "name": "g",
            "objective": {"type": "maximize", "objectiveMetricName": "v"},
            "algorithm": {"algorithmName": "grid"},
            "parameters": [
                {"name": "a", "parameterType": "double", "feasibleSpace": {"min": 0.1, "max": 0.3, "step": 0.1}},
                {"name": "b", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 2}},
                {"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["x", "y"]}},
            ],
            "maxTrialCount": 20,
            "trial": {"trainable": "branin"},
        }
    )
    searcher = _searcher(spec)
    points = []
    while (point := searcher.suggest(str(len(points)))) != "FINISHED":
        points.append(point)
    assert len(points) == 12
    assert {(round(p["a"], 6), p["b"], p["c"]) for p in points} == {
        (a, b, c) for a in (0.1, 0.2, 0.3) for b in (1, 2) for c in ("x", "y")
    }


@pytest.mark.parametrize("algorithm", ["random", "grid", "tpe", "bayesianoptimization"])
def test_save_and_restore_continue_the_same_sequence(tmp_path, algorithm):
    extra = [] if algorithm != "grid" else None
    spec = _branin_spec(algorithm, 5, extra)
    if algorithm == "grid":
        spec = parse_spec({**spec.model_dump(by_alias=True, exclude_none=True), "algorithm": {"algorithmName": "grid"},
                           "parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": -5, "max": 10}},
                                          {"name": "y", "parameterType": "int", "feasibleSpace": {"min": 0, "max": 15}}]})
    original = _searcher(spec)
    _run_sequential(original, 8)
    original.save(str(tmp_path / "state"))
    restored = _searcher(spec)
    restored.restore(str(tmp_path / "state"))
    if algorithm == "bayesianoptimization":
        assert restored.observations == original.observations == 8
    # The restored searcher goes on exactly where the original stands: the same next two points.
    assert [restored.suggest("n1"), restored.suggest("n2")] == [original.suggest("n1"), original.suggest("n2")]


@pytest.mark.parametrize("strategy", ["max", "believer"])
def test_bayesopt_treats_exactly_the_running_trials_as_pending(strategy):
    """A trial that failed stops counting as pending (bayes_opt alone would lie about it for
    ever); the ones still running keep counting, through a save and restore."""
    spec = _branin_spec("bayesianoptimization", 3, [{"name": "pending_strategy", "value": strategy}, {"name": "n_initial_points", "value": 5}])
    searcher = _searcher(spec)
    _run_sequential(searcher, 8)
    searcher.suggest("failed")
    running = searcher.suggest("running")
    searcher.on_trial_complete("failed", error=True)
    after = searcher.suggest("after")
    dummies = searcher.get_state()["optimizer"]["acquisition_params"]["dummies"]
    unit = lambda c: ((c["x"] + 5) / 15, c["y"] / 15)  # noqa: E731  (Branin's box as the unit square)
    numpy.testing.assert_allclose(sorted(map(tuple, dummies)), sorted([unit(running), unit(after)]))
    restored = _searcher(spec)
    restored.set_state(searcher.get_state())
    assert restored.suggest("next") == searcher.suggest("next")


def test_tpe_is_optunas_sampler_and_hyperopts_on_request():
    """``tpe`` runs Optuna's TPE (the same trials as Optuna's own sampler for the seed); hyperopt's
    is ``engine: hyperopt``, with its old setting names."""
    import optuna

    from benchmarks.search_quality import optuna_distributions

    spec = _branin_spec("tpe", 4)
    ours = _run_sequential(_searcher(spec), 15)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=4))
    theirs = []
    for _ in range(15):
        trial = study.ask(optuna_distributions([p.model_dump(by_alias=True, exclude_none=True) for p in spec.parameters]))
        theirs.append(branin_value(trial.params["x"], trial.params["y"]))
        study.tell(trial, theirs[-1])
    assert ours == theirs
    hyperopt = _searcher(_branin_spec("tpe", 4, [{"name": "engine", "value": "hyperopt"}, {"name": "n_startup_jobs", "value": 3}]))
    assert type(hyperopt).__name__ == "HyperOptSearch" and len(_run_sequential(hyperopt, 5)) == 5


def test_bayesopt_takes_katibs_settings():
    spec = _branin_spec("bayesianoptimization", 0, [
        {"name": "base_estimator", "value": "GP"}, {"name": "n_initial_points", "value": 3},
        {"name": "acq_func", "value": "gp_hedge"}, {"name": "acq_optimizer", "value": "sampling"},
    ])
    searcher = _searcher(spec)
    assert type(searcher._optimizer.acquisition_function.base_acquisition).__name__ == "GPHedge"
    assert searcher._acq_budget == (10_000, 0)  # sampling: random points, no L-BFGS-B restarts
    assert len(_run_sequential(searcher, 6)) == 6
