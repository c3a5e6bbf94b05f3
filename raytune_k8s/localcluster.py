"""Moved to :mod:`raytune_k8s.sim`; this name stays importable."""

from .sim.cluster import *  # noqa: F401,F403
from .sim.cluster import _cluster_processes, _kill_trees  # noqa: F401
