"""Recovery after a kill: every trial event appended to ``journal.jsonl`` as the driver receives
it (``journal``), and that journal replayed onto Tune's saved state before a resume, with the
saved files checked first (``reconcile``).

May import: ``files``, ``_tune``, ``results``, ``trials``.
"""
