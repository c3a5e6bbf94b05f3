"""Idle trial actors stay warm while a searcher actor computes, and a searcher actor that cannot
start is an error rather than an endless restart loop."""

from __future__ import annotations

import contextlib
import sys
import time

import cloudpickle
import pytest
from ray import tune
from ray.tune.search import Searcher
from ray.util.state import list_actors

from raytune_k8s.search.actor import MAX_RESTARTS_IN_ROW, ActorSearcher
from raytune_k8s.warm_actors import WarmActorCache, warm_trial_actors


class PairSearcher(Searcher):
    """Suggestions come in pairs, two seconds apart: both trials of a pair end while the next
    pair is still being computed, so two trial actors sit idle at once."""

    def __init__(self):
        super().__init__(metric="value", mode="min")
        self.made = 0

    def suggest(self, trial_id):
        if self.made % 2 == 0:
            time.sleep(2.0)
        self.made += 1
        return {"x": 1.0}

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass

    def save(self, path):
        open(path, "wb").close()

    def restore(self, path):
        pass


def _refuse_to_load():
    raise RuntimeError("this searcher cannot be loaded in a worker")


class UnloadableSearcher(PairSearcher):
    def __reduce__(self):
        return (_refuse_to_load, ())


def one_second_trial(config):
    time.sleep(1.0)
    return {"value": config["x"]}


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_cache_keeps_up_to_its_limit_and_releases_all_when_forced():
    cache = WarmActorCache(limit=3)
    for actor in "abcd":
        cache.cache_object("1cpu", actor)
    assert cache.num_cached_objects == 3  # Tune's own cache would keep one
    assert list(cache.flush_cached_objects()) == []
    cache.increase_max("2cpu")  # a staged trial needs another shape: stop hoarding
    assert not cache.cache_object("1cpu", "e")
    assert list(cache.flush_cached_objects()) == ["a", "b", "c"]
    cache.decrease_max("2cpu")
    cache.cache_object("1cpu", "f")
    assert list(cache.flush_cached_objects(force_all=True)) == ["f"]
    assert cache.num_cached_objects == 0


def _trial_actors_created(head) -> int:
    actors = list_actors(address=head.dashboard_url, limit=10_000, raise_on_missing_output=False)
    return sum("ImplicitFunc" in actor.class_name for actor in actors)  # Tune's function-trainable actors


def _run(head, tmp_path, name: str, warm: bool) -> tuple[int, int]:
    """Trials completed and trial actors created by one experiment."""
    before = _trial_actors_created(head)
    searcher = ActorSearcher(PairSearcher(), prefetch=2)
    tuner = tune.Tuner(
        tune.with_resources(one_second_trial, {"cpu": 1}),
        tune_config=tune.TuneConfig(metric="value", mode="min", search_alg=searcher, num_samples=8, max_concurrent_trials=2, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0),
    )
    with warm_trial_actors(2) if warm else contextlib.nullcontext():
        results = tuner.fit()
    searcher.close()
    return sum(r.error is None for r in results), _trial_actors_created(head) - before


def test_trial_actors_stay_warm_while_the_searcher_actor_computes(ray_connected, tmp_path):
    warm_done, warm_actors = _run(ray_connected, tmp_path, "warm", warm=True)
    cold_done, cold_actors = _run(ray_connected, tmp_path, "cold", warm=False)
    print(f"8 trials at parallelism 2: {warm_actors} trial actors started when kept warm, {cold_actors} with Tune's own cache")
    assert warm_done == cold_done == 8
    assert warm_actors == 2  # every trial ran in one of the first two actors
    assert cold_actors > warm_actors  # without it, Tune stops idle actors and starts new ones


def test_a_searcher_actor_that_cannot_start_is_an_error(ray_connected):
    searcher = ActorSearcher(UnloadableSearcher(), prefetch=1)
    deadline = time.monotonic() + 60
    with pytest.raises(RuntimeError, match=f"died {MAX_RESTARTS_IN_ROW + 1} times in a row") as failure:
        while time.monotonic() < deadline:
            assert searcher.suggest("t0") is None
            time.sleep(0.05)
    assert "cannot be loaded in a worker" in str(failure.value)
