"""Every use of Ray Tune's and Ray Train's private names, behind one door.

``internals`` names each private Ray name the driver uses (and ``tests/test_ray_internals.py``
checks each one against the installed Ray); ``confined_patch`` swaps one only while an
experiment runs. The speed-ups and safety nets built on them: ``fifo`` (FIFO order from a queue),
``warm_actors`` (idle trial actors kept), ``registry_cache`` (one trainable look-up per fit),
``unread_dataframes`` (no per-trial DataFrames nobody reads), ``atomic_files`` (Tune's state
copied whole), ``scheduler_wrapper`` (a scheduler that passes every call to another).

Imported by ``experiment`` and ``recovery``, and for a private name each by ``stopping``
(``scheduler_wrapper``), ``results`` and ``search`` (``internals``). May import: ``files``.
"""
