"""The searcher actor: a search algorithm in a Ray actor of its own, one per experiment (like
Katib's suggestion service). ``driver``: its stand-in in the driver (a Tune ``Searcher``) and the
courier thread; ``host``: the actor's body, which suggests ahead of demand and snapshots its state.
"""
