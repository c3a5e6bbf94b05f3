"""Stopping: Katib's early-stopping rules as Tune schedulers (``rules``), the record of which
trials a rule stopped (``record``), and the experiment-level stops: the goal and max-failed
(``control``).

May import: ``spec``, ``_tune``.
"""
