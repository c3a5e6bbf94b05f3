"""Sizing experiments to their cluster: the tenant's quota and the workers' size (``quota``, a
leaf), the autoscaler request of one experiment (``request``), and the per-cluster coordinator
that sums every experiment's request and shares the quota (``coordinator``).

May import: ``spec``. Inside: ``request`` -> ``coordinator`` -> ``quota``.
"""
