"""Each speed-up ``run()`` installs around Tune is in place, counted by what it saves (not by
time): one experiment through the public ``run()`` with counters on Tune's own code paths, and one
test per speed-up. Each of these fails when the runner stops installing that speed-up (checked
by taking each out of ``experiment/runner.py`` in a scratch copy):

* the queued FIFO scheduler (``_tune/fifo.py``): trial statuses the scheduler reads per choice;
* the warm trial-actor cache (``_tune/warm_actors.py``): trial actors started; a trial actor
  that is starting is not replaced by an idle one (trivial trials: both actors run trials);
* the trainable look-up cache (``_tune/registry_cache.py``): look-ups sent to Ray's GCS;
* skipping the result DataFrames (``_tune/unread_dataframes.py``): per-trial DataFrames built.

The searcher hands out trials in pairs and the next pair only once both results of the last one
are in, so both trial actors are idle together with nothing to run, whatever the timing: Tune's own
actor cache keeps one of them (every pair after the first starts a new actor), the warm cache
both."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import cloudpickle
import pytest
from ray.tune.search import Searcher

PAIRS = 5
TRIALS = 2 * PAIRS
PARALLEL = 2
TRIAL_S = 2.0  # longer than a trial actor takes to start: both trials of a pair run at once


class PairSearcher(Searcher):
    """Hands out trials in pairs, the next pair only once both results of the last one are in."""

    def __init__(self) -> None:
        super().__init__(metric="value", mode="min")
        self.made = 0
        self.done = 0

    def suggest(self, trial_id: str) -> dict | None:
        if self.made % 2 == 0 and self.done < self.made:
            return None  # the searcher actor asks again once a result comes in
        self.made += 1
        return {"x": 1.0, "y": float(self.made)}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.done += 1

    def save(self, path: str) -> None:
        Path(path).write_bytes(json.dumps([self.made, self.done]).encode())

    def restore(self, path: str) -> None:
        self.made, self.done = json.loads(Path(path).read_bytes())


cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Counters:
    def __init__(self) -> None:
        self.choices = 0  # choose_trial_to_run calls
        self.status_reads = 0  # trial statuses read inside them
        self.gcs_lookups: list[str] = []  # the trainable registry's get/contains that reached the GCS
        self.dataframes = 0  # per-trial DataFrames ExperimentAnalysis built
        self.actor_requests = 0  # new trial actors Tune's controller asked Ray for


def _install_counters(patch: pytest.MonkeyPatch, counters: Counters) -> None:
    from ray.tune.analysis.experiment_analysis import ExperimentAnalysis
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial
    from ray.tune.registry import _global_registry

    # Scheduler scans: every trial status read while Tune's controller asks its scheduler (whatever
    # scheduler the runner passed) which trial to run next.
    choosing = threading.local()

    def read_status(trial: Any) -> str:
        if getattr(choosing, "active", False):
            counters.status_reads += 1
        return trial.__dict__["status"]

    def write_status(trial: Any, value: str) -> None:
        trial.__dict__["status"] = value

    patch.setattr(Trial, "status", property(read_status, write_status), raising=False)
    original_init = TuneController.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        choose = self._scheduler_alg.choose_trial_to_run

        def counted_choose(controller: Any) -> Any:
            counters.choices += 1
            choosing.active = True
            try:
                return choose(controller)
            finally:
                choosing.active = False

        self._scheduler_alg.choose_trial_to_run = counted_choose
        add_actor = self._actor_manager.add_actor

        def counted_add_actor(*args: Any, **kwargs: Any) -> Any:
            counters.actor_requests += 1
            return add_actor(*args, **kwargs)

        self._actor_manager.add_actor = counted_add_actor

    patch.setattr(TuneController, "__init__", counting_init)

    # GCS look-ups: the registry's own methods (what the runner's cache calls when it has no answer).
    registry_class = type(_global_registry)
    for name in ("get", "contains"):
        original = getattr(registry_class, name)

        def counting(self: Any, category: str, key: str, _original: Any = original, _name: str = name) -> Any:
            counters.gcs_lookups.append(f"{_name} {category} {key}")
            return _original(self, category, key)

        patch.setattr(registry_class, name, counting)

    # DataFrames: Tune's per-trial loader, which its _fetch_trial_dataframes calls once per trial.
    original_fetch = ExperimentAnalysis._fetch_trial_dataframe

    def counting_fetch(self: Any, trial: Any) -> Any:
        counters.dataframes += 1
        return original_fetch(self, trial)

    patch.setattr(ExperimentAnalysis, "_fetch_trial_dataframe", counting_fetch)


@pytest.fixture(scope="module")
def counted_run(ray_head: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, Counters, Path]]:
    import ray

    from raytune_k8s import run

    if not ray.is_initialized():
        ray.init(address=ray_head.address, log_to_driver=False)
    storage = tmp_path_factory.mktemp("speedups")
    spec = {
        "name": "speedups",
        "objective": {"type": "minimize", "objectiveMetricName": "value"},
        "algorithm": {"algorithmName": "random"},
        "parameters": [{"name": name, "parameterType": "double", "feasibleSpace": {"min": 0, "max": 20}} for name in "xy"],
        "parallelTrialCount": PARALLEL,
        "maxTrialCount": TRIALS,
        "trial": {"trainable": "branin", "resources": {"cpu": 1}, "fixedParameters": {"sleep": TRIAL_S}},
    }
    counters = Counters()
    with pytest.MonkeyPatch.context() as patch:
        _install_counters(patch, counters)
        summary = run(spec, storage_path=storage, searcher=PairSearcher(), report=False)
    print(f"{TRIALS} trials: {counters.choices} scheduler choices reading {counters.status_reads} statuses, "
          f"{len(counters.gcs_lookups)} GCS look-ups, {counters.dataframes} DataFrames, "
          f"{counters.actor_requests} trial actors requested, {len(_trial_pids(storage / 'speedups'))} ran trials")
    yield summary, counters, storage / "speedups"


def _trial_pids(experiment_dir: Path) -> set[int]:
    """The worker processes the trials ran in (Tune adds ``pid`` to every result): one per actor."""
    pids = set()
    for path in experiment_dir.glob("*/result.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                pids.add(json.loads(line)["pid"])
    return pids


def test_the_run_itself_finished_every_trial(counted_run):
    summary, _, experiment_dir = counted_run
    assert summary["status"] == "Succeeded" and summary["trials"] == TRIALS, summary["reason"]
    assert len(list(experiment_dir.glob("*/result.json"))) == TRIALS


def test_the_queued_fifo_scheduler_reads_only_the_trials_not_yet_ended(counted_run):
    """Tune's FIFOScheduler reads every trial's status at every choice (twice when none waits);
    the queue reads the running and waiting ones, and each ended one once, when it drops it."""
    _, counters, _ = counted_run
    assert counters.choices > TRIALS
    assert counters.status_reads <= counters.choices * (PARALLEL + 1) + TRIALS, \
        f"{counters.status_reads} statuses read in {counters.choices} choices"


def test_warm_trial_actors_run_every_pair_in_the_first_two_actors(counted_run):
    """Tune's own cache keeps one idle actor when a pair ends (the other is stopped before the
    next pair exists), so each pair after the first asks Ray for a new actor: PARALLEL + PAIRS - 1
    in all. Kept warm, the first pair's two actors run every pair (one more if a trial of the first
    pair ended before the other's actor had started, and that actor took over)."""
    _, counters, experiment_dir = counted_run
    assert counters.actor_requests <= PARALLEL + 1 < PARALLEL + PAIRS - 1, \
        f"{counters.actor_requests} trial actors requested for {PAIRS} pairs"
    assert len(_trial_pids(experiment_dir)) <= counters.actor_requests


def test_trials_shorter_than_an_actor_start_still_run_on_parallel_actors(ray_connected, tmp_path):
    """Trivial trials at P=2: Tune handed each pending trial the idle actor of the trial that had
    just ended and killed the actor starting for it, so one actor ran every trial while new ones
    started and died (measured: 598 actors asked of Ray for 600 trials, 7 processes, one ran all).
    Starting actors are let start: the two run the trials, and Ray is asked for two actors."""
    from raytune_k8s import run

    counters = Counters()
    spec = {
        "name": "trivial", "objective": {"type": "minimize", "objectiveMetricName": "value"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 0}]},
        "parameters": [{"name": name, "parameterType": "double", "feasibleSpace": {"min": 0, "max": 20}} for name in "xy"],
        "parallelTrialCount": PARALLEL, "maxTrialCount": 150, "trial": {"trainable": "branin", "resources": {"cpu": 1}},
    }
    with pytest.MonkeyPatch.context() as patch:
        _install_counters(patch, counters)
        summary = run(spec, storage_path=tmp_path, report=False)
    assert summary["trials"] == 150
    pids = _trial_pids(tmp_path / "trivial")
    assert counters.actor_requests <= PARALLEL + 1, f"{counters.actor_requests} trial actors asked for 150 trials"
    assert len(pids) == PARALLEL, pids


def test_the_trainable_is_looked_up_in_the_gcs_a_few_times_per_fit_not_per_trial(counted_run):
    """Tune looks the trainable up about five times per trial it starts (three per actor start)."""
    _, counters, _ = counted_run
    assert 0 < len(counters.gcs_lookups) < TRIALS, counters.gcs_lookups


def test_no_result_dataframe_is_built_for_the_grid_run_drops(counted_run):
    _, counters, _ = counted_run
    assert counters.dataframes == 0
