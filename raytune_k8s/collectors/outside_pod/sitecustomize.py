"""Put on a Push trial's ``PYTHONPATH`` (:mod:`raytune_k8s.collectors.katib_db`): outside a pod,
Katib's ``report_metrics`` would fail before sending anything, because its first step reads the
pod's namespace file (``/var/run/secrets/kubernetes.io/serviceaccount/namespace``), which only
a pod has, for its error message. When ``kubeflow.katib.utils.utils`` is imported, its
``get_current_k8s_namespace`` falls back, where that file is missing, to the experiment's
namespace (``$RAYTUNE_K8S_NAMESPACE``, else ``default``); in a pod it reads the file as before.
Nothing is imported until the trial imports Katib's SDK. A ``sitecustomize`` further along
the path (the environment's own) still runs.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from typing import Any

_TARGET = "kubeflow.katib.utils.utils"
_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_HERE = os.path.dirname(os.path.abspath(__file__))


class _NamespaceOutsidePod(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader, run = spec.loader, spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            in_pod = module.get_current_k8s_namespace

            def get_current_k8s_namespace() -> str:
                if os.path.exists(_NAMESPACE_FILE):
                    return in_pod()
                return os.environ.get("RAYTUNE_K8S_NAMESPACE") or "default"

            module.get_current_k8s_namespace = get_current_k8s_namespace

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, _NamespaceOutsidePod())

# The environment's own sitecustomize, if any, as if this one were not first on the path.
_next = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE])
if _next is not None and _next.loader is not None:
    _module = importlib.util.module_from_spec(_next)
    _next.loader.exec_module(_module)
