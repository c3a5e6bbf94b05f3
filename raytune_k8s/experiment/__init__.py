"""Running an experiment: from a spec to a Tune run and its summary, and continuing one.

* ``runner``: :func:`run`, :func:`resume` and :func:`check`, each a short sequence of named steps;
* ``plan``: :func:`prepare` (spec -> :class:`Plan`: what Tune needs) and what one trial asks Ray for;
* ``fit``: the Tuner of a new run (scheduler, callbacks, RunConfig); ``fit()`` and the summary;
* ``runtime``: connecting to Ray (embedded or a cluster) and what of Ray's output is shown;
* ``interruption``: a stopped run (SIGINT, SIGTERM) told from a finished one;
* ``progress``: the live progress line; ``resource_watch``: says so when resources do not come.

The top layer: may import every package below it (spec, files, _tune, stopping, results, trials,
search, recovery, scaling, reporting), never ``cli`` or ``sim``.
"""
