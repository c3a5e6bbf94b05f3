"""What keeps the driver's cost per trial flat (issue 13): the FIFO queue, the trainable look-ups
remembered for one ``fit()``, and the searcher actor's suggestions ready before Tune first asks."""

from __future__ import annotations

import threading
import time

import pytest
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.registry import TRAINABLE_CLASS, _global_registry, get_trainable_cls, register_trainable

from raytune_k8s._tune import registry_cache
from raytune_k8s.experiment.runner import prepare
from raytune_k8s._tune.fifo import QueuedFIFOScheduler
from raytune_k8s._tune.registry_cache import cached_trainable_lookups

from .helpers import GRID_OF_TWELVE_POINTS, grid_of_twelve, spec_dict, wait_for


class Queued:
    """What the scheduler reads of a trial: its status."""

    def __init__(self, name: str, status: str = Trial.PENDING):
        self.name, self.status = name, status

    def __repr__(self) -> str:
        return self.name


def test_fifo_queue_picks_in_tune_order_and_forgets_ended_trials():
    scheduler = QueuedFIFOScheduler()
    a, b, c = Queued("a", Trial.RUNNING), Queued("b"), Queued("c")
    for trial in (a, b, c):
        scheduler.on_trial_add(None, trial)
    assert scheduler.choose_trial_to_run(None) is b  # the first pending, past the running one
    b.status = Trial.RUNNING
    assert scheduler.choose_trial_to_run(None) is c
    c.status, a.status = Trial.PAUSED, Trial.TERMINATED
    assert scheduler.choose_trial_to_run(None) is c  # no pending: the first paused
    assert a not in scheduler._queue  # ended: dropped on the way
    b.status = Trial.PENDING  # Tune retries b after a failure and adds it again: back of the queue
    scheduler.on_trial_add(None, b)
    d = Queued("d")
    scheduler.on_trial_add(None, d)
    assert scheduler.choose_trial_to_run(None) is b
    b.status = Trial.ERROR
    assert scheduler.choose_trial_to_run(None) is d
    scheduler.on_trial_complete(None, d, {})
    c.status = Trial.TERMINATED
    assert scheduler.choose_trial_to_run(None) is None
    assert scheduler._queue == {}


def test_fifo_queue_is_not_pickled_with_its_trials():
    import pickle

    scheduler = QueuedFIFOScheduler()
    scheduler.on_trial_add(None, Queued("a"))
    assert pickle.loads(pickle.dumps(scheduler))._queue == {}


def test_trainable_look_ups_go_to_the_gcs_once_per_fit_and_only_in_its_thread(ray_connected, monkeypatch):
    gets: list[str] = []
    original_get = type(_global_registry).get

    def counting_get(self, category, key):
        gets.append(key)
        return original_get(self, category, key)

    monkeypatch.setattr(type(_global_registry), "get", counting_get)
    register_trainable("speed-test-a", lambda config: {"v": 1})
    with cached_trainable_lookups():
        first = get_trainable_cls("speed-test-a")
        assert get_trainable_cls("speed-test-a") is first
        assert gets == ["speed-test-a"]
        other: list = []
        thread = threading.Thread(target=lambda: other.append(get_trainable_cls("speed-test-a")))
        thread.start()
        thread.join()
        assert gets == ["speed-test-a"] * 2  # another thread reads the GCS as always
        register_trainable("speed-test-a", lambda config: {"v": 2})  # registered again: read afresh
        assert get_trainable_cls("speed-test-a") is not first
        assert gets == ["speed-test-a"] * 3
        with pytest.raises(tune.TuneError, match="Unknown trainable"):
            get_trainable_cls("speed-test-never-registered")  # not remembered as present
    assert "get" not in vars(_global_registry) and "contains" not in vars(_global_registry)
    get_trainable_cls("speed-test-a")
    assert gets == ["speed-test-a"] * 4  # outside the block: the GCS again
    _global_registry.unregister(TRAINABLE_CLASS, "speed-test-a")


def test_a_missing_registry_warns_once_and_runs_on(monkeypatch):
    monkeypatch.setattr(registry_cache._PATCH, "warned", False)
    monkeypatch.setattr(registry_cache, "trainable_registry", lambda: object())  # a Ray without it
    with pytest.warns(RuntimeWarning, match="not cached") as caught:
        with cached_trainable_lookups():
            pass
        with cached_trainable_lookups():
            pass
    assert len([w for w in caught if "not cached" in str(w.message)]) == 1


def _suggest_until_finished(searcher, first: int = 0, timeout: float = 60) -> list[dict]:
    """Ask as Tune does (trial ids t<first>, t<first+1>, ...) until the search is finished."""
    from ray.tune.search import Searcher

    configs: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        config = searcher.suggest(f"t{first + len(configs)}")
        if config == Searcher.FINISHED:
            return configs
        if config is not None:
            configs.append(config)
        time.sleep(0.01)
    raise AssertionError(f"not finished after {timeout} s: {len(configs)} suggestions")


def test_the_searcher_actor_has_suggestions_ready_before_tune_asks(ray_connected):
    plan = prepare(spec_dict("ready-early", trials=4, parallel=2, parameters=[
        {"name": name, "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}} for name in "xy"]))
    try:
        plan.actor.start()
        assert plan.actor.wait_for_suggestions(60)
        config = plan.searcher.suggest("t0")  # the first ask finds one ready: no "ask again"
        assert config is not None and 0 <= config["x"] <= 1
    finally:
        plan.actor.close()


def test_first_suggestions_made_in_the_driver_are_continued_by_the_actor(ray_connected):
    """The first suggestions come from the driver at once; the actor then continues the same
    searcher: a grid of 12 is walked once, nothing repeated or skipped."""
    from raytune_k8s.search.actor.driver import ActorSearcher

    searcher = ActorSearcher(grid_of_twelve(), prefetch=3, first_here=True)
    try:
        searcher.start()
        configs = [searcher.suggest(f"t{i}") for i in range(3)]
        assert None not in configs  # ready at once: no actor has answered yet
        configs += _suggest_until_finished(searcher, first=len(configs))
        assert sorted((c["a"], c["b"]) for c in configs) == GRID_OF_TWELVE_POINTS
        assert searcher.restarts == 0
    finally:
        searcher.close()


def test_a_finished_search_stops_asking_its_actor_but_still_reports_results(ray_connected):
    """A finished search's actor answers at once; asking it again with nothing to send spun the
    driver and the actor at about 40 % of a core each for the rest of the experiment. Counted:
    once the answer saying "finished" is in, the courier starts no round trip until a result is
    to be sent, however often it is woken."""
    from raytune_k8s.search.actor.driver import ActorSearcher

    searcher = ActorSearcher(grid_of_twelve(), prefetch=12, first_here=True)
    try:
        searcher.start()
        given = [f"t{i}" for i in range(len(_suggest_until_finished(searcher)))]
        assert len(given) == 12
        turns = [0]
        courier_turn = searcher.courier_turn

        def counted_turn():
            turns[0] += 1
            return courier_turn()

        searcher.courier_turn = counted_turn  # the courier thread looks it up on every turn
        before = searcher.round_trips
        for _ in range(5):  # Tune asks on: each ask wakes the courier
            assert searcher.suggest("late") == "FINISHED"
        # 20 courier turns (woken, or every COURIER_IDLE_S) with nothing to send: at most the one
        # round trip that told the actor of the last trials started, none after.
        wait_for(lambda: turns[0] >= 20, 60, "20 courier turns")
        assert searcher.round_trips - before <= 1
        for trial_id in given:
            searcher.on_trial_complete(trial_id, result={"v": 1.0})
        wait_for(lambda: searcher.observations() == 12, 60, "all 12 results folded in")
        assert searcher.round_trips > before  # results to send: it asks again
    finally:
        searcher.close()


def test_the_result_grid_run_drops_gets_no_dataframes_and_others_still_do(ray_connected, tmp_path, monkeypatch):
    from ray.tune.analysis.experiment_analysis import ExperimentAnalysis

    from raytune_k8s._tune import unread_dataframes
    from raytune_k8s._tune.unread_dataframes import skipping_trial_dataframes

    def fit(name: str):
        tuner = tune.Tuner(lambda config: {"v": config["x"]}, param_space={"x": tune.grid_search([1, 2])},
                           run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0))
        return tuner.fit()

    with skipping_trial_dataframes():
        grid = fit("skipped")
        assert ExperimentAnalysis._fetch_trial_dataframes is unread_dataframes._fetch_trial_dataframes
    assert sorted(r.metrics["v"] for r in grid) == [1, 2]  # metrics, paths and errors as before
    assert all(r.metrics_dataframe is None for r in grid)
    assert ExperimentAnalysis._fetch_trial_dataframes is not unread_dataframes._fetch_trial_dataframes
    grid = fit("kept")  # outside the block: Tune's own
    assert sorted(r.metrics_dataframe["v"].iloc[-1] for r in grid) == [1, 2]

    monkeypatch.setattr(unread_dataframes._PATCH, "warned", False)
    monkeypatch.delattr(ExperimentAnalysis, "_fetch_trial_dataframes")  # a Ray without it
    with pytest.warns(RuntimeWarning, match="built as always"):
        with skipping_trial_dataframes():
            pass
