"""Katib's newer algorithms do what their names promise: Sobol points are Sobol's, CMA-ES learns
and restarts, Hyperband gives each rung its budget, PBT resumes from copied checkpoints with
perturbed parameters, and every algorithm refuses a setting it does not know, by name."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import qmc

from raytune_k8s.search import ALGORITHMS, Search, create_search
from raytune_k8s.search.hyperband import schedule
from raytune_k8s.search.space import SearchSpace
from raytune_k8s.spec import SpecError, parse_spec

from .helpers import branin_spec, run_sequential, searcher_for


def _spec(algorithm: str, settings: list[dict], parameters: list[dict], objective_type: str = "minimize"):
    return parse_spec(
        {
            "name": "t",
            "objective": {"type": objective_type, "objectiveMetricName": "value"},
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": settings},
            "parameters": parameters,
            "maxTrialCount": 10,
            "trial": {"trainable": "branin"},
        }
    )


UNIT_SQUARE = [{"name": n, "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}} for n in ("a", "b", "c")]


def test_sobol_points_are_the_scrambled_sobol_sequence():
    """After Optuna's first (random) trial, trial k is point k-1 of scipy's scrambled Sobol
    sequence for that seed; the first 16 of them hit each of 16 equal slices of every axis once."""
    searcher = searcher_for(_spec("sobol", [{"name": "random_state", "value": 7}], UNIT_SQUARE))
    points = []
    for i in range(17):
        config = searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), {"value": sum(config.values())})
        points.append([config[n] for n in "abc"])
    sobol = qmc.Sobol(3, scramble=True, seed=7).random(16)
    np.testing.assert_allclose(points[1:], sobol)
    for axis in range(3):
        assert sorted((np.array(points[1:])[:, axis] * 16).astype(int)) == list(range(16))


def test_cmaes_learns_on_branin():
    seeds = range(3)
    late = [statistics.mean(run_sequential(searcher_for(branin_spec("cmaes", s)), 60)[40:]) for s in seeds]
    rand = [statistics.mean(run_sequential(searcher_for(branin_spec("random", s)), 60)[40:]) for s in seeds]
    print(f"cmaes: mean Branin value of evaluations 41-60 per seed {late} vs random {rand}")
    assert statistics.median(late) < 0.25 * statistics.median(rand)


@pytest.mark.parametrize("strategy", ["ipop", "bipop"])
def test_cmaes_restarts_with_a_larger_population_once_converged(strategy):
    """A flat objective makes CMA-ES stop (no progress); IPOP/BIPOP start again, the first
    restart with twice the population."""
    searcher = searcher_for(branin_spec("cmaes", 0, [{"name": "restart_strategy", "value": strategy}]))
    first = searcher.population_size
    for i in range(300):
        searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), {"value": 1.0})
        if searcher.restarts:
            break
    assert searcher.restarts == 1 and searcher.population_size == 2 * first


def test_hyperband_gives_each_rung_its_budget_and_promotes_the_best():
    spec = _spec(
        "hyperband",
        [{"name": "resource_name", "value": "epochs"}, {"name": "r_l", "value": 9}, {"name": "random_state", "value": 0}],
        [
            {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}},
            {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 9}},
        ],
    )
    searcher = searcher_for(spec)
    expected = [[(r.trials, r.budget) for r in bracket] for bracket in schedule(9, 3)]
    assert expected == [[(9, 1), (3, 3), (1, 9)], [(5, 3), (2, 9)], [(3, 9)]]  # Li et al.'s table, Katib's rounding
    value = lambda c: (c["lr"] - 0.3) ** 2 + 1 / c["epochs"]  # noqa: E731
    seen, n = [], 0
    for bracket in expected:
        survivors = None
        for trials, budget in bracket:
            configs = []
            for _ in range(trials):
                config = searcher.suggest(str(n))
                assert isinstance(config, dict) and config["epochs"] == budget and isinstance(config["epochs"], int)
                configs.append((str(n), config))
                n += 1
            assert searcher.suggest("early") is None, "the next rung waits for this one's results"
            if survivors is not None:
                assert sorted(c["lr"] for _, c in configs) == sorted(survivors)
            for trial_id, config in configs:
                searcher.on_trial_complete(trial_id, {"value": value(config)})
            keep = math.ceil(trials / 3)
            survivors = sorted((c["lr"] for _, c in configs), key=lambda lr: abs(lr - 0.3))[:keep]
            seen.append((trials, budget))
    assert searcher.suggest("end") == "FINISHED"
    assert seen == [rung for bracket in expected for rung in bracket] and n == searcher.total_trials == 23


@pytest.mark.parametrize(
    ("algorithm", "settings", "field", "named"),
    [
        ("multivariate-tpe", [{"name": "n_startup_trial", "value": 3}], "algorithm.algorithmSettings[0].name", "n_startup_trial"),
        ("cmaes", [{"name": "sigma", "value": 0.3}, {"name": "restart", "value": "ipop"}], "algorithm.algorithmSettings[1].name", "restart"),
        ("cmaes", [{"name": "restart_strategy", "value": "lpop"}], "algorithm.algorithmSettings[0].value", "restart_strategy"),
        ("sobol", [{"name": "scramble", "value": "true"}], "algorithm.algorithmSettings[0].name", "scramble"),
        ("tpe", [{"name": "engine", "value": "skopt"}], "algorithm.algorithmSettings[0].value", "engine"),
        ("bayesianoptimization", [{"name": "base_estimator", "value": "RF"}], "algorithm.algorithmSettings[0].value", "base_estimator"),
        ("bayesianoptimization", [{"name": "acq_func", "value": "EIps"}], "algorithm.algorithmSettings[0].value", "acq_func"),
        ("hyperband", [{"name": "resource_name", "value": "x"}, {"name": "r_l", "value": 9}, {"name": "etaa", "value": 3}],
         "algorithm.algorithmSettings[2].name", "etaa"),
        ("hyperband", [{"name": "resource_name", "value": "nope"}, {"name": "r_l", "value": 9}], "algorithm.algorithmSettings", "resource_name"),
        ("pbt", [{"name": "n_population", "value": 4}, {"name": "truncation_threshold", "value": 0.2}],
         "algorithm.algorithmSettings[0].value", "n_population"),
        ("pbt", [{"name": "n_population", "value": 8}], "algorithm.algorithmSettings", "truncation_threshold"),
    ],
)
def test_bad_settings_are_one_spec_error_naming_the_setting(algorithm, settings, field, named):
    spec = _spec(algorithm, settings, [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}}])
    with pytest.raises(SpecError) as err:
        create_search(spec.algorithm, SearchSpace.from_spec(spec), spec.objective)
    assert err.value.field == field and named in str(err.value), str(err.value)


@pytest.mark.parametrize("algorithm", ["tpe", "multivariate-tpe", "cmaes", "sobol", "hyperband"])
def test_new_searchers_save_and_restore_the_same_sequence(tmp_path, algorithm):
    extra = [{"name": "resource_name", "value": "y"}, {"name": "r_l", "value": 9}] if algorithm == "hyperband" else []
    spec = branin_spec(algorithm, 5, extra)
    original = searcher_for(spec)
    run_sequential(original, 8)
    original.save(str(tmp_path / "state"))
    restored = searcher_for(spec)
    restored.restore(str(tmp_path / "state"))
    assert restored.suggest("next") == original.suggest("next")


def test_bayesopt_searches_categoricals_one_hot():
    """Each category is its own GP coordinate: suggestions are values of the list, and the GP sees
    as many coordinates as there are categories plus the numbers."""
    spec = _spec(
        "bayesianoptimization",
        [{"name": "random_state", "value": 0}, {"name": "n_initial_points", "value": 3}, {"name": "acq_func", "value": "LCB"}],
        [
            {"name": "op", "parameterType": "categorical", "feasibleSpace": {"list": ["none", "conv", "pool", "skip"]}},
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}},
        ],
    )
    searcher = searcher_for(spec)
    score = {"none": 3.0, "conv": 0.0, "pool": 2.0, "skip": 1.0}
    chosen = []
    for i in range(12):
        config = searcher.suggest(str(i))
        chosen.append(config["op"])
        searcher.on_trial_complete(str(i), {"value": score[config["op"]] + (config["x"] - 0.5) ** 2})
    assert set(chosen) <= set(score) and searcher._optimizer.space.dim == 5
    assert chosen[3:].count("conv") >= 5, chosen


def test_every_registered_algorithm_builds_and_suggests_inside_the_space():
    """Each algorithm the registry names builds from a spec and hands out points of that spec's
    space (for the NAS ones: architectures of its nasConfig), taking results back as it goes."""
    from raytune_k8s.spec.nas import NasConfig

    nas = NasConfig.model_validate({"graphConfig": {"numLayers": 1}, "operations": [
        {"operationType": "max_pooling", "parameters": [
            {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3"]}}]}]})
    int_box = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": -5, "max": 10}},
               {"name": "y", "parameterType": "int", "feasibleSpace": {"min": 0, "max": 15}}]
    for name in ALGORITHMS:
        settings = {
            "hyperband": [{"name": "resource_name", "value": "y"}, {"name": "r_l", "value": 9}],
            "pbt": [{"name": "n_population", "value": 5}, {"name": "truncation_threshold", "value": 0.2}],
        }.get(name, [])
        if name == "grid":  # a grid needs steps: the same box in ints
            spec = parse_spec({**branin_spec("random", 0).model_dump(by_alias=True, exclude_none=True),
                               "algorithm": {"algorithmName": "grid"}, "parameters": int_box})
        else:
            spec = branin_spec(name, 0, settings)
        nas_algorithm = name in ("darts", "enas")  # architecture search: over a nasConfig, not the parameters
        algorithm = spec.algorithm if name != "darts" else spec.algorithm.model_copy(update={"settings": []})  # darts takes no seed
        search = create_search(algorithm, SearchSpace.from_spec(spec), spec.objective, nas if nas_algorithm else None)
        assert isinstance(search, Search) and (search.scheduler is not None) == (name == "pbt"), name
        configs = []
        for i in range(3):
            config = search.searcher.suggest(str(i))
            assert isinstance(config, dict), (name, i, config)
            configs.append(config)
            if not nas_algorithm:
                search.searcher.on_trial_complete(str(i), {"value": float(i)})
        if name == "darts":
            assert {"algorithm-settings", "search-space", "num-layers"} <= set(configs[0]), (name, sorted(configs[0]))
            assert "max_pooling_3x3" in configs[0]["search-space"], configs[0]["search-space"]
        elif name == "enas":
            assert {"architecture", "nn_config"} <= set(configs[0]) and '"num_layers": 1' in configs[0]["nn_config"], configs[0]
        else:
            assert all(-5 <= c["x"] <= 10 and 0 <= c["y"] <= 15 for c in configs), (name, configs)
            if name == "hyperband":
                assert all(c["y"] == 1 for c in configs), configs  # the first rung's budget, in the resource parameter
            if name in ("grid", "sobol", "random", "cmaes"):
                assert len({(c["x"], c["y"]) for c in configs}) == 3, (name, configs)  # no point handed out twice


def test_hyperband_experiment_runs_every_rung_through_tune(ray_connected, tmp_path):
    """End to end: the searcher actor says "not now" while a rung runs, Tune asks again, and the
    whole schedule (6 trials for r_l 3, eta 3) runs with the budget parameter set per rung."""
    import raytune_k8s

    spec = {
        "name": "branin-hyperband",
        "objective": {"type": "minimize", "objectiveMetricName": "value"},
        "algorithm": {"algorithmName": "hyperband", "algorithmSettings": [
            {"name": "resource_name", "value": "y"}, {"name": "r_l", "value": 3}, {"name": "random_state", "value": 0}]},
        "parameters": [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10}},
            {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15}},
        ],
        "parallelTrialCount": 3,
        "maxTrialCount": 30,
        "trial": {"trainable": "branin"},
    }
    summary = raytune_k8s.run(spec, storage_path=tmp_path, report=False)
    budgets = sorted(row["params"]["y"] for row in summary["trial_table"])
    assert summary["status"] == "Succeeded" and summary["trials"] == 6, budgets
    # Bracket s=1: 3 trials at budget 1, the best 1 of them promoted to 3; bracket s=0: 2 at 3.
    assert budgets == sorted([1.0] * 3 + [3.0] + [3.0] * 2)


# ---------------------------------------------------------------- issue 25: Katib's Hyperband and sobol as Katib runs them


def _hyperband_below_eta() -> dict:
    return {
        "name": "hb-one-bracket",
        "objective": {"type": "minimize", "objectiveMetricName": "value"},
        "algorithm": {"algorithmName": "hyperband", "algorithmSettings": [
            {"name": "resource_name", "value": "y"}, {"name": "r_l", "value": 2}, {"name": "random_state", "value": 0}]},
        "parameters": [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10}},
            {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15}},
        ],
        "parallelTrialCount": 3,
        "maxTrialCount": 10,
        "trial": {"trainable": "branin"},
    }


def test_hyperband_with_r_l_below_eta_is_one_bracket_at_the_full_budget():
    """Katib takes r_l < eta (s_max = floor(log_eta r_l) = 0): one bracket whose trials, as many as
    its first request (parallelTrialCount), all run at the full budget r_l; then it is done."""
    from raytune_k8s.experiment.runner import check

    loaded = check(_hyperband_below_eta())
    assert loaded.notes == ["hyperband: r_l 2 < eta 3: Hyperband has one bracket of 3 trials (parallelTrialCount, "
                            "Katib's first request) at the full budget y = 2, i.e. random search"]
    spec = loaded.spec
    search = create_search(spec.algorithm, SearchSpace.from_spec(spec), spec.objective, parallel_trials=spec.parallel_trials)
    searcher = search.searcher
    assert [(r.trials, r.budget) for r in searcher.rungs] == [(3, 2.0)]
    configs = [searcher.suggest(str(i)) for i in range(3)]
    assert all(isinstance(c, dict) and c["y"] == 2.0 for c in configs), configs
    assert len({c["x"] for c in configs}) == 3  # three random configurations
    assert searcher.suggest("3") is None  # the bracket is running
    for i, c in enumerate(configs):
        searcher.on_trial_complete(str(i), {"value": c["x"] ** 2})
    assert searcher.suggest("4") == "FINISHED"


def test_sobol_without_a_seed_says_so_once_in_our_words(tmp_path):
    """Optuna's own "No seed is provided for `QMCSampler`" must not reach the terminal."""
    import yaml

    from .helpers import REPO

    doc = yaml.safe_load((REPO / "examples" / "mnist-mxnet-sobol.yaml").read_text())
    doc["algorithm"].pop("algorithmSettings")
    path = tmp_path / "sobol.yaml"
    path.write_text(yaml.safe_dump(doc))
    done = subprocess.run([sys.executable, "-m", "raytune_k8s.cli", "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "QMCSampler" not in done.stderr and "No seed" not in done.stderr, done.stderr
    notes = [line for line in done.stderr.splitlines() if "sobol" in line]
    assert notes == ["note: sobol: no random_state setting, so the scrambled Sobol sequence is seeded at random "
                     "(set random_state to repeat a run's trials)"], done.stderr
    seeded = subprocess.run([sys.executable, "-m", "raytune_k8s.cli", "validate", str(REPO / "examples" / "mnist-mxnet-sobol.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert seeded.returncode == 0 and "sobol" not in seeded.stderr, seeded.stderr
