"""A real multi-fidelity problem: the learning curves of the ``mnist-torch`` MLP on the MNIST
digits the project ships, one curve per configuration of a grid, trained once and kept as a table.

Every configuration of :data:`GRID` is trained for :data:`EPOCHS` epochs by the code of the
built-in ``mnist-torch`` trial (``setup`` + ``run_epochs``: 4,000 training and 1,000 validation
digits, seed 0, one thread), recording the validation accuracy after each epoch. Search methods
then "train" a configuration by reading its curve, one epoch per report (:func:`table_trial`),
so a benchmark can spend thousands of epochs in minutes. As in every tabular benchmark, a PBT
trial that exploits goes on along its new configuration's curve from the copied epoch (the
network it copied was trained with the donor's parameters), and may change the network's width
and depth, which a real ``mnist-torch`` PBT run cannot (its checkpoint fixes the shape).

``python -m benchmarks.mnist_curves`` trains the table again (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import functools
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

GRID: dict[str, list[Any]] = {
    "lr": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3],
    "optimizer": ["sgd", "adam", "rmsprop"],
    "batch-size": [64, 256],
    "num-hidden": [16, 64, 256],
    "num-layers": [1, 2],
}
FIXED: dict[str, Any] = {"model": "mlp", "seed": 0}
EPOCHS = 27
METRIC = "Validation-accuracy"
TABLE = Path(__file__).resolve().parent / "data" / "mnist_mlp_curves.json"


def key(config: dict[str, Any]) -> str:
    """The table's key for a configuration (the grid's parameters, normalised)."""
    return (f"lr={float(config['lr']):g}|optimizer={config['optimizer']}|batch-size={int(config['batch-size'])}"
            f"|num-hidden={int(config['num-hidden'])}|num-layers={int(config['num-layers'])}")


def configurations() -> list[dict[str, Any]]:
    """Every configuration of the grid."""
    return [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]


def train_curve(config: dict[str, Any], epochs: int = EPOCHS) -> dict[str, Any]:
    """Train one configuration as the ``mnist-torch`` trial does; its per-epoch accuracies."""
    import torch

    from raytune_k8s.trials.mnist_torch import run_epochs, setup

    torch.set_num_threads(1)
    full = {**FIXED, **config, "num-epochs": epochs}
    model, optimizer = setup(full)
    start = time.monotonic()
    metrics = list(run_epochs(full, model, optimizer))
    return {
        # accuracies are counts of 1,000 or 4,000 digits: 4 and 5 decimals hold them exactly
        "val": [round(m[METRIC], 4) for m in metrics],
        "train": [round(m["Train-accuracy"], 5) for m in metrics],
        "seconds": round(time.monotonic() - start, 2),
    }


def build(jobs: int = 2) -> dict[str, Any]:
    """Train the whole grid (``jobs`` processes) into a table."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from importlib import metadata

    from raytune_k8s.trials.data import load_mnist

    configs = configurations()
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        curves = {}
        for config, curve in zip(configs, pool.map(train_curve, configs)):
            curves[key(config)] = curve
            print(f"  [{len(curves):3d}/{len(configs)}] {key(config):55s} final {curve['val'][-1]:.3f} "
                  f"best {max(curve['val']):.3f} ({curve['seconds']:.1f} s)", file=sys.stderr, flush=True)
    return {
        "grid": GRID, "fixed": FIXED, "epochs": EPOCHS, "metric": METRIC,
        "data": load_mnist().source, "torch": metadata.version("torch"), "curves": curves,
    }


@functools.lru_cache(maxsize=1)
def load_table(path: str = str(TABLE)) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def optimum(table: dict[str, Any]) -> float:
    """The best validation accuracy any configuration reaches at any epoch."""
    return max(max(c["val"]) for c in table["curves"].values())


def table_trial(config: dict[str, Any]) -> None:
    """A function trial that trains by reading the table: one report per epoch up to
    ``num-epochs``, resuming from its checkpoint's epoch, with a checkpoint every
    ``checkpoint-interval`` epochs (0: none; PBT needs them, the others do not). With ``epoch-log``
    set, each epoch is also appended there as a JSON line (when, which trial, which epoch, its
    accuracy): the work the trials really did, whatever the scheduler made of it."""
    from ray import tune

    from raytune_k8s.trials.checkpoints import latest_checkpoint, report_with_checkpoint

    curve = load_table()["curves"][key(config)]["val"]
    first = 0
    with latest_checkpoint() as (directory, state):
        if directory is not None:
            first = int(state["epoch"])
    log = config.get("epoch-log")
    interval = int(config.get("checkpoint-interval", 1))
    trial_id = tune.get_context().get_trial_id()
    last = min(int(config["num-epochs"]), len(curve))
    for epoch in range(first, last):
        if log:
            line = json.dumps({"t": time.time(), "trial": trial_id, "epoch": epoch + 1, "acc": curve[epoch], "key": key(config)})
            with open(log, "a") as f:
                f.write(line + "\n")
        metrics = {METRIC: curve[epoch], "epoch": epoch + 1}
        if interval and ((epoch + 1) % interval == 0 or epoch + 1 == last):
            report_with_checkpoint(metrics, {"epoch": epoch + 1}, lambda path: None)
        else:
            tune.report(metrics)


def main() -> int:
    start = time.monotonic()
    table = build()
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(json.dumps(table, separators=(",", ":")) + "\n")
    print(f"{len(table['curves'])} curves of {EPOCHS} epochs in {time.monotonic() - start:.0f} s; "
          f"best accuracy {optimum(table):.4f}; wrote {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
