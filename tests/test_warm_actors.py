"""Idle trial actors stay warm while a searcher actor computes, only for the experiment that asked,
and a searcher actor that cannot start is an error rather than an endless restart loop. Ordered
by events (which results the searcher has), not by sleeps."""

from __future__ import annotations

import contextlib
import sys
import threading
import time

import cloudpickle
import pytest
from ray import tune
from ray.tune.search import Searcher
from ray.util.state import list_actors

from raytune_k8s.search.actor import MAX_RESTARTS_IN_ROW, ActorSearcher
from raytune_k8s import warm_actors
from raytune_k8s.warm_actors import cache_class, warm_trial_actors


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


def trivial_trial(config):
    return {"value": config["x"]}


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


def _trial_actors_created(head) -> int:
    actors = list_actors(address=head.dashboard_url, limit=10_000, raise_on_missing_output=False)
    return sum("ImplicitFunc" in actor.class_name for actor in actors)  # Tune's function-trainable actors


def _run(head, tmp_path, name: str, warm: bool, other_thread_warm: bool = False) -> tuple[int, int]:
    """Trials completed and trial actors created by one experiment."""
    before = _trial_actors_created(head)
    searcher = ActorSearcher(PairSearcher(), prefetch=2)
    tuner = tune.Tuner(
        tune.with_resources(trivial_trial, {"cpu": 1}),
        tune_config=tune.TuneConfig(metric="value", mode="min", search_alg=searcher, num_samples=8, max_concurrent_trials=2, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0),
    )
    with warm_trial_actors(2) if warm else contextlib.nullcontext(), _held_in_another_thread(other_thread_warm):
        results = tuner.fit()
    searcher.close()
    return sum(r.error is None for r in results), _trial_actors_created(head) - before


@contextlib.contextmanager
def _held_in_another_thread(hold: bool):
    """Another thread sits inside ``warm_trial_actors`` meanwhile (another experiment's fit)."""
    if not hold:
        yield
        return
    entered, leave = threading.Event(), threading.Event()

    def other():
        with warm_trial_actors(5):
            entered.set()
            leave.wait()

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait()
    try:
        yield
    finally:
        leave.set()
        thread.join()


def test_trial_actors_stay_warm_while_the_searcher_actor_computes(ray_connected, tmp_path):
    warm_done, warm_actors = _run(ray_connected, tmp_path, "warm", warm=True)
    # Tune's own cache, though another thread's experiment keeps its actors warm meanwhile
    cold_done, cold_actors = _run(ray_connected, tmp_path, "cold", warm=False, other_thread_warm=True)
    print(f"8 trials at parallelism 2: {warm_actors} trial actors started when kept warm, {cold_actors} with Tune's own cache")
    assert warm_done == cold_done == 8
    assert warm_actors == 2  # every trial ran in one of the first two actors
    assert cold_actors > warm_actors  # without it, Tune stops idle actors and starts new ones


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
    monkeypatch.setattr(warm_actors, "_warned", False)
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
