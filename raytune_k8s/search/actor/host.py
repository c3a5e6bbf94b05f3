"""The searcher actor's body: one Ray Tune ``Searcher``, a thread that suggests ahead, an inbox.

The actor keeps up to ``prefetch`` suggestions ready ahead of the trials, computes them on a
background thread while trials run, and folds results in as they arrive. After every change it
snapshots its searcher (``Searcher.save``), together with the suggestions it made that the
driver may not have yet; the snapshot rides back to the driver with the next suggestions. The
driver side is :class:`raytune_k8s.search.actor.driver.ActorSearcher`.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
import traceback
from collections import deque
from typing import Iterable

import cloudpickle
from ray.tune.search import Searcher

from ..stateful import bytes_via_file, load_via_file

EXCHANGE_WAIT_S = 0.5  # an exchange with nothing to hand out answers after this long

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


class KeySet:
    """The suggestion keys (``s0``, ``s1``, ...) whose results the searcher has folded in: every
    key below ``low``, plus the few above it that came back early. Results come back nearly in
    order, so it stays as small as the number of trials out at once, where a set of every key
    made each snapshot (two per trial) grow with the trial count."""

    __slots__ = ("low", "extra")

    def __init__(self, keys: Iterable[str] = ()):
        self.low = 0
        self.extra: set[str] = set()
        for key in keys:
            self.add(key)

    @staticmethod
    def _index(key: str) -> int | None:
        return int(key[1:]) if key[:1] == "s" and key[1:].isdigit() else None

    def __contains__(self, key: object) -> bool:
        index = self._index(key) if isinstance(key, str) else None
        return (index is not None and index < self.low) or key in self.extra

    def add(self, key: str) -> None:
        if key in self:
            return
        if self._index(key) != self.low:
            self.extra.add(key)
            return
        self.low += 1
        while f"s{self.low}" in self.extra:
            self.extra.discard(f"s{self.low}")
            self.low += 1

    def __len__(self) -> int:
        return self.low + len(self.extra)

    def copy(self) -> "KeySet":
        copied = KeySet()
        copied.low, copied.extra = self.low, set(self.extra)
        return copied

    def __getstate__(self) -> tuple[int, set[str]]:
        return self.low, self.extra

    def __setstate__(self, state: tuple[int, set[str]]) -> None:
        self.low, self.extra = state


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
        self._folded = KeySet()  # results folded in
        self._next_key = 0
        self._driver_buffered = driver_buffered  # handed to the driver, not yet given to a trial
        self._finished = False
        self._starved = False  # the searcher returned None: wait for a result before asking again
        self._error: str | None = None
        self._version = version  # continues the lost actor's count, so the driver sees every new snapshot
        self._snapshot: bytes | None = None
        self._snapshot_folded = KeySet()  # the results inside that snapshot
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
                with self._cv:
                    want = not (self._finished or self._full())
                # One snapshot per turn: the suggestion's, which also holds the results just folded
                # (a model's snapshot costs as much as a suggestion: Optuna's study pickles whole).
                if want:
                    self._suggest_one(folded=bool(inbox))
                elif inbox:
                    self._take_snapshot()
        except Exception:  # surfaced to the driver on its next exchange
            with self._cv:
                self._error = traceback.format_exc()
                self._cv.notify_all()

    def _full(self) -> bool:
        return len(self._ready) + self._driver_buffered >= self._prefetch

    def _suggest_one(self, folded: bool = False) -> None:
        """Ask the searcher for one suggestion and snapshot it (``folded``: results were folded in
        since the last snapshot, so take one even when the searcher has nothing to suggest)."""
        key = f"s{self._next_key}"
        self._next_key += 1
        started = time.perf_counter()
        config = self._searcher.suggest(key)
        self._thread_s["suggest"] += time.perf_counter() - started
        if config is None:
            self._starved = True
            if folded:
                self._take_snapshot()
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
            folded = self._folded.copy()
            state = {
                "searcher": searcher_state,
                "folded": folded,
                "next_key": self._next_key,
                "finished": self._finished if finished is None else finished,
                "undelivered": [*self._ready, *([made] if made else [])],
            }
            self._snapshot = pickle.dumps(state)
            self._snapshot_folded = folded
            self._version += 1
            self._thread_s["snapshot"] += time.perf_counter() - started

    def _load(self, snapshot: bytes, driver_keys: frozenset[str]) -> None:
        state = pickle.loads(snapshot)
        load_via_file(state["searcher"], self._searcher.restore)
        folded = state["folded"]  # a set in snapshots from before KeySet
        self._folded = folded.copy() if isinstance(folded, KeySet) else KeySet(folded)
        self._next_key = state["next_key"]
        self._finished = state["finished"]
        # Suggestions the searcher made (so counts as pending, or as a grid point walked) that
        # never reached the driver: hand them out now instead of losing them.
        self._ready.extend(item for item in state.get("undelivered", ()) if item[0] not in driver_keys)
