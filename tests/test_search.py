"""Searchers on the real libraries, without Ray: they learn, they walk grids, they save state."""

from __future__ import annotations

import statistics

import numpy.testing

import pytest

from raytune_k8s.spec import parse_spec
from raytune_k8s.trials.synthetic import branin_value

from .helpers import branin_spec, run_sequential, searcher_for


@pytest.mark.parametrize("algorithm", ["tpe", "multivariate-tpe", "bayesianoptimization"])
def test_model_based_searchers_beat_random_on_branin(algorithm):
    """Later suggestions (evaluations 21-40) are better than random's, on the same seeds."""
    seeds = range(3)
    ours = [statistics.mean(run_sequential(searcher_for(branin_spec(algorithm, s)), 40)[20:]) for s in seeds]
    rand = [statistics.mean(run_sequential(searcher_for(branin_spec("random", s)), 40)[20:]) for s in seeds]
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
    searcher = searcher_for(spec)
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
    spec = branin_spec(algorithm, 5, extra)
    if algorithm == "grid":
        spec = parse_spec({**spec.model_dump(by_alias=True, exclude_none=True), "algorithm": {"algorithmName": "grid"},
                           "parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": -5, "max": 10}},
                                          {"name": "y", "parameterType": "int", "feasibleSpace": {"min": 0, "max": 15}}]})
    original = searcher_for(spec)
    run_sequential(original, 8)
    original.save(str(tmp_path / "state"))
    restored = searcher_for(spec)
    restored.restore(str(tmp_path / "state"))
    if algorithm == "bayesianoptimization":
        assert restored.observations == original.observations == 8
    # The restored searcher goes on exactly where the original stands: the same next two points.
    assert [restored.suggest("n1"), restored.suggest("n2")] == [original.suggest("n1"), original.suggest("n2")]


@pytest.mark.parametrize("strategy", ["max", "believer"])
def test_bayesopt_treats_exactly_the_running_trials_as_pending(strategy):
    """A trial that failed stops counting as pending (bayes_opt alone would lie about it for
    ever); the ones still running keep counting, through a save and restore."""
    spec = branin_spec("bayesianoptimization", 3, [{"name": "pending_strategy", "value": strategy}, {"name": "n_initial_points", "value": 5}])
    searcher = searcher_for(spec)
    run_sequential(searcher, 8)
    searcher.suggest("failed")
    running = searcher.suggest("running")
    searcher.on_trial_complete("failed", error=True)
    after = searcher.suggest("after")
    dummies = searcher.get_state()["optimizer"]["acquisition_params"]["dummies"]
    unit = lambda c: ((c["x"] + 5) / 15, c["y"] / 15)  # noqa: E731  (Branin's box as the unit square)
    numpy.testing.assert_allclose(sorted(map(tuple, dummies)), sorted([unit(running), unit(after)]))
    restored = searcher_for(spec)
    restored.set_state(searcher.get_state())
    assert restored.suggest("next") == searcher.suggest("next")


def test_tpe_is_optunas_sampler_and_hyperopts_on_request():
    """``tpe`` runs Optuna's TPE (the same trials as Optuna's own sampler for the seed); hyperopt's
    is ``engine: hyperopt``, with its old setting names."""
    import optuna

    from benchmarks.search_quality import optuna_distributions

    spec = branin_spec("tpe", 4)
    ours = run_sequential(searcher_for(spec), 15)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=4))
    theirs = []
    for _ in range(15):
        trial = study.ask(optuna_distributions([p.model_dump(by_alias=True, exclude_none=True) for p in spec.parameters]))
        theirs.append(branin_value(trial.params["x"], trial.params["y"]))
        study.tell(trial, theirs[-1])
    assert ours == theirs
    def hyperopt(seed: int):
        return searcher_for(branin_spec("tpe", seed, [{"name": "engine", "value": "hyperopt"}, {"name": "n_startup_jobs", "value": 3}]))

    searcher = hyperopt(4)
    assert type(searcher).__name__ == "HyperOptSearch"
    assert searcher.algo.keywords["n_startup_jobs"] == 3  # Katib's (hyperopt's) setting name reached hyperopt
    values = run_sequential(searcher, 5)
    assert len(searcher._hpopt_trials.trials) == 5  # every result was told to hyperopt
    assert run_sequential(hyperopt(4), 5) == values != run_sequential(hyperopt(5), 5)  # random_state seeds it


def test_bayesopt_takes_katibs_settings():
    spec = branin_spec("bayesianoptimization", 0, [
        {"name": "base_estimator", "value": "GP"}, {"name": "n_initial_points", "value": 3},
        {"name": "acq_func", "value": "gp_hedge"}, {"name": "acq_optimizer", "value": "sampling"},
    ])
    searcher = searcher_for(spec)
    assert type(searcher._optimizer.acquisition_function.base_acquisition).__name__ == "GPHedge"
    assert searcher._acq_budget == (10_000, 0)  # sampling: random points, no L-BFGS-B restarts
    values = run_sequential(searcher, 6)
    assert searcher.observations == 6 and len(set(values)) == 6  # every result reached the GP; no point repeated
