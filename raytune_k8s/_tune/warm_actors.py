"""Keep finished trials' actors warm while the searcher has no suggestion ready.

With ``reuse_actors=True`` Ray Tune caches a finished trial's actor only if a trial is already
waiting for one, plus at most one spare. That suits a searcher that answers at once (in the
driver). A searcher in its own actor answers "ask again" while it computes; Tune then stops
every idle trial actor but one, and when the suggestions arrive it starts new worker processes
(seconds each on a busy node), so freed slots wait longer than with a blocking searcher
(measured: median 3.3 s against 0.27 s with warm actors, 60 BO trials, parallelism 4).

Tune also hands an idle cached actor to a trial whose own new actor is already starting, and
kills that one: with trials shorter than an actor's start (seconds), the first actor to start
took every trial and each later one was killed while starting, again and again. The experiment
ran one trial at a time, another CPU busy starting processes (measured: 7 trial-actor processes
for 600 trivial trials at P=2, one of which ran them all). A trial whose own actor was launched
waits for it here; an idle actor serves a trial that has none yet.

Tune has no public setting for its actor cache, so this leans on private names (all reached
through :mod:`.internals`): Tune's cache class, which :func:`cache_class` extends, the factory
of it that Tune's controller module builds its cache from, and the controller's method that
reuses a cached actor, which :func:`_reuse_unless_own_actor_launched` wraps. It is confined:

* imported only by :func:`warm_trial_actors`, and when either name is missing it warns once and
  Tune keeps its own cache (trials still run; idle actors are just not kept);
* the controller's factory is replaced (by :class:`.confined_patch.ConfinedPatch`) only while
  some ``fit()`` is inside the block, and the replacement hands the larger cache only to a
  controller built in a thread that is inside the block (Tune builds it in the thread calling
  ``fit()``): other experiments in the process get Tune's own cache, and two experiments in two
  threads run at once, not one after the other.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Iterator

from .confined_patch import ConfinedPatch
from .internals import (CONTROLLER_CACHE_FACTORY, CONTROLLER_REUSE_CACHED, controller_class, controller_module,
                        object_cache_base, own_actor_launched)

_local = threading.local()  # .limit: this thread's experiment's limit, while in the block


@functools.cache
def cache_class() -> type:
    """The cache class, built on first use (Tune's private base class is imported only then):
    ``cache_class()(limit)`` is a cache for one controller."""

    class _WarmActorCache(object_cache_base()):  # type: ignore[misc]  # Tune's private base, found only at run time
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

    return _WarmActorCache


def _factory(may_keep_one: bool = True) -> Any:
    """What Tune's controller calls for its cache: ours in a thread inside the block, else Tune's."""
    limit = getattr(_local, "limit", None)
    if limit is None:
        return _PATCH.original(CONTROLLER_CACHE_FACTORY)(may_keep_one=may_keep_one)
    return cache_class()(limit, may_keep_one)


def _controller_module() -> Any:
    """Tune's controller module, whose cache factory is replaced (Tune's private cache base
    class must import too)."""
    cache_class()
    return controller_module()


_PATCH = ConfinedPatch(
    _controller_module, {CONTROLLER_CACHE_FACTORY: _factory},
    missing="trial actors are not kept warm on this Ray ({reason}); Tune's own actor cache is used",
)


def _reuse_unless_own_actor_launched(controller: Any, trial: Any) -> bool:
    """Tune's reuse of a cached actor for ``trial``, except (in a thread inside the block) when
    the actor scheduled for the trial is already launched: the trial waits for it."""
    if getattr(_local, "limit", None) is not None and own_actor_launched(controller, trial):
        return False
    return bool(_REUSE_PATCH.original(CONTROLLER_REUSE_CACHED)(controller, trial))


_REUSE_PATCH = ConfinedPatch(
    controller_class, {CONTROLLER_REUSE_CACHED: _reuse_unless_own_actor_launched},
    missing="a starting trial actor may be replaced by an idle one on this Ray ({reason})",
)


@contextlib.contextmanager
def warm_trial_actors(limit: int) -> Iterator[None]:
    """Within this block, a Tune experiment started in this thread keeps up to ``limit`` idle
    trial actors for reuse (Tune reads the factory once, when ``fit()`` builds its controller),
    and lets the actors it launched start rather than replace them by idle ones."""
    with _PATCH.applied(_local, limit=limit), _REUSE_PATCH.applied():
        yield
