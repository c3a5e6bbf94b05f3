"""The median stopping rule by trial id (``stopping/median.py``): Tune's rule's decisions, what it
keeps, its history rebuilt from a journal on resume."""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass

import pytest
from ray.tune.schedulers import MedianStoppingRule, TrialScheduler

from raytune_k8s.stopping.median import MedianStop


@dataclass(eq=False)
class _Trial:
    """What both rules read of a trial: its id (Tune's rule keys by the object) and status."""

    trial_id: str
    status: str = "RUNNING"


class _Controller:
    """What both rules ask of Tune's controller: the live trials (to yield to waiting ones)."""

    def __init__(self) -> None:
        self.live: list[_Trial] = []

    def get_live_trials(self) -> list[_Trial]:
        return self.live


def _stream(seed: int, trials: int = 80, parallel: int = 4, steps: int = 8):
    """Results as a parallel run delivers them: ``parallel`` trials interleaved, each reporting
    ``training_iteration`` 1, 2, ... and a noisy learning curve, until it ends or is stopped."""
    rng = random.Random(seed)
    waiting = [(f"t{i:03d}", rng.uniform(0.1, 1.0), rng.randint(1, steps)) for i in range(trials)]
    running: dict[str, list] = {}
    while waiting or running:
        while waiting and len(running) < parallel:
            trial_id, rate, length = waiting.pop(0)
            running[trial_id] = [rate, length, 0]
        trial_id = rng.choice(sorted(running))
        rate, length, step = running[trial_id]
        step += 1
        running[trial_id][2] = step
        value = 1 - (1 - rate) ** step + rng.gauss(0, 0.05)
        if step > 1 and rng.random() < 0.03:  # (a first value NaN: see the test below)
            value = float("nan")
        done = step >= length
        stop = yield trial_id, {"training_iteration": step, "acc": value, "done": done}
        if done or stop:
            del running[trial_id]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("mode", ["max", "min"])
def test_decisions_are_tunes_median_stopping_rule(seed, mode):
    """Fed the same results in the same order, both rules decide alike at every result (Tune's
    rule is told of completions only through results: it counts a completed trial's last result
    twice, ours once)."""
    ours = MedianStop(grace_period=2, min_samples_required=3)
    tunes = MedianStoppingRule(time_attr="training_iteration", grace_period=2, min_samples_required=3)
    for rule in (ours, tunes):
        assert rule.set_search_properties("acc", mode)
    controller, trials = _Controller(), {}
    stream = _stream(seed)
    decisions, stopped = [], False
    try:
        trial_id, result = next(stream)
        while True:
            trial = trials.setdefault(trial_id, _Trial(trial_id))
            ours_says = ours.on_trial_result(controller, trial, result)
            tunes_says = tunes.on_trial_result(controller, trial, result)
            decisions.append((trial_id, result["training_iteration"], ours_says, tunes_says))
            stopped = ours_says == TrialScheduler.STOP
            if stopped or result["done"]:
                ours.on_trial_complete(controller, trial, result)
            trial_id, result = stream.send(stopped)
    except StopIteration:
        pass
    assert [d[2] for d in decisions] == [d[3] for d in decisions], [d for d in decisions if d[2] != d[3]][:5]
    assert sum(d[2] == TrialScheduler.STOP for d in decisions) >= 5  # the comparison covered stops
    assert ours._running == {}  # ended trials leave nothing behind but their running averages


def test_a_nan_value_is_not_a_best_value():
    """NaN poisons a trial's running average (as in Tune's rule) but is never its best value;
    Tune's rule takes a first NaN as the best for good (``max([nan, 0.9])`` is NaN)."""
    rule = MedianStop(grace_period=1, min_samples_required=1)
    rule.set_search_properties("acc", "max")
    controller = _Controller()
    rule.on_trial_result(controller, _Trial("a"), {"training_iteration": 1, "acc": 0.5})
    b = _Trial("b")
    assert rule.on_trial_result(controller, b, {"training_iteration": 1, "acc": float("nan")}) == TrialScheduler.STOP
    c = _Trial("c")
    rule.on_trial_result(controller, c, {"training_iteration": 1, "acc": 0.9})
    assert len(rule._means_at[1]) == 2  # a and c; b's average is NaN
    rule.on_trial_result(controller, _Trial("d"), {"training_iteration": 1, "acc": 0.4})
    assert rule.on_trial_result(controller, c, {"training_iteration": 2, "acc": float("nan")}) == TrialScheduler.CONTINUE


def test_yields_to_waiting_trials_with_too_few_samples_as_tune_does():
    ours = MedianStop(grace_period=1, min_samples_required=2)
    tunes = MedianStoppingRule(time_attr="training_iteration", grace_period=1, min_samples_required=2)
    controller = _Controller()
    a, b = _Trial("a"), _Trial("b", status="PENDING")
    controller.live = [a, b]
    for rule in (ours, tunes):
        rule.set_search_properties("acc", "max")
        assert rule.on_trial_result(controller, a, {"training_iteration": 1, "acc": 0.5}) == TrialScheduler.PAUSE
        assert rule.on_trial_result(controller, a, {"training_iteration": 1, "acc": 0.5}) == TrialScheduler.CONTINUE


def test_it_holds_no_trial_and_a_float_per_step():
    """What stays after 2,000 trials of 5 steps: one running average per trial and step (8 bytes
    in an array), and no trial object (so Tune's controller may drop them)."""
    rule = MedianStop(grace_period=1, min_samples_required=3)
    rule.set_search_properties("acc", "max")
    controller, rng = _Controller(), random.Random(0)
    for i in range(2000):
        trial = _Trial(f"t{i}")
        for step in range(1, 6):
            decision = rule.on_trial_result(controller, trial, {"training_iteration": step, "acc": rng.random()})
            if decision == TrialScheduler.STOP:
                break
        rule.on_trial_complete(controller, trial, {})
    data = pickle.dumps(rule)
    assert b"_Trial" not in data and rule._running == {}
    kept = sum(len(means) for means in rule._means_at.values())
    assert 2000 <= kept <= 10_000 and len(data) < 10 * kept + 4096


def test_replay_of_a_journal_rebuilds_the_history():
    """A rule that replays the journal of the ended trials holds what the live rule held for them,
    and decides a new trial's results alike; a trial run again from a checkpoint reports a step
    twice (the last counts), one that had not ended is left out."""
    live = MedianStop(grace_period=2, min_samples_required=3)
    live.set_search_properties("acc", "min")
    controller, rng, events = _Controller(), random.Random(1), []
    for i in range(40):
        trial = _Trial(f"t{i}")
        events.append({"event": "start", "trial_id": trial.trial_id})
        for step in range(1, rng.randint(2, 7)):
            result = {"training_iteration": step, "acc": rng.random()}
            events.append({"event": "result", "trial_id": trial.trial_id, "result": result})
            if live.on_trial_result(controller, trial, result) == TrialScheduler.STOP:
                break
        live.on_trial_complete(controller, trial, result)
        events.append({"event": "complete" if i % 7 else "error", "trial_id": trial.trial_id, "result": result})
    events.insert(3, {"event": "result", "trial_id": "t0", "result": {"training_iteration": 1, "acc": 99.0}})  # replaced later
    events.append({"event": "result", "trial_id": "unended", "result": {"training_iteration": 3, "acc": 0.0}})
    replayed = MedianStop(grace_period=2, min_samples_required=3)  # as restored: no metric yet
    assert replayed.replay(events, "acc") == 40
    assert {t: list(m) for t, m in replayed._means_at.items()} == {t: list(m) for t, m in live._means_at.items()}
    replayed.set_search_properties("acc", "min")  # as Tune does when the resumed run starts
    new = _Trial("new")
    for step in range(1, 6):
        result = {"training_iteration": step, "acc": 0.4 + 0.1 * step}
        assert replayed.on_trial_result(controller, new, result) == live.on_trial_result(controller, _Trial("new"), result)
