"""The search algorithm in its own Ray actor: non-blocking, prefetching, and surviving its death."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import cloudpickle
from ray import tune
from ray.tune.search import Searcher

from raytune_k8s.experiment.runner import prepare, trial_resources
from raytune_k8s.search.actor.driver import ActorSearcher
from raytune_k8s.search.actor.host import KeySet, SearcherHost

from .helpers import GRID_OF_TWELVE_POINTS, grid_of_twelve, spec_dict, wait_for


class GatedSearcher(Searcher):
    """A user's own Ray Tune searcher that makes suggestion k only once the test has allowed k+1
    (the number in ``gate``): "slow" for as long as the test likes, with no clock involved."""

    def __init__(self, gate: str):
        super().__init__(metric="value", mode="min")
        self.gate = gate
        self.made = 0
        self.seen = 0

    def suggest(self, trial_id):
        while self.made >= int(Path(self.gate).read_text() or 0):
            time.sleep(0.01)
        self.made += 1
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


class CountingEvent(threading.Event):
    """The driver's "an answer arrived" event, counting the suggest calls that waited on it."""

    def __init__(self):
        super().__init__()
        self.waits = 0

    def wait(self, timeout=None):
        if threading.current_thread() is threading.main_thread():  # Tune's thread (the test's), not the courier
            self.waits += 1
        return super().wait(timeout)


def test_suggest_never_waits_for_a_slow_searcher_and_prefetches(ray_connected, tmp_path):
    gate = tmp_path / "gate"
    gate.write_text("0")
    searcher = ActorSearcher(GatedSearcher(str(gate)), prefetch=3)
    searcher._arrived = arrived = CountingEvent()
    try:
        # Nothing out and the searcher stuck: Tune is told "nothing yet", after the one wait
        # (IDLE_WAIT_S, woken early by an answer) that Tune's own sleep would have cost anyway.
        assert [searcher.suggest(f"idle{i}") for i in range(2)] == [None, None]
        assert arrived.waits == 2
        gate.write_text("1")
        first = wait_for(lambda: searcher.suggest("t0"), 60, "the first suggestion")
        # A trial is out and the searcher stuck again: every ask returns at once, no wait at all.
        waits = arrived.waits
        assert [searcher.suggest("t1") for _ in range(5)] == [None] * 5
        assert arrived.waits == waits, "a suggest call waited for the searcher while a trial was out"
        # Prefetch: the actor makes the next ones before Tune asks, before any result came back.
        gate.write_text("3")
        wait_for(lambda: len(searcher._ready) == 2, 60, "two suggestions made ahead")
        got = [first, searcher.suggest("t1"), searcher.suggest("t2")]
        assert [c["x"] for c in got] == [0.0, 0.0, 0.0]
        assert arrived.waits == waits
        gate.write_text("1000")  # the actor folds results in between suggestions: let it on
        for i in range(3):
            searcher.on_trial_complete(f"t{i}", {"value": 1.0})
        wait_for(lambda: searcher.observations() == 3, 60, "three observations")
    finally:
        searcher.close()


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
    lost = SearcherHost(cloudpickle.dumps(grid_of_twelve()), prefetch=3)
    wait_for(lambda: len(lost._ready) == 3, 60, "s0, s1, s2 made")  # none delivered yet
    held = lost._ready[0]  # the driver got s0 just before the actor died
    version, snapshot = lost._version, lost._snapshot
    restored = SearcherHost(cloudpickle.dumps(grid_of_twelve()), 3, snapshot, version, 1, frozenset({held[0]}))
    configs = [held[1], *_drain(restored)]
    points = sorted((c["a"], c["b"]) for c in configs)
    assert points == GRID_OF_TWELVE_POINTS  # all 12, each once


class SaveCounter(Searcher):
    """Suggests 1, 2, 3, ... and counts its own saves (each snapshot of the actor is one save)."""

    def __init__(self):
        super().__init__(metric="value", mode="min")
        self.made = self.seen = self.saves = 0

    def suggest(self, trial_id):
        self.made += 1
        return {"x": float(self.made)}

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.seen += 1

    def save(self, path):
        self.saves += 1
        Path(path).write_text(str(self.seen))

    def restore(self, path):
        self.seen = int(Path(path).read_text())


def test_a_result_and_the_next_suggestion_cost_one_snapshot():
    """A model's snapshot costs about what a suggestion does (Optuna's study pickles whole, ~50 ms
    at 5,000 trials): folding a result in and making the next suggestion take one, not two, and
    that one holds the result."""
    import pickle

    host = SearcherHost(cloudpickle.dumps(SaveCounter()), 1)
    searcher = host._searcher
    held: list[str] = []
    for _ in range(40):
        items: list = []
        results = [(key, {"value": 1.0}, False) for key in held]
        while not items:
            items, finished, _, error = host.exchange(-1, started=len(held), results=results)
            assert error is None and not finished, error
            held, results = [], []
        held = [key for key, _ in items]
    wait_for(lambda: searcher.seen == 39, 30, "39 results folded in")
    _, snapshot, folded = host.exchange(-1)[2]
    assert len(folded) == 39 and len(pickle.loads(snapshot)["folded"]) == 39
    assert searcher.made == 40 and searcher.saves <= 40 + 2, searcher.saves  # (two a trial before: 80)


def test_killed_actor_is_restored_without_losing_observations(ray_connected, tmp_path):
    spec = spec_dict("actor-kill", algorithm="bayesianoptimization", trials=8, parallel=2,
                     settings=[{"name": "random_state", "value": 0}, {"name": "n_initial_points", "value": 3}],
                     trial={"trainable": "branin", "resources": {"cpu": 1}})
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
    wait_for(lambda: searcher.observations() == completed, 60, f"{completed} observations")

    # The state Tune saves with the experiment restores a fresh actor with every observation.
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = prepare(spec).actor
    restored.restore(str(tmp_path / "searcher.pkl"))
    wait_for(lambda: restored.observations() == completed, 90, f"{completed} observations restored")
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

    kept = ActorSearcher(grid_of_twelve(), prefetch=1)  # made before the block: left alone
    kept.set_search_properties("v", "min", {})
    with closing_searchers_created():
        restored = cloudpickle.loads(cloudpickle.dumps(kept))
        restored.set_search_properties("v", "min", {})
        wait_for(lambda: restored.suggest("r0") is not None, 60, "the restored searcher's suggestion")
        wait_for(lambda: kept.suggest("k0") is not None, 60, "the kept searcher's suggestion")
        wait_for(lambda: alive_hosts() == 2, 60, "both searcher actors alive")
    wait_for(lambda: alive_hosts() == 1, 60, "the restored searcher's actor ended with the block")
    assert kept.suggest("k1") is not None or wait_for(lambda: kept.suggest("k2") is not None, 60, "the kept one goes on")
    kept.close()
    wait_for(lambda: alive_hosts() == 0, 60, "no searcher actor left")


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
