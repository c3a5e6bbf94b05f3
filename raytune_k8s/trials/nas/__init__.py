"""The trial code of neural architecture search: the DARTS supernet trial (``darts``), the ENAS
child network (``enas_child``), their candidate operations (``ops``) and data, and our stand-ins
for Katib's NAS trial programs (``run_darts_trial``, ``run_enas_trial``). Their searchers live in
:mod:`raytune_k8s.search` (``darts``, ``enas``).
"""
