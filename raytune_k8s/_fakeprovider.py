"""The node provider of :class:`raytune_k8s.localcluster.AutoscalingLocalCluster`; it runs inside
the autoscaler's monitor process on the simulated cluster's head.

It is Ray's ``FakeMultiNodeProvider`` with one change: every fake node gets its own runtime-env
directory. All fake nodes share the head's session directory on one filesystem, and a node's
runtime-env agent re-extracts a job's ``working_dir`` package with overwrite (delete, then
unpack) the first time that node needs it; with one shared directory, each new worker node
deleted the working directory that the job's driver on the head, and the trials on the other
nodes, were running in (``ray job submit --working-dir`` then failed with FileNotFoundError
from ``os.getcwd()``). On a real cluster every pod has its own disk, which this restores.
"""

from __future__ import annotations

from typing import Any

import ray._private.parameter as parameter
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider


class FakeNodeProviderOwnDirs(FakeMultiNodeProvider):
    def _create_node_with_resources_and_labels(self, *args: Any, **kwargs: Any) -> None:
        with self.lock:  # the parent creates nodes under this lock: one node at a time
            node_dir = f"runtime_resources_node{self._next_node_id + 1}"
            original = parameter.RayParams

            def ray_params(*a: Any, **kw: Any) -> Any:
                kw.setdefault("runtime_env_dir_name", node_dir)
                return original(*a, **kw)

            parameter.RayParams = ray_params  # type: ignore[misc,assignment]
            try:
                super()._create_node_with_resources_and_labels(*args, **kwargs)
            finally:
                parameter.RayParams = original  # type: ignore[misc]
