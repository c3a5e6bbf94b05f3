"""Skip the per-trial DataFrames Tune builds at the end of ``fit()`` for a result grid ``run``
never reads.

At the end of ``fit()`` Tune builds an ``ExperimentAnalysis`` that reads every trial's
``result.json`` into a pandas DataFrame (2.2 s in a profile of 1,000 trivial trials, about 2 ms
per trial) for the ``ResultGrid`` that ``fit()`` returns. ``run`` drops that grid: its summary
reads the experiment directory itself (:mod:`.summary`), and resume reads Tune's saved state.
Inside :func:`skipping_trial_dataframes`, an analysis built in this thread has no DataFrames
(each ``Result.metrics_dataframe`` is None); the rest of the grid is as before.

Tune has no setting for it, so this replaces a private method of ``ExperimentAnalysis``
(:data:`.tune_internals.ANALYSIS_DATAFRAMES`), confined as :mod:`.warm_actors` is (by
:class:`.confined_patch.ConfinedPatch`): only while some ``fit()`` is inside the block, only for
the threads inside it, and with one warning and nothing skipped if the name is missing.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

from .confined_patch import ConfinedPatch
from .internals import ANALYSIS_DATAFRAMES, experiment_analysis_class

_local = threading.local()  # .skip: True while this thread is inside the block


def _fetch_trial_dataframes(self: Any) -> dict[str, Any]:
    if getattr(_local, "skip", False):
        return {}
    return _PATCH.original(ANALYSIS_DATAFRAMES)(self)


_PATCH = ConfinedPatch(
    experiment_analysis_class, {ANALYSIS_DATAFRAMES: _fetch_trial_dataframes},
    missing="Tune's per-trial DataFrames are built as always on this Ray ({reason})",
)


@contextlib.contextmanager
def skipping_trial_dataframes() -> Iterator[None]:
    """Within this block, an ``ExperimentAnalysis`` built in this thread reads no trial's
    results into a DataFrame."""
    with _PATCH.applied(_local, skip=True):
        yield
