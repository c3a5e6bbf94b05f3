"""Kubeflow's Python clients, run here: Katib's ``KatibClient`` over this project's experiments
(:mod:`.katib_client`), with the experiment store behind it (:mod:`.store`,
:mod:`.custom_objects`). Needs Katib's SDK: ``bash scripts/install-katib-sdk.sh``.

May import: ``spec``, ``results``, ``experiment``.
"""

from __future__ import annotations

try:
    from .katib_client import KatibClient
except ImportError as exc:  # pragma: no cover - depends on the optional SDK
    raise ImportError(f"{exc}: raytune_k8s.kubeflow needs Katib's SDK (kubeflow-katib 0.19.0), installed "
                      "without its dependencies: bash scripts/install-katib-sdk.sh (docs/kubeflow.md)") from exc

__all__ = ["KatibClient"]
