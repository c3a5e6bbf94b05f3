"""Katib's Push collector: the trial reports its metrics itself, like Katib's
``report_metrics``. Inside a command trial the metrics go to a per-trial file the runner reads;
inside a Ray Tune function trial they go straight to ``ray.tune.report``."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from .files import JsonFileCollector

#: Set by the trial runner for the trial's process.
PUSH_FILE_ENV = "RAYTUNE_K8S_PUSH_FILE"


def report_metrics(metrics: Mapping[str, float | int | str]) -> None:
    """Report one observation of ``metrics`` (name -> number) from inside a trial."""
    values = {str(k): float(v) for k, v in metrics.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"report_metrics: {', '.join(bad)} not finite")
    path = os.environ.get(PUSH_FILE_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({**values, "timestamp": time.time()}) + "\n")
            f.flush()
        return
    from ray import tune

    if tune.get_context().get_trial_id() is None:
        raise RuntimeError("report_metrics: not inside a raytune-k8s trial (no Ray Tune session and no "
                           f"${PUSH_FILE_ENV})")
    tune.report(values)


class PushCollector(JsonFileCollector):
    """Reads what :func:`report_metrics` wrote in the trial's process."""

    def __init__(self, metric_names: Iterable[str], local_path: Path):
        super().__init__(metric_names, None, local_path)
        self._katib_db: Any = None

    def prepare(self) -> None:
        """The per-trial file, and Katib's DB manager for ``kubeflow.katib.report_metrics`` when
        Katib's SDK is installed (:mod:`.katib_db`)."""
        super().prepare()
        try:
            from .katib_db import KatibDBStandIn

            self._katib_db = KatibDBStandIn(self.local_path)
        except ImportError:  # no Katib SDK: our report_metrics only
            self._katib_db = None

    def env(self) -> dict[str, str]:
        return {PUSH_FILE_ENV: str(self.local_path), **(self._katib_db.env() if self._katib_db is not None else {})}

    def close(self) -> None:
        if self._katib_db is not None:
            self._katib_db.close()
            self._katib_db = None
