"""Replace attributes of a private Ray Tune object, only while some block needs it.

Tune has no public hook for two things the driver does (:mod:`.warm_actors`,
:mod:`.registry_cache`); each replaces a private name, and both confine the swap the same way,
which this module holds:

* the names are replaced when the first block opens and put back when the last one closes (a
  reference count, so two experiments in two threads nest in any order);
* a name that was the object's own attribute is set back; one it had from its class is deleted
  again, so the class's shows through as before;
* if the object or a name is missing (another Ray release), it warns once and the block runs
  with nothing replaced.

A replacement that should serve only the threads inside a block reads a thread-local, which
:meth:`ConfinedPatch.applied` sets for the block's thread and puts back at its end.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from typing import Any, Callable, Iterator


class ConfinedPatch:
    """``replacements`` (name -> value) set on ``target()`` while any :meth:`applied` block is
    open. ``missing`` is the warning, with ``{reason}``, given once when they cannot be set."""

    def __init__(self, target: Callable[[], Any], replacements: dict[str, Any], missing: str):
        self._target = target
        self._replacements = replacements
        self._missing = missing
        self._lock = threading.Lock()  # guards the count and the swap (held for microseconds)
        self._active = 0
        self._object: Any = None
        self._originals: dict[str, Any] = {}
        self._own: set[str] = set()  # replaced names that were the object's own attributes
        self.warned = False

    def original(self, name: str) -> Any:
        """What ``name`` was before the swap (only while a block is open)."""
        return self._originals[name]

    @contextlib.contextmanager
    def applied(self, local: threading.local | None = None, **values: Any) -> Iterator[bool]:
        """Within this block the replacements are in place, and ``local`` has ``values`` in this
        thread (each put back as it was, or None, at the end); yields False (after warning
        once, setting nothing) when the replacements could not be made."""
        try:
            target = self._target()
            for name in self._replacements:
                getattr(target, name)
        except (ImportError, AttributeError) as missing:
            if not self.warned:
                self.warned = True
                warnings.warn(self._missing.format(reason=missing), RuntimeWarning, stacklevel=4)
            yield False
            return
        with self._lock:
            if self._active == 0:
                self._object = target
                for name, replacement in self._replacements.items():
                    self._originals[name] = getattr(target, name)
                    if name in vars(target):
                        self._own.add(name)
                    setattr(target, name, replacement)
            self._active += 1
        outer = {name: getattr(local, name, None) for name in values}
        for name, value in values.items():
            setattr(local, name, value)
        try:
            yield True
        finally:
            for name, value in outer.items():
                setattr(local, name, value)
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    for name in self._replacements:
                        if name in self._own:
                            setattr(self._object, name, self._originals[name])
                        else:
                            delattr(self._object, name)
                    self._object = None
                    self._originals.clear()
                    self._own.clear()
