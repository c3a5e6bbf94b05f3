"""Multi-fidelity search: regret against epochs spent, for random, random + ASHA, Hyperband and PBT.

The problem is :mod:`benchmarks.mnist_curves`: real learning curves of the ``mnist-torch`` MLP
(252 configurations x 27 epochs). Each method runs as a user runs it, through
``raytune_k8s.run`` on one local Ray, with the trial :func:`benchmarks.mnist_curves.table_trial`;
every epoch a trial trains is logged, so the figure is the best validation accuracy seen so far
against the epochs all trials together spent (the cost that early stopping saves), over seeds.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks._report import arg_parser, markdown_table, publish, pyplot, text_table
from benchmarks.mnist_curves import EPOCHS, GRID, METRIC, TABLE, load_table, optimum

NAME = "multi_fidelity"
#: The common budget: 15 full trainings' worth of epochs.
BUDGET = 15 * EPOCHS
CHECKPOINTS = [EPOCHS, 3 * EPOCHS, 5 * EPOCHS, 10 * EPOCHS, 15 * EPOCHS]
PBT_POPULATION = 15

METHODS = {
    "random": "random search, every trial trains all 27 epochs (15 trials)",
    "random+asha": "random search with the `asha` early-stopping rule (Tune's ASHA: grace 1, reduction 3, max_t 27)",
    "hyperband": "Katib's `hyperband` algorithm (`resource_name: num-epochs`, `r_l` 27, `eta` 3: one pass of its 4 brackets)",
    "pbt": f"`pbt` with {PBT_POPULATION} members of 27 epochs (truncation 0.2, a decision every 3 epochs)",
}


def spec(method: str, seed: int, epoch_log: Path) -> dict[str, Any]:
    """The experiment a user would write for ``method`` on this problem."""
    parameters = [
        {"name": name, "parameterType": "categorical" if name == "optimizer" else "discrete", "feasibleSpace": {"list": values}}
        for name, values in GRID.items()
    ]
    fixed: dict[str, Any] = {"num-epochs": EPOCHS, "epoch-log": str(epoch_log), "checkpoint-interval": 0}
    settings = [{"name": "random_state", "value": seed}]
    experiment: dict[str, Any] = {
        "name": f"{method.replace('+', '-')}-{seed}",
        "objective": {"type": "maximize", "objectiveMetricName": METRIC},
        "algorithm": {"algorithmName": "random", "algorithmSettings": settings},
        "parallelTrialCount": 4,
        "maxTrialCount": 15,
        "parameters": parameters,
        "trial": {"function": "benchmarks.mnist_curves:table_trial", "fixedParameters": fixed, "resources": {"cpu": 0.5}},
    }
    if method == "random+asha":
        experiment["earlyStopping"] = {"algorithmName": "asha", "algorithmSettings": [
            {"name": "max_t", "value": EPOCHS}, {"name": "grace_period", "value": 1}, {"name": "reduction_factor", "value": 3}]}
        experiment["maxTrialCount"] = 150  # about 3 epochs a trial: past the budget
    elif method == "hyperband":
        del fixed["num-epochs"]
        parameters.append({"name": "num-epochs", "parameterType": "int", "feasibleSpace": {"min": 1, "max": EPOCHS}})
        experiment["algorithm"] = {"algorithmName": "hyperband", "algorithmSettings": [
            *settings, {"name": "resource_name", "value": "num-epochs"}, {"name": "r_l", "value": EPOCHS}, {"name": "eta", "value": 3}]}
        experiment["maxTrialCount"] = 1000  # the schedule ends the run
    elif method == "pbt":
        experiment["algorithm"] = {"algorithmName": "pbt", "algorithmSettings": [
            *settings, {"name": "n_population", "value": PBT_POPULATION}, {"name": "truncation_threshold", "value": 0.2},
            {"name": "perturbation_interval", "value": 3}]}
        experiment["parallelTrialCount"] = experiment["maxTrialCount"] = PBT_POPULATION
        fixed["checkpoint-interval"] = 3  # a checkpoint at each decision: what an exploit copies
        experiment["trial"]["resources"] = {"cpu": 0.1}
    return experiment


def run_one(method: str, seed: int, workdir: Path) -> dict[str, Any]:
    """One seeded run through ``raytune_k8s.run``; the epochs its trials trained, in order."""
    import raytune_k8s

    log = workdir / f"{method}-{seed}.epochs.jsonl"
    # Tune's ASHA draws brackets from NumPy's global RNG, PBT's explore from Python's.
    np.random.seed(seed)
    random.seed(seed)
    start = time.monotonic()
    raytune_k8s.run(spec(method, seed, log), storage_path=str(workdir / "runs"), report=False)
    wall = time.monotonic() - start
    events = [json.loads(line) for line in log.read_text().splitlines()]
    events.sort(key=lambda e: e["t"])
    return {"accuracies": [e["acc"] for e in events], "wall_s": wall, "trials": len({e["trial"] for e in events})}


def regret_curve(accuracies: Sequence[float], best: float, budget: int) -> np.ndarray:
    """Regret (accuracy points) of the best accuracy seen after each epoch, up to ``budget``
    (held at its last value when a run spent fewer epochs)."""
    seen = np.maximum.accumulate(np.asarray(accuracies[:budget], dtype=float))
    seen = np.concatenate([seen, np.full(budget - len(seen), seen[-1])]) if len(seen) < budget else seen
    return 100 * (best - seen)


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# Multi-fidelity search",
        "",
        "Each method runs as a user runs it: `raytune_k8s.run` of an experiment on one embedded Ray (2 CPUs), with "
        "the function trial `benchmarks.mnist_curves:table_trial`, which reports one epoch of its configuration's "
        "learning curve per result. Every epoch a trial trains is logged, so the figure is the best validation "
        "accuracy seen so far against the epochs all trials together spent (what early stopping saves), over seeds. "
        "The curves are real: the built-in `mnist-torch` trial's MLP trained on the shipped MNIST digits, one curve "
        "per configuration of a grid (`benchmarks/mnist_curves.py`). On a table, a PBT exploit goes on along the new "
        "configuration's curve from the copied epoch, and may change the network's shape, which a real run cannot.",
        "",
        f"Problem: {data['problem']}. Best accuracy in the table (any configuration, any epoch): "
        f"{100 * data['optimum']:.2f}%. Budget: {data['budget_epochs']} epochs (15 full trainings), seeds "
        f"0..{data['seeds'] - 1}.",
        "",
        "Median regret (accuracy points below that best) after each number of epochs spent:",
        "",
        markdown_table(*table(data)),
        "",
        "Methods: " + "; ".join(f"`{m}`: {t}" for m, t in METHODS.items() if m in data["methods"]) + ".",
    ]
    env = data.get("environment", {})
    if env:
        lines += ["", f"Total run time {data['runtime_s']:.0f} s on {env['cpus']} CPUs (load average at the end "
                  f"{'/'.join(map(str, env['loadavg_1_5_15m']))}), {env['date_utc']}; `{env['command']}`."]
    return "\n".join(lines)


def table(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = ["method", "seeds", *[f"regret@{c} epochs" for c in data["checkpoints"]], "epochs spent (median)",
               "trials (median)", "wall s/run"]
    rows = []
    for method, r in data["methods"].items():
        rows.append([method, r["seeds"], *[r["regret_at"][str(c)] for c in data["checkpoints"]], r["epochs_spent"],
                     r["trials"], r["wall_s_per_run"]])
    return headers, rows


def figure(data: dict[str, Any]) -> Any:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, r in data["methods"].items():
        x = np.arange(1, len(r["median"]) + 1)
        ax.plot(x, r["median"], label=method)
        ax.fill_between(x, r["q25"], r["q75"], alpha=0.2)
    ax.set_xlabel("epochs spent by all trials together")
    ax.set_ylabel("regret, accuracy points (median, IQR)")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_title("MNIST MLP learning curves: best accuracy seen vs epochs spent")
    ax.legend()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per method (default 10)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds = 1
    import ray

    table_data = load_table()
    best = optimum(table_data)
    started = time.monotonic()
    runs: dict[str, list[dict[str, Any]]] = {}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="raytune-k8s-mf-") as tmp:
            for seed in range(args.seeds):
                for method in args.methods:
                    result = run_one(method, seed, Path(tmp))
                    runs.setdefault(method, []).append(result)
                    print(f"  {method:12s} seed {seed}: {len(result['accuracies'])} epochs, {result['trials']} trials, "
                          f"best {100 * max(result['accuracies']):.2f}%, {result['wall_s']:.1f} s", file=sys.stderr, flush=True)
    finally:
        ray.shutdown()

    data: dict[str, Any] = {
        "benchmark": NAME, "smoke": args.smoke, "seeds": args.seeds, "budget_epochs": BUDGET, "checkpoints": CHECKPOINTS,
        "optimum": best, "table": str(TABLE.relative_to(TABLE.parents[2])),
        "problem": (f"`mnist-torch` MLP ({'; '.join(f'{k} {v}' for k, v in GRID.items())}) on "
                    f"{table_data['data']}, validation accuracy after each of {EPOCHS} epochs"),
        "methods": {},
    }
    for method, results in runs.items():
        curves = np.vstack([regret_curve(r["accuracies"], best, BUDGET) for r in results])
        data["methods"][method] = {
            "seeds": len(results),
            "regret_at": {str(c): float(np.median(curves[:, c - 1])) for c in CHECKPOINTS},
            "epochs_spent": float(np.median([len(r["accuracies"]) for r in results])),
            "trials": float(np.median([r["trials"] for r in results])),
            "wall_s_per_run": float(np.mean([r["wall_s"] for r in results])),
            "median": np.median(curves, axis=0).tolist(),
            "q25": np.percentile(curves, 25, axis=0).tolist(),
            "q75": np.percentile(curves, 75, axis=0).tolist(),
            "best_accuracy_per_seed": [max(r["accuracies"]) for r in results],
        }
    publish(args.out, NAME, data, started, argv, ["ray", "torch", "raytune_k8s"], text_table(*table(data)), markdown, figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
