"""Keep finished trials' actors warm while the searcher has no suggestion ready.

With ``reuse_actors=True`` Ray Tune caches a finished trial's actor only if a trial is already
waiting for one, plus at most one spare. That suits a searcher that answers at once (in the
driver). A searcher in its own actor answers "ask again" while it computes; Tune then stops
every idle trial actor but one, and when the suggestions arrive it starts new worker processes
(seconds each on a busy node), so freed slots wait longer than with a blocking searcher
(measured: median 3.3 s against 0.27 s with warm actors, 60 BO trials, parallelism 4).

:func:`warm_trial_actors` keeps up to ``limit`` idle actors (the experiment's parallelism) for as
long as the search is not finished. They hold only the resources their slots hold anyway;
Tune still releases all of them when the search ends, and still evicts them when a staged
trial needs different resources.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

from ray.tune.execution import tune_controller
from ray.tune.utils.object_cache import _ObjectCache


class WarmActorCache(_ObjectCache):
    """Tune's actor cache, keeping up to ``limit`` idle actors instead of one."""

    def __init__(self, limit: int, may_keep_one: bool = True):
        super().__init__(may_keep_one=may_keep_one)
        self._limit = max(1, limit)

    def _expects_other(self, key: Any) -> bool:
        """A staged trial waits for resources of another shape."""
        return any(count > 0 for other, count in self._max_num_objects.items() if other != key)

    def cache_object(self, key: Any, obj: Any) -> bool:
        if super().cache_object(key, obj):
            return True
        if self._num_cached_objects >= self._limit or self._expects_other(key):
            return False
        self._cached_objects[key].append(obj)
        self._num_cached_objects += 1
        return True

    def flush_cached_objects(self, force_all: bool = False) -> Iterator[Any]:
        if force_all or any(self._expects_other(key) for key, objs in self._cached_objects.items() if objs):
            yield from super().flush_cached_objects(force_all=force_all)
            return
        for objs in self._cached_objects.values():
            while objs and self._num_cached_objects > self._limit:
                self._num_cached_objects -= 1
                yield objs.pop(0)


_lock = threading.RLock()  # Tune reads the factory once, when its controller is built


@contextlib.contextmanager
def warm_trial_actors(limit: int) -> Iterator[None]:
    """Within this block, Tune experiments keep up to ``limit`` idle trial actors for reuse."""
    with _lock:
        original = tune_controller._ObjectCache
        tune_controller._ObjectCache = lambda may_keep_one=True: WarmActorCache(limit, may_keep_one)  # type: ignore[misc]
        try:
            yield
        finally:
            tune_controller._ObjectCache = original  # type: ignore[misc]
