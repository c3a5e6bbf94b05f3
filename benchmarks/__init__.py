"""Benchmarks for raytune_k8s: run one with ``python -m benchmarks.<name>`` (see README.md).

Each writes ``<name>.json``, ``<name>.md`` and ``<name>.png`` under ``benchmarks/results/``
(or ``--out DIR``); ``--smoke`` runs a tiny version, as the test suite does.
"""
