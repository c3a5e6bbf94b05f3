"""The warm trial-actor cache: what it keeps and releases, only for the experiment that asked, one
warning without Tune's private class; and a searcher actor that cannot start is an error rather
than an endless restart loop.

Counting the trial actors that ran trials end to end depends on whether a suggestion arrives
before Tune's next step (measured: 2 or 3 kept warm, 3 with Tune's own cache); the count that does
not, the new actors Tune asks Ray for, is tests/test_runner_speedups.py's."""

from __future__ import annotations

import sys
import threading
import time

import cloudpickle
import pytest
from ray.tune.search import Searcher

from raytune_k8s.search.actor.driver import MAX_RESTARTS_IN_ROW, ActorSearcher
from raytune_k8s._tune import warm_actors
from raytune_k8s._tune.warm_actors import cache_class, warm_trial_actors


class PairSearcher(Searcher):
    """Hands out trials in pairs, the next pair only once both results of the last one are in:
    both trial actors of a pair are idle, with nothing to run, whatever the timing."""

    def __init__(self):
        super().__init__(metric="value", mode="min")
        self.made = 0
        self.done = 0

    def suggest(self, trial_id):
        if self.made % 2 == 0 and self.done < self.made:
            return None  # the searcher actor asks again once a result comes in
        self.made += 1
        return {"x": 1.0}

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.done += 1

    def save(self, path):
        open(path, "wb").close()

    def restore(self, path):
        pass


def _refuse_to_load():
    raise RuntimeError("this searcher cannot be loaded in a worker")


class UnloadableSearcher(PairSearcher):
    def __reduce__(self):
        return (_refuse_to_load, ())


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_cache_keeps_up_to_its_limit_and_releases_all_when_forced():
    cache = cache_class()(limit=3)
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


def test_the_swap_lasts_only_while_a_fit_is_inside_and_nests():
    from ray.tune.execution import tune_controller

    original = tune_controller._ObjectCache
    with warm_trial_actors(3):
        with warm_trial_actors(4):
            assert tune_controller._ObjectCache(may_keep_one=True)._limit == 4
        assert tune_controller._ObjectCache(may_keep_one=True)._limit == 3
        outside: list = []
        thread = threading.Thread(target=lambda: outside.append(tune_controller._ObjectCache(may_keep_one=True)))
        thread.start()
        thread.join()
        assert type(outside[0]) is original  # a thread outside the block gets Tune's own cache
    assert tune_controller._ObjectCache is original


def test_a_missing_private_name_warns_once_and_runs_on(monkeypatch):
    from ray.tune.execution import tune_controller

    monkeypatch.delattr(tune_controller, "_ObjectCache")
    monkeypatch.setattr(warm_actors._PATCH, "warned", False)
    with pytest.warns(RuntimeWarning, match="not kept warm") as caught:
        with warm_trial_actors(2):
            pass
        with warm_trial_actors(2):
            pass
    assert len([w for w in caught if "not kept warm" in str(w.message)]) == 1
    assert not hasattr(tune_controller, "_ObjectCache")


def test_a_searcher_actor_that_cannot_start_is_an_error(ray_connected):
    searcher = ActorSearcher(UnloadableSearcher(), prefetch=1)
    deadline = time.monotonic() + 60
    with pytest.raises(RuntimeError, match=f"died {MAX_RESTARTS_IN_ROW + 1} times in a row") as failure:
        while time.monotonic() < deadline:
            assert searcher.suggest("t0") is None
            time.sleep(0.05)
    assert "cannot be loaded in a worker" in str(failure.value)
