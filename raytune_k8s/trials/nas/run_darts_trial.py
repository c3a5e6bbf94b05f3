"""Our stand-in for Katib's ``darts-cnn-cifar10`` trial program (``run_trial.py``), on MNIST.

Takes Katib's flags, as its ``darts-cpu.yaml`` passes them::

    python -m raytune_k8s.trials.nas.run_darts_trial --algorithm-settings="{'num_epochs': '1', ...}" \\
        --search-space="['max_pooling_3x3', 'skip_connection']" --num-layers=1

and prints one ``Validation-accuracy=``/``Train-accuracy=``/``loss=`` line per epoch and, at the
end, ``Best-Genotype=Genotype(...)``: the lines Katib's StdOut collector (and ours) reads. No
checkpoints: a Katib trial container restarts from scratch too. ``--data-dir``,
``--image-size``, ``--train-size`` and ``--seed`` are ours (CIFAR-10 is not available offline).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .darts import DartsSearch


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="DARTS search on MNIST (Katib darts-cnn-cifar10 flags)")
    parser.add_argument("--algorithm-settings", default="{}", help="Katib's DARTS settings as a (single-quoted) JSON object")
    parser.add_argument("--search-space", required=True, help="operation names as a JSON list, e.g. ['max_pooling_3x3']")
    parser.add_argument("--num-layers", required=True, help="number of cells")
    parser.add_argument("--data-dir", default=None, help="MNIST IDX files (default: the offline 5,000 digits)")
    parser.add_argument("--image-size", type=int, default=28, help="shrink the images to this many pixels a side")
    parser.add_argument("--train-size", type=int, default=None, help="use the first N training images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = {
        "algorithm-settings": args.algorithm_settings,
        "search-space": args.search_space,
        "num-layers": args.num_layers,
        "data-dir": args.data_dir,
        "image_size": args.image_size,
        "train_size": args.train_size,
        "seed": args.seed,
    }
    try:
        search = DartsSearch.from_config(config)
    except ValueError as exc:
        parser.error(str(exc))
    print(f">>> DARTS on MNIST: {search.settings}", flush=True)
    while search.epoch < search.settings.num_epochs:
        metrics = search.run_epoch(log=lambda line: print(line, flush=True))
        print(f"epoch {metrics['epoch']} genotype {metrics['Genotype']}")
        for name in ("Train-accuracy", "Validation-accuracy", "loss"):
            print(f"{name}={metrics[name]:.6f}", flush=True)
    print(f"Best-Genotype={search.best_genotype}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
