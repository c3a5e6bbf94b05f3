"""Neural architecture search as Katib runs it: ``darts`` and ``enas`` over a ``nasConfig``.

- :mod:`.config` - ``spec.nasConfig`` models and their candidate operations (no torch)
- :mod:`.settings` - both algorithms' settings with Katib's defaults (no torch)
- :mod:`.ops` - candidate operations as torch modules
- :mod:`.darts` - the DARTS supernet search and its Ray Tune trainable ``train``
- :mod:`.run_trial` - our stand-in for Katib's darts-cnn-cifar10 program
- :mod:`.enas` - the ENAS LSTM controller as a Ray Tune ``Searcher``
- :mod:`.child` - an ENAS child network and its trainable ``train``
"""

# Only the models here: the spec layer imports them, and must not pull in torch or the settings.
from .config import NasConfig, Operation, expand_operations

__all__ = ["NasConfig", "Operation", "expand_operations"]
