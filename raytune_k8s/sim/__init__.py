"""The simulated autoscaling cluster, for development, tests and benchmarks: local Ray heads
(:class:`LocalRayHead`) and a head running the real Ray autoscaler v2 whose "pods" are local Ray
nodes (:class:`AutoscalingLocalCluster`, with :mod:`.provider`).

Development tooling. May import: ``scaling``.
"""

from .cluster import STATE_FILE, AutoscalingLocalCluster, LocalRayHead, free_port, start_background_cluster, stop_background_cluster

__all__ = [
    "STATE_FILE",
    "AutoscalingLocalCluster",
    "LocalRayHead",
    "free_port",
    "start_background_cluster",
    "stop_background_cluster",
]
