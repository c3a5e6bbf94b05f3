"""Look a trainable up in Tune's registry once per experiment, not five times per trial.

Tune's registry keeps each trainable in Ray's GCS key-value store, and Tune's controller looks
the experiment's trainable up there five times for every trial it starts (``validate_trainable``
three times, ``get_trainable_cls`` twice), each a synchronous round trip to the GCS. On a busy
2-core node those round trips are a large part of the driver's cost per trial (measured in
``benchmarks/README.md``). Inside :func:`cached_trainable_lookups` the thread running ``fit()``
answers a repeated look-up from memory.

The registry has no public hook, so this replaces the ``contains`` and ``get`` methods of
Tune's process-wide registry (a private name, reached through :mod:`.tune_internals`), confined
as :mod:`.warm_actors` is (by :class:`.confined_patch.ConfinedPatch`):

* only while some ``fit()`` is inside the block, and only for the threads inside it; any other
  thread, and a look-up that finds nothing, goes to the GCS as before;
* ``register`` and ``unregister`` (anyone's) drop every remembered answer, so a trainable
  registered again under the same name is read afresh;
* if the private name is missing, it warns once and Tune looks up as it always did.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

from .confined_patch import ConfinedPatch
from .internals import trainable_registry

_local = threading.local()  # .memo, .generation: this thread's remembered answers, while in the block
_generation = 0  # bumped by every register/unregister: remembered answers older than it are stale


def _memo() -> dict[tuple[str, str], Any] | None:
    memo = getattr(_local, "memo", None)
    if memo is not None and _local.generation != _generation:
        memo.clear()
        _local.generation = _generation
    return memo


def _get(category: str, key: str) -> Any:
    memo = _memo()
    if memo is None:
        return _PATCH.original("get")(category, key)
    if (category, key) not in memo:
        memo[(category, key)] = _PATCH.original("get")(category, key)
    return memo[(category, key)]


def _contains(category: str, key: str) -> bool:
    memo = _memo()
    if memo is not None and (category, key) in memo:
        return True
    return _PATCH.original("contains")(category, key)


def _invalidating(name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        global _generation
        try:
            return _PATCH.original(name)(*args, **kwargs)
        finally:
            _generation += 1

    return call


_REPLACEMENTS: dict[str, Callable[..., Any]] = {
    "get": _get, "contains": _contains, "register": _invalidating("register"), "unregister": _invalidating("unregister"),
}


_PATCH = ConfinedPatch(lambda: trainable_registry(), _REPLACEMENTS, missing="Tune's trainable look-ups are not cached on this Ray ({reason})")


@contextlib.contextmanager
def cached_trainable_lookups() -> Iterator[None]:
    """Within this block, this thread's look-ups in Tune's trainable registry are remembered."""
    with _PATCH.applied(_local, memo={}, generation=_generation):
        yield
