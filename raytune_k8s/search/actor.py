"""Searcher actors: an experiment's search algorithm runs in its own Ray actor.

Katib runs one suggestion service per experiment; we run one actor. The actor hosts any Ray
Tune ``Searcher`` (ours or a user's), keeps up to ``prefetch`` suggestions ready ahead of the
trials, computes them on a background thread while trials run, and folds results in as they
arrive. The driver side, :class:`ActorSearcher`, never waits on the algorithm: each call reads
the answer of the one round trip in flight (if it is back) and starts the next, which carries
the results and hand-outs since the last one; ``suggest`` returns a ready suggestion or None
("ask again").

Fault tolerance: after every change the actor snapshots its searcher (``Searcher.save``) and
the snapshot rides back to the driver with the next suggestions. The driver keeps the latest
snapshot plus every result it sent; if the actor dies, a new one is restored from the snapshot
and the results it had not yet folded in are replayed, so no observation is lost. The same
snapshot is what Tune saves with the experiment (``save``/``restore``), so ``Tuner.restore``
(``raytune-k8s resume``) brings the searcher back too."""

from __future__ import annotations

import os
import pickle
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Future
from typing import Any

import cloudpickle
import ray
from ray.exceptions import RayActorError
from ray.tune.search import Searcher

from .stateful import bytes_via_file, load_via_file

EXCHANGE_WAIT_S = 0.5  # an exchange with nothing to hand out answers after this long
MAX_RESTARTS_IN_ROW = 3  # the actor died this often without answering once: give up


SEARCHER_NICENESS = 5  # between the driver (0), whose calls must stay short, and the trials (Ray's 15)


def _raise_priority() -> None:
    """Ray starts workers at niceness 15 (``worker_niceness``) so that its own processes win the
    CPU. The searcher is on every trial's critical path, so it asks for more than the trials get,
    though less than the driver; without the privilege (a non-root pod) it stays as it is."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) > SEARCHER_NICENESS:
            os.setpriority(os.PRIO_PROCESS, 0, SEARCHER_NICENESS)
    except OSError:
        pass


class SearcherHost:
    """The actor body: one searcher, a background suggestion thread, an inbox of results."""

    def __init__(
        self,
        searcher_bytes: bytes,
        prefetch: int,
        snapshot: bytes | None = None,
        version: int = 0,
        driver_buffered: int = 0,
        driver_keys: frozenset[str] = frozenset(),
    ):
        self._searcher: Searcher = cloudpickle.loads(searcher_bytes)
        self._prefetch = max(1, prefetch)
        self._cv = threading.Condition()
        self._ready: deque[tuple[str, dict]] = deque()
        self._inbox: deque[tuple[str, dict | None, bool]] = deque()
        self._folded: set[str] = set()  # results folded in
        self._next_key = 0
        self._driver_buffered = driver_buffered  # handed to the driver, not yet given to a trial
        self._finished = False
        self._starved = False  # the searcher returned None: wait for a result before asking again
        self._error: str | None = None
        self._version = version  # continues the lost actor's count, so the driver sees every new snapshot
        self._snapshot: bytes | None = None
        self._snapshot_folded: frozenset[str] = frozenset()  # the results inside that snapshot
        self._thread_s = {"suggest": 0.0, "fold": 0.0, "snapshot": 0.0, "waiting": 0.0}  # where the searcher thread's time went
        if snapshot is not None:
            self._load(snapshot, driver_keys)
        self._take_snapshot()
        _raise_priority()
        threading.Thread(target=self._loop, name="searcher", daemon=True).start()

    # ---- called by the driver (short, never wait for the searcher)

    def exchange(
        self, known_version: int, started: int = 0, results: list[tuple[str, dict | None, bool]] | None = None
    ) -> tuple[list, bool, tuple | None, str | None]:
        """One round trip with the driver: it reports how many suggestions it gave to trials
        since the last exchange and the results that came back; it gets the ready suggestions,
        whether the search is finished, a newer snapshot and any error.

        Answers as soon as there is a suggestion (or the search ended), else after
        ``EXCHANGE_WAIT_S``: the driver reads the answer from a future and never waits, and
        while nothing is ready it is not polling the actor in a loop.
        """
        with self._cv:
            self._take_report(started, results)
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._ready or self._finished or self._error, timeout=EXCHANGE_WAIT_S)
            items = list(self._ready)
            self._ready.clear()
            self._driver_buffered += len(items)
            self._cv.notify_all()
            snapshot = None if self._version == known_version else (self._version, self._snapshot, self._snapshot_folded)
            return items, self._finished, snapshot, self._error

    def report(self, started: int, results: list[tuple[str, dict | None, bool]]) -> None:
        """Hand-outs and results sent while a round trip was still in flight."""
        with self._cv:
            self._take_report(started, results)
            self._cv.notify_all()

    def _take_report(self, started: int, results: list[tuple[str, dict | None, bool]] | None) -> None:
        self._driver_buffered = max(0, self._driver_buffered - started)
        self._inbox.extend(results or ())

    def observations(self) -> int:
        """How many trial results the searcher has been given."""
        with self._cv:
            return len(self._folded)

    def thread_seconds(self) -> dict[str, float]:
        """Seconds the searcher thread spent suggesting, folding results in, snapshotting and waiting."""
        with self._cv:
            return dict(self._thread_s)

    # ---- the background thread: the only caller of the searcher

    def _loop(self) -> None:
        try:
            while True:
                with self._cv:
                    waited = time.perf_counter()
                    while not self._inbox and (self._finished or self._starved or self._full()):
                        self._cv.wait()
                    self._thread_s["waiting"] += time.perf_counter() - waited
                    inbox = list(self._inbox)
                    self._inbox.clear()
                started = time.perf_counter()
                for key, result, error in inbox:
                    if key not in self._folded:
                        self._searcher.on_trial_complete(key, result=result, error=error)
                        self._folded.add(key)
                self._thread_s["fold"] += time.perf_counter() - started
                if inbox:
                    self._starved = False
                    self._take_snapshot()
                with self._cv:
                    want = not (self._finished or self._full())
                if want:
                    self._suggest_one()
        except Exception:  # surfaced to the driver on its next exchange
            with self._cv:
                self._error = traceback.format_exc()
                self._cv.notify_all()

    def _full(self) -> bool:
        return len(self._ready) + self._driver_buffered >= self._prefetch

    def _suggest_one(self) -> None:
        key = f"s{self._next_key}"
        self._next_key += 1
        started = time.perf_counter()
        config = self._searcher.suggest(key)
        self._thread_s["suggest"] += time.perf_counter() - started
        if config is None:
            self._starved = True
            return
        finished = config == Searcher.FINISHED
        self._take_snapshot(finished=finished, made=None if finished else (key, config))
        with self._cv:
            if config == Searcher.FINISHED:
                self._finished = True
            else:
                self._ready.append((key, config))
            self._cv.notify_all()

    # ---- state

    def _take_snapshot(self, finished: bool | None = None, made: tuple[str, dict] | None = None) -> None:
        """Save the searcher with what it made but the driver may not have yet (``made`` is the
        suggestion about to join the ready queue)."""
        started = time.perf_counter()
        searcher_state = bytes_via_file(self._searcher.save)
        with self._cv:
            state = {
                "searcher": searcher_state,
                "folded": set(self._folded),
                "next_key": self._next_key,
                "finished": self._finished if finished is None else finished,
                "undelivered": [*self._ready, *([made] if made else [])],
            }
            self._snapshot = pickle.dumps(state)
            self._snapshot_folded = frozenset(state["folded"])
            self._version += 1
            self._thread_s["snapshot"] += time.perf_counter() - started

    def _load(self, snapshot: bytes, driver_keys: frozenset[str]) -> None:
        state = pickle.loads(snapshot)
        load_via_file(state["searcher"], self._searcher.restore)
        self._folded = set(state["folded"])
        self._next_key = state["next_key"]
        self._finished = state["finished"]
        # Suggestions the searcher made (so counts as pending, or as a grid point walked) that
        # never reached the driver: hand them out now instead of losing them.
        self._ready.extend(item for item in state.get("undelivered", ()) if item[0] not in driver_keys)


class ActorSearcher(Searcher):
    """Driver-side stand-in for a searcher that lives in a :class:`SearcherHost` actor."""

    def __init__(self, searcher: Searcher, *, prefetch: int, actor_options: dict[str, Any] | None = None):
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self._template = searcher
        self._prefetch = prefetch
        self._actor_options = {"num_cpus": 0, **(actor_options or {})}
        self._reset_runtime()
        self._snapshot: tuple[int, bytes, frozenset] | None = None
        self._results: dict[str, tuple[dict | None, bool]] = {}  # results not yet in a snapshot
        self._assigned: dict[str, str] = {}  # trial_id -> suggestion key
        self.restarts = 0
        self._failures_in_row = 0

    def limit_prefetch(self, prefetch: int) -> None:
        """Keep at most ``prefetch`` suggestions ready (the experiment's effective parallelism)."""
        self._prefetch = max(1, min(self._prefetch, prefetch))

    def _reset_runtime(self) -> None:
        self._actor: Any = None
        self._exchange: Future | None = None  # the round trip in flight
        self._ready: deque[tuple[str, dict]] = deque()
        self._finished = False
        self._started = 0  # suggestions given to trials since the last exchange
        self._outbox: list[tuple[str, dict | None, bool]] = []  # results since the last exchange

    # ---- Searcher API

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        ok = self._template.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self._template.metric, self._template.mode
        if ok and ray.is_initialized():
            self._poll()  # start the actor while Tune sets up, so the first suggestions are early
        return ok

    def suggest(self, trial_id: str) -> dict | str | None:
        self._poll()
        if not self._ready:
            return Searcher.FINISHED if self._finished else None
        key, config = self._ready.popleft()
        self._assigned[trial_id] = key
        self._started += 1
        self._poll()  # tell the actor now, so it computes the next suggestion while trials run
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self._assigned.pop(trial_id, None)
        if key is None:
            return
        self._results[key] = (result, error)
        # Sent with the next suggest call, which Tune makes right away for the freed slot
        # (one message for the result and the next hand-out); observations() and a restart
        # flush or replay it otherwise.
        self._outbox.append((key, result, error))

    # ---- talking to the actor

    def _host(self) -> Any:
        if self._actor is None:
            version, snapshot = (self._snapshot[0], self._snapshot[1]) if self._snapshot else (0, None)
            remote = ray.remote(max_concurrency=4, max_restarts=0)(SearcherHost).options(**self._actor_options)
            held = frozenset([key for key, _ in self._ready] + list(self._assigned.values()) + list(self._results))
            self._actor = remote.remote(cloudpickle.dumps(self._template), self._prefetch, snapshot, version, len(self._ready), held)
            folded = self._snapshot[2] if self._snapshot else frozenset()
            unfolded = [(key, result, error) for key, (result, error) in self._results.items() if key not in folded]
            if unfolded:  # results the lost actor had not folded in yet
                self._actor.report.remote(0, unfolded)
        return self._actor

    def _poll(self) -> None:
        """Take in the answer of the round trip in flight (if it is back), then start the next one.

        Never waits: at most one round trip is in flight, and its answer is read from a future;
        what the actor must know meanwhile (hand-outs, results) goes as a one-way report.
        """
        host = self._host()
        if self._exchange is not None:
            if not self._exchange.done():
                if self._started or self._outbox:  # the actor must hear now, not at the next call
                    host.report.remote(self._started, self._outbox)
                    self._started, self._outbox = 0, []
                return
            try:
                items, finished, snapshot, error = self._exchange.result()
            except RayActorError as lost:
                self._recover(lost)
                return
            finally:
                self._exchange = None
            self._failures_in_row = 0
            if error:
                raise RuntimeError(f"the search algorithm failed in its actor:\n{error}")
            if snapshot is not None:
                self._snapshot = snapshot
                for key in snapshot[2]:  # folded into the snapshot: no replay needed
                    self._results.pop(key, None)
            self._ready.extend(items)
            self._finished = finished
        known = self._snapshot[0] if self._snapshot else -1
        self._exchange = host.exchange.remote(known, self._started, self._outbox).future()
        self._started, self._outbox = 0, []

    def _recover(self, lost: RayActorError) -> None:
        """Re-create the actor from the last snapshot the driver holds. Suggestions in it that never
        reached the driver are handed out by the new actor; those made after it are made again.

        An actor that dies again and again before answering (it cannot start: a missing module,
        too little memory) is an error, not something to retry forever.
        """
        self._failures_in_row += 1
        if self._failures_in_row > MAX_RESTARTS_IN_ROW:
            raise RuntimeError(
                f"the searcher actor died {self._failures_in_row} times in a row without answering; "
                f"last cause: {lost}"
            ) from lost
        self.restarts += 1
        # Suggestions the driver holds came with the snapshot it holds: they stay valid.
        ready = self._ready
        self._reset_runtime()
        self._ready = ready
        self._host()

    def observations(self) -> int:
        """How many results the actor's searcher holds (blocks; for tests and benchmarks)."""
        self._poll()  # hand over results still waiting for a round trip
        return ray.get(self._host().observations.remote())

    def thread_seconds(self) -> dict[str, float]:
        """Where the actor's searcher thread spent its time (blocks; for benchmarks)."""
        return ray.get(self._host().thread_seconds.remote())

    def kill_actor(self) -> None:
        """Kill the actor (for fault-injection tests); the next call re-creates it."""
        if self._actor is not None:
            ray.kill(self._actor, no_restart=True)

    # ---- saved with the experiment

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            state = {"snapshot": self._snapshot, "results": self._results, "assigned": self._assigned, "ready": list(self._ready)}
            pickle.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self._snapshot, self._results, self._assigned = state["snapshot"], state["results"], state["assigned"]
        self._reset_runtime()
        self._ready.extend(state.get("ready", ()))  # suggestions the saved snapshot already counts as pending

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_actor=None, _exchange=None)
        return state

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return False
