"""Kubeflow's Python clients, run here: Katib's ``KatibClient`` over this project's experiments
(:mod:`.katib_client`) and the unified SDK's ``OptimizerClient`` (:mod:`.optimizer_client`, with
Kubeflow Trainer's backend over the trials in :mod:`.trainer_backend`), with the experiment store
behind them (:mod:`.store`, :mod:`.custom_objects`). Needs Katib's SDK: ``bash scripts/install-katib-sdk.sh``.

May import: ``spec``, ``results``, ``experiment``.
"""

from __future__ import annotations

try:
    from .katib_client import KatibClient
except ImportError as exc:  # pragma: no cover - depends on the optional SDK
    raise ImportError(f"{exc}: raytune_k8s.kubeflow needs Katib's SDK (kubeflow-katib 0.19.0), installed "
                      "without its dependencies: bash scripts/install-katib-sdk.sh (docs/kubeflow.md)") from exc

try:
    from .optimizer_client import OptimizerClient
except ImportError as exc:  # pragma: no cover - depends on the optional SDK
    raise ImportError(f"{exc}: raytune_k8s.kubeflow needs Kubeflow's unified SDK (kubeflow 0.5.0): "
                      "pip install -e '.[kubeflow]' -c constraints.txt (docs/kubeflow.md)") from exc

__all__ = ["KatibClient", "OptimizerClient"]
