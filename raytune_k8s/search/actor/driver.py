"""Searcher actors: an experiment's search algorithm runs in its own Ray actor.

Katib runs one suggestion service per experiment; we run one actor
(:class:`~raytune_k8s.search.actor.host.SearcherHost`), which hosts any Ray Tune
``Searcher`` (ours or a user's) and keeps suggestions ready ahead of the trials. The driver side,
:class:`ActorSearcher`, never waits on the algorithm nor on Ray while a trial is out: Tune's calls
take a ready suggestion or return None ("ask again"), and a courier thread carries results and
hand-outs to the actor, one round trip at a time. Only when no trial is out, where Tune would
sleep a second before asking again, does ``suggest`` wait up to that second for the answer.

Fault tolerance: the driver keeps the actor's latest snapshot plus every result it sent; if the
actor dies, a new one is restored from the snapshot and the results it had not yet folded in are
replayed, so no observation is lost. The same snapshot is what Tune saves with the experiment
(``save``/``restore``), so ``Tuner.restore`` (``raytune-k8s resume``) brings the searcher back too.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import weakref
from collections import deque
from concurrent.futures import Future
from typing import Any, Iterator

import cloudpickle
import ray
from ray.exceptions import RayActorError
from ray.tune.search import Searcher
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .host import KeySet, SearcherHost
from ..stateful import bytes_via_file
from ..._tune.internals import set_searcher_metric_mode

MAX_RESTARTS_IN_ROW = 3  # the actor died this often without answering once: give up
IDLE_WAIT_S = 1.0  # Tune's own sleep when the searcher has nothing and no trial is out


class ActorSearcher(Searcher):
    """Driver-side stand-in for a searcher that lives in a :class:`SearcherHost` actor.

    Tune's calls only touch local queues under a lock. A courier thread does all the talking to
    the actor (submitting a Ray task can take milliseconds on a busy machine): one round trip in
    flight at a time, a one-way report for what happens meanwhile, re-creating the actor if it
    dies. It holds the searcher weakly and ends with it.
    """

    def __init__(self, searcher: Searcher, *, prefetch: int, actor_options: dict[str, Any] | None = None,
                 first_here: bool = False):
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self._template = searcher
        self._prefetch = prefetch
        self._first_here = first_here  # start() makes the first suggestions in the driver
        self._actor_options = {"num_cpus": 0, **(actor_options or {})}
        self._snapshot: tuple[int, bytes, KeySet] | None = None
        self._results: dict[str, tuple[dict | None, bool]] = {}  # results not yet in a snapshot
        self._assigned: dict[str, str] = {}  # trial_id -> suggestion key
        self._ready: deque[tuple[str, dict]] = deque()
        self.restarts = 0
        self.round_trips = 0  # exchanges with the actor so far
        self._failures_in_row = 0
        self._init_runtime()

    def _init_runtime(self) -> None:
        _LIVE.add(self)
        self._lock = threading.Lock()  # guards what Tune's thread and the courier share
        self._host_lock = threading.Lock()  # one actor at a time, whichever thread asks
        self._wake = threading.Event()
        self._arrived = threading.Event()  # the courier took in an answer
        self._courier: threading.Thread | None = None
        self._closed = False
        self._actor: Any = None
        self._exchange: Future | None = None  # the round trip in flight (courier only)
        self._finished = False
        self._error: BaseException | None = None
        self._started = 0  # suggestions given to trials since the courier last looked
        self._outbox: list[tuple[str, dict | None, bool]] = []  # results since the courier last looked

    def start(self) -> None:
        """Start the actor now (Ray must be up), so its suggestions are computed while Tune sets
        up rather than after Tune first asks. With ``first_here`` (a searcher whose first
        suggestions are cheap draws, as every built-in algorithm's are), the first ``prefetch``
        are made here, so the first trials start while the actor's process is still starting."""
        if self._first_here and self._courier is None and self._snapshot is None:
            self._suggest_first_here()
        self._start_courier()

    def _suggest_first_here(self) -> None:
        """The searcher's first suggestions, made in the driver, and a snapshot of it after them
        (the form the actor's own snapshots take), from which the actor starts: it continues the
        same searcher, with those suggestions counted as handed out."""
        items: list[tuple[str, dict]] = []
        for index in range(self._prefetch):
            config = self._template.suggest(f"s{index}")
            if config is None or config == Searcher.FINISHED:
                break
            items.append((f"s{index}", config))
        if not items:
            return
        state = {"searcher": bytes_via_file(self._template.save), "folded": KeySet(), "next_key": len(items),
                 "finished": False, "undelivered": items}
        with self._lock:
            self._snapshot = (0, pickle.dumps(state), KeySet())
            self._ready.extend(items)
            self._arrived.set()

    def wait_for_suggestions(self, timeout: float) -> bool:
        """Block up to ``timeout`` s until the actor's first answer arrives (True if it did). For
        the driver before ``fit()``: Tune, finding no suggestion and nothing running, sleeps a
        whole second before it asks again."""
        self.start()
        return self._arrived.wait(timeout)

    def limit_prefetch(self, prefetch: int) -> None:
        """Keep at most ``prefetch`` suggestions ready (the experiment's effective parallelism)."""
        self._prefetch = max(1, min(self._prefetch, prefetch))

    # ---- Searcher API: Tune's thread, never a Ray call

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        ok = self._template.set_search_properties(metric, mode, config, **spec)
        set_searcher_metric_mode(self, self._template.metric, self._template.mode)
        if ok and ray.is_initialized():
            self._start_courier()  # the actor starts while Tune sets up, so the first suggestions are early
        return ok

    def suggest(self, trial_id: str) -> dict | str | None:  # type: ignore[override]  # Ray's Searcher.suggest leaves out its own FINISHED (a str)
        self._start_courier()
        with self._lock:
            # No trial of this search is out (none pending, running or paused): Tune, given
            # None, sleeps a whole second before it asks again. Wait that second here instead,
            # woken by the actor's answer; while any trial is out, never wait.
            idle = not self._ready and not self._assigned and not self._finished and self._error is None
            if idle:
                self._arrived.clear()
        if idle:
            self._wake.set()
            self._arrived.wait(IDLE_WAIT_S)
        with self._lock:
            if self._error is not None:
                raise self._error
            if not self._ready:
                return Searcher.FINISHED if self._finished else None
            key, config = self._ready.popleft()
            self._assigned[trial_id] = key
            self._started += 1
        self._wake.set()  # the actor computes the next suggestion while this trial runs
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        with self._lock:
            key = self._assigned.pop(trial_id, None)
            if key is None:
                return
            self._results[key] = (result, error)  # kept for replay until a snapshot holds it
            self._outbox.append((key, result, error))
        self._wake.set()

    # ---- the courier thread: the only caller of the actor during a search

    def _start_courier(self) -> None:
        if self._closed or self._error is not None:
            return
        if self._courier is None or not self._courier.is_alive():
            self._courier = threading.Thread(target=_courier_loop, args=(weakref.ref(self),), name="searcher-courier", daemon=True)
            self._courier.start()

    def _step(self) -> None:
        """Send what Tune reported, take in the round trip's answer if it is back, start the next."""
        with self._lock:
            started, outbox = self._started, self._outbox
            self._started, self._outbox = 0, []
        host = self._host()
        exchange = self._exchange
        if exchange is not None and not exchange.done():
            if started or outbox:  # the actor must hear now, not when the round trip is back
                host.report.remote(started, outbox)
            return
        if exchange is not None:
            self._exchange = None
            try:
                items, finished, snapshot, error = exchange.result()
            except RayActorError as lost:
                self._recover(lost)  # what was taken above is replayed from self._results
                return
            self._failures_in_row = 0
            with self._lock:
                if error:
                    self._error = RuntimeError(f"the search algorithm failed in its actor:\n{error}")
                    self._arrived.set()
                    return
                if snapshot is not None:
                    self._snapshot = snapshot
                    for key in [key for key in self._results if key in snapshot[2]]:
                        del self._results[key]  # folded into the snapshot: no replay needed
                self._ready.extend(items)
                self._finished = finished
                self._arrived.set()
        if self._finished and not (started or outbox):
            return  # a finished search answers at once: asking again with nothing to send would spin
        known = self._snapshot[0] if self._snapshot else -1
        exchange = host.exchange.remote(known, started, outbox).future()
        self.round_trips += 1
        exchange.add_done_callback(lambda _, wake=self._wake: wake.set())
        self._exchange = exchange

    def _host(self) -> Any:
        with self._host_lock:
            if self._actor is None:
                with self._lock:
                    version, snapshot = (self._snapshot[0], self._snapshot[1]) if self._snapshot else (0, None)
                    folded = self._snapshot[2] if self._snapshot else KeySet()
                    held = frozenset([key for key, _ in self._ready] + list(self._assigned.values()) + list(self._results))
                    unfolded = [(key, result, error) for key, (result, error) in self._results.items() if key not in folded]
                    buffered = len(self._ready)
                remote = ray.remote(SearcherHost).options(
                    **{"max_concurrency": 4, "max_restarts": 0, **self._placement(), **self._actor_options})
                self._actor = remote.remote(cloudpickle.dumps(self._template), self._prefetch, snapshot, version, buffered, held)
                if unfolded:  # results the lost actor had not folded in yet
                    self._actor.report.remote(0, unfolded)
            return self._actor

    def _placement(self) -> dict[str, Any]:
        """An actor that asks for no resources (the default) runs on the driver's node, the head
        in a RayJob: losing a worker node then takes trials, never the search, with it (and the
        head's loss ends the driver anyway). One that asks for resources goes where they are."""
        if any(self._actor_options.get(key) for key in ("num_cpus", "num_gpus", "memory", "resources")):
            return {}
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)}

    def _recover(self, lost: RayActorError) -> None:
        """Re-create the actor from the last snapshot the driver holds. Suggestions in it that never
        reached the driver are handed out by the new actor; those made after it are made again.
        The driver's ready suggestions stay valid: they came with that snapshot.

        An actor that dies again and again before answering (it cannot start: a missing module,
        too little memory) is an error, not something to retry forever.
        """
        self._failures_in_row += 1
        if self._failures_in_row > MAX_RESTARTS_IN_ROW:
            error = RuntimeError(f"the searcher actor died {self._failures_in_row} times in a row without answering; last cause: {lost}")
            error.__cause__ = lost
            with self._lock:
                self._error = error
            return
        self.restarts += 1
        with self._host_lock, self._lock:
            self._actor, self._finished = None, False
        self._host()

    def courier_turn(self) -> threading.Event | None:
        """One turn of the courier thread: exchange with the actor. Returns the event to wait on
        before the next turn, or None when the courier should end (closed, failed, no Ray)."""
        if self._closed or not ray.is_initialized():
            return None  # (a Ray call after the session ended would start a new local Ray)
        self._wake.clear()
        try:
            self._step()
        except Exception as exc:  # surfaced to Tune on its next suggest
            with self._lock:
                self._error = exc
            self._arrived.set()
            return None
        return None if self._error is not None else self._wake

    def close(self) -> None:
        """End the courier and the actor: the search is over (blocks briefly)."""
        self._closed = True
        self._wake.set()
        if self._courier is not None and self._courier is not threading.current_thread():
            self._courier.join(timeout=5)
        with self._host_lock:
            if self._actor is not None:
                ray.kill(self._actor, no_restart=True)
                self._actor = None

    # ---- for tests and benchmarks (these block)

    def observations(self) -> int:
        """How many results the actor's searcher has folded in. It trails Tune's reports by a
        round trip and the searcher thread's current suggestion: poll it."""
        self._wake.set()  # the courier sends what is waiting
        return ray.get(self._host().observations.remote())

    def thread_seconds(self) -> dict[str, float]:
        """Where the actor's searcher thread spent its time."""
        return ray.get(self._host().thread_seconds.remote())

    def kill_actor(self) -> None:
        """Kill the actor (for fault-injection tests); the courier re-creates it."""
        if self._actor is not None:
            ray.kill(self._actor, no_restart=True)

    # ---- saved with the experiment

    def save(self, checkpoint_path: str) -> None:
        with self._lock:
            state = {"snapshot": self._snapshot, "results": dict(self._results), "assigned": dict(self._assigned), "ready": list(self._ready)}
        from ...files import write_atomic

        write_atomic(checkpoint_path, pickle.dumps(state))  # whole or not at all: a resume reads it

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        with self._lock:
            self._snapshot, self._results, self._assigned = state["snapshot"], state["results"], state["assigned"]
            self._ready = deque(state.get("ready", ()))  # suggestions the saved snapshot already counts as pending

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in ("_lock", "_host_lock", "_wake", "_arrived", "_courier", "_actor", "_exchange"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return False


#: Every ActorSearcher of this process (see :func:`closing_searchers_created`).
_LIVE: "weakref.WeakSet[ActorSearcher]" = weakref.WeakSet()
COURIER_IDLE_S = 0.1  # the courier looks again after this long even if nothing woke it


def _courier_loop(ref: weakref.ref) -> None:
    """Run the searcher's courier turns until it closes; hold no reference between turns, so
    the searcher can be collected."""
    while True:
        searcher = ref()
        if searcher is None:
            return
        wake = searcher.courier_turn()
        del searcher
        if wake is None:
            return
        wake.wait(COURIER_IDLE_S)


@contextlib.contextmanager
def closing_searchers_created() -> Iterator[None]:
    """Close every :class:`ActorSearcher` created (or unpickled, as ``Tuner.restore`` does)
    inside the block when it ends: their actors must not outlive the experiment."""
    before = weakref.WeakSet(_LIVE)
    try:
        yield
    finally:
        for searcher in list(_LIVE):
            if searcher not in before:
                searcher.close()
