"""The search algorithm in its own Ray actor: non-blocking, prefetching, and surviving its death."""

from __future__ import annotations

import sys
import time

import cloudpickle
from ray import tune
from ray.tune.search import Searcher

from raytune_k8s.experiment.runner import prepare, trial_resources
from raytune_k8s.search import create_searcher
from raytune_k8s.search.actor.driver import IDLE_WAIT_S, ActorSearcher
from raytune_k8s.search.actor.host import KeySet, SearcherHost
from raytune_k8s.search.space import SearchSpace
from raytune_k8s.spec import parse_spec


class SlowSearcher(Searcher):
    """A user's own Ray Tune searcher that takes 1 s per suggestion."""

    def __init__(self):
        super().__init__(metric="value", mode="min")
        self.seen = 0

    def suggest(self, trial_id):
        time.sleep(1.0)
        return {"x": float(self.seen)}

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.seen += 1

    def save(self, path):
        with open(path, "wb") as f:
            f.write(str(self.seen).encode())

    def restore(self, path):
        with open(path, "rb") as f:
            self.seen = int(f.read())


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_suggest_never_waits_for_a_slow_searcher_and_prefetches(ray_connected):
    searcher = ActorSearcher(SlowSearcher(), prefetch=3)
    calls = []
    got = []
    answers = []
    deadline = time.monotonic() + 30
    while len(got) < 3 and time.monotonic() < deadline:
        start = time.perf_counter()
        config = searcher.suggest(f"t{len(got)}")
        calls.append(time.perf_counter() - start)
        answers.append(config)
        if config is not None:
            got.append(config)
        time.sleep(0.01)
    assert [c["x"] for c in got] == [0.0, 0.0, 0.0]  # computed ahead, before any result came back
    # Tune is told "nothing yet" instead of being made to wait. With no trial out, a call waits
    # at most the second Tune would sleep anyway (IDLE_WAIT_S); once a trial is out, never: a call
    # that waited for the searcher would take a whole suggestion (1 s); the bound is half of that.
    first_out = next(i for i, config in enumerate(answers) if config is not None)
    assert answers[0] is None, "the first suggest waited for the searcher's answer"
    assert max(calls[:first_out + 1]) < IDLE_WAIT_S + 0.5
    assert max(calls[first_out + 1:]) < 0.5, f"a suggest call waited {max(calls[first_out + 1:]):.3f} s with a trial out"
    for i in range(3):
        searcher.on_trial_complete(f"t{i}", {"value": 1.0})
    assert _wait_for(lambda: searcher.observations() == 3)
    searcher.close()


def _grid_of_twelve() -> Searcher:
    spec = parse_spec(
        {
            "name": "g",
            "objective": {"type": "minimize", "objectiveMetricName": "v"},
            "algorithm": {"algorithmName": "grid"},
            "parameters": [
                {"name": "a", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 6}},
                {"name": "b", "parameterType": "categorical", "feasibleSpace": {"list": ["x", "y"]}},
            ],
            "maxTrialCount": 12,
            "trial": {"trainable": "branin"},
        }
    )
    return create_searcher(spec.algorithm, SearchSpace.from_spec(spec), spec.objective)


def _drain(host: SearcherHost) -> list[dict]:
    configs, finished = [], False
    while not finished:
        items, finished, _, error = host.exchange(-1, started=len(configs))
        assert error is None, error
        configs += [config for _, config in items]
    return configs


def test_suggestions_a_lost_actor_made_but_never_delivered_are_handed_out_by_the_next():
    """The snapshot the driver holds can be newer than the suggestions it received (a grid
    point walked, a BO point counted as pending); the restored actor hands those out, not loses them."""
    lost = SearcherHost(cloudpickle.dumps(_grid_of_twelve()), prefetch=3)
    assert _wait_for(lambda: len(lost._ready) == 3)  # s0, s1, s2 made, none delivered yet
    held = lost._ready[0]  # the driver got s0 just before the actor died
    version, snapshot = lost._version, lost._snapshot
    restored = SearcherHost(cloudpickle.dumps(_grid_of_twelve()), 3, snapshot, version, 1, frozenset({held[0]}))
    configs = [held[1], *_drain(restored)]
    points = sorted((c["a"], c["b"]) for c in configs)
    assert points == sorted((a, b) for a in range(1, 7) for b in ("x", "y"))  # all 12, each once


def test_killed_actor_is_restored_without_losing_observations(ray_connected, tmp_path):
    spec = {
        "name": "actor-kill",
        "objective": {"type": "minimize", "objectiveMetricName": "value"},
        "algorithm": {"algorithmName": "bayesianoptimization", "algorithmSettings": [{"name": "random_state", "value": 0}, {"name": "n_initial_points", "value": 3}]},
        "parameters": [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10}},
            {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15}},
        ],
        "parallelTrialCount": 2,
        "maxTrialCount": 8,
        "trial": {"trainable": "branin", "resources": {"cpu": 1}},
    }
    plan = prepare(spec)
    searcher = plan.actor
    assert isinstance(searcher, ActorSearcher)

    class KillAfterFour(tune.Callback):
        def __init__(self):
            self.completed = 0

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.completed += 1
            if self.completed == 4:
                searcher.kill_actor()

    tuner = tune.Tuner(
        tune.with_resources(plan.trainable, trial_resources(plan.spec)),
        tune_config=tune.TuneConfig(metric="value", mode="min", search_alg=plan.searcher, num_samples=8, max_concurrent_trials=2),
        run_config=tune.RunConfig(name="actor-kill", storage_path=str(tmp_path), callbacks=[KillAfterFour()], verbose=0),
    )
    results = tuner.fit()
    completed = sum(r.error is None for r in results)
    assert completed == 8
    assert searcher.restarts == 1
    assert _wait_for(lambda: searcher.observations() == completed), f"{searcher.observations()} != {completed}"

    # The state Tune saves with the experiment restores a fresh actor with every observation.
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = prepare(spec).actor
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert _wait_for(lambda: restored.observations() == completed, timeout=90), f"{restored.observations()} != {completed}"
    restored.close()
    searcher.close()


def test_searchers_unpickled_inside_the_block_are_closed_with_it(ray_connected):
    """``resume`` restores the searcher from Tune's saved state (an unpickled copy, whose
    courier starts its own actor): that actor must end with the experiment, not the process."""
    from ray.util.state import list_actors

    from raytune_k8s.search.actor.driver import closing_searchers_created

    def alive_hosts() -> int:
        return len(list_actors(address=ray_connected.address,
                               filters=[("class_name", "=", "SearcherHost"), ("state", "=", "ALIVE")]))

    kept = ActorSearcher(_grid_of_twelve(), prefetch=1)  # made before the block: left alone
    kept.set_search_properties("v", "min", {})
    with closing_searchers_created():
        restored = cloudpickle.loads(cloudpickle.dumps(kept))
        restored.set_search_properties("v", "min", {})
        assert _wait_for(lambda: restored.suggest("r0") is not None)
        assert _wait_for(lambda: kept.suggest("k0") is not None)
        assert _wait_for(lambda: alive_hosts() == 2)
    assert _wait_for(lambda: alive_hosts() == 1), "the restored searcher's actor outlived the block"
    assert kept.suggest("k1") is not None or _wait_for(lambda: kept.suggest("k2") is not None)
    kept.close()
    assert _wait_for(lambda: alive_hosts() == 0)


def test_folded_keys_stay_small_however_many_results_came_back():
    """The snapshot's record of folded results holds every key, in whatever order they came,
    and its size follows the results still out, not the trial count."""
    import pickle

    keys = KeySet()
    for block in range(0, 1000, 4):  # results come back a little out of order
        for i in (block + 1, block, block + 3, block + 2):
            keys.add(f"s{i}")
    keys.add("s1001")  # s1000 still running
    assert len(keys) == 1001 and all(f"s{i}" in keys for i in range(1000)) and "s1001" in keys
    assert "s1000" not in keys and "other" not in keys
    restored = pickle.loads(pickle.dumps(keys))
    assert (restored.low, restored.extra) == (1000, {"s1001"})
    assert len(pickle.dumps(keys)) < 200 < len(pickle.dumps({f"s{i}" for i in range(1000)}))
    assert len(KeySet({"s0", "s2"})) == 2 and "s1" not in KeySet({"s0", "s2"})  # from an older snapshot's set
