"""Trial ids that do not collide in an experiment of 100,000 trials.

Tune names a trial by 8 random hex digits (``Trial.generate_id``: the start of a uuid4). Among
n trials two share an id with probability about 1 - exp(-n^2 / 2^33): 1 % at 10,000 trials,
69 % at 100,000. Everything keyed by the id (the journal, the searcher actor's suggestions,
the retired trials, the summary) would take two such trials for one; a 100,000-trial run here
ended with 99,999 trials in its summary. Inside :func:`unique_trial_ids`, the thread running
``fit()`` gets ids of the same form that count up from a random start: distinct for 2^32 trials
of one run. A resumed run starts again at random; two runs of n1 and n2 trials overlap with
probability about (n1 + n2) / 2^32 (2e-5 at 100,000), and a start whose first ids are taken is
drawn again.

``Trial.generate_id`` has no hook: it is replaced as :mod:`.registry_cache` replaces its names
(:class:`.confined_patch.ConfinedPatch`: only for the threads inside the block; others, and
every thread once no block is open, get Tune's own).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from typing import Any, Container, Iterator

from .confined_patch import ConfinedPatch

_local = threading.local()  # .next: this thread's next id, while in the block


def _generate_id(cls: Any) -> str:
    value = getattr(_local, "next", None)
    if value is None:
        return _PATCH.original("generate_id")()
    _local.next = (value + 1) % 2**32
    return f"{value:08x}"


def _trial_class() -> Any:
    from ray.tune.experiment import Trial

    return Trial


_PATCH = ConfinedPatch(_trial_class, {"generate_id": classmethod(_generate_id)},
                       missing="Tune's trial ids stay random on this Ray ({reason})")


def random_start(taken: Container[str] = (), span: int = 1000) -> int:
    """A random first id whose first ``span`` ids are not in ``taken``."""
    while True:
        start = secrets.randbelow(2**32)
        if not any(f"{(start + i) % 2**32:08x}" in taken for i in range(span)):
            return start


@contextlib.contextmanager
def unique_trial_ids(taken: Container[str] = ()) -> Iterator[None]:
    """Within this block, this thread's new trials get consecutive ids from a random start
    (avoiding the first thousand of ``taken``: a resumed experiment's ids)."""
    with _PATCH.applied(_local, next=random_start(taken)):
        yield
