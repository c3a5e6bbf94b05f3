"""Our stand-in for Katib's ``enas-cnn-cifar10`` trial program (``RunTrial.py``), on MNIST.

Takes Katib's flags, as its ``enas-cpu.yaml`` passes them::

    python -m raytune_k8s.trials.nas.run_enas_trial --num_epochs=1 --architecture="[[3], [0, 1]]" \\
        --nn_config="{'num_layers': 2, ..., 'embedding': {...}}"

trains the child network (:mod:`raytune_k8s.trials.nas.enas_child`) and prints ``Train-accuracy=`` and
``Validation-Accuracy=`` (Katib's ENAS metric name) each epoch. ``nn_config``'s input and output
sizes are ignored: the data is MNIST (1 channel, 10 classes). ``--image-size``,
``--train-size``, ``--init-channels``, ``--lr``, ``--batch-size``, ``--seed`` and ``--data-dir``
are ours.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .enas_child import build, fit


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ENAS child network on MNIST (Katib enas-cnn-cifar10 flags)")
    parser.add_argument("--num_epochs", type=int, default=1)
    parser.add_argument("--architecture", required=True, help="[[op], [op, skip], ...] as JSON")
    parser.add_argument("--nn_config", required=True, help="Katib's nn_config (embedding: operation id -> type and parameters)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--init-channels", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = {"architecture": args.architecture, "nn_config": args.nn_config, "data-dir": args.data_dir, "image_size": args.image_size,
              "train_size": args.train_size, "init_channels": args.init_channels, "seed": args.seed}
    try:
        model, images = build(config)
    except (ValueError, KeyError) as exc:
        parser.error(f"bad architecture or nn_config: {exc}")

    def show(epoch, metrics, _optimizer) -> None:
        print(f"epoch {epoch}", flush=True)
        print(f"Train-accuracy={metrics['Train-accuracy']:.6f}", flush=True)
        print(f"Validation-Accuracy={metrics['Validation-Accuracy']:.6f}", flush=True)

    fit(model, images, args.num_epochs, args.lr, args.batch_size, args.seed, on_epoch=show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
