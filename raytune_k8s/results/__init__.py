"""What an experiment produced, read back from its directory without Ray: ``summary.json`` in
Katib's words (``summary``), its table for people (``table``), and Tune's saved state read as
plain files (``tune_state``).

May import: ``spec``, ``files``, ``_tune``, ``stopping``.
"""
