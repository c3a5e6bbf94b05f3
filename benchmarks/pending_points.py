"""How Bayesian optimisation treats pending points, and what that does to search quality.

At parallelism P an in-driver searcher suggests while the other P-1 trials still run; a searcher
actor that keeps suggestions ready ahead of demand suggests while up to P (and more) are pending.
This replays that offline, without Ray and without time: Hartmann-6, 200 evaluations, a FIFO of
``k`` pending points (a suggestion is evaluated only after ``k`` newer ones were made), through
raytune_k8s's ``bayesianoptimization`` searcher with each ``pending_strategy`` (the Kriging
believer, and bayes_opt's constant liar with the best/mean/worst result so far as its lie).
Figures: the best value after 200 evaluations per seed, the median and how many seeds got
within 0.001 of the optimum.

    python -m benchmarks.pending_points                    # 12 runs, about 13 minutes on 2 cores
    python -m benchmarks.pending_points --strategies believer max mean --pending 3 4 8
"""

from __future__ import annotations

import statistics
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

from benchmarks._report import arg_parser, markdown_table, publish, pyplot, text_table

NAME = "pending_points"
NEAR_OPTIMUM = 1e-3  # "found the optimum": within this of Hartmann-6's minimum


def one_run(strategy: str, pending: int, seed: int, evaluations: int, acq_restarts: int) -> dict[str, Any]:
    """One BO run with a FIFO of ``pending`` points still being evaluated."""
    warnings.simplefilter("ignore")  # sklearn's convergence chatter
    from benchmarks.searcher_latency import spec
    from raytune_k8s.search import create_searcher
    from raytune_k8s.search.space import SearchSpace
    from raytune_k8s.spec import parse_spec
    from raytune_k8s.trials.synthetic import hartmann6_value

    experiment = spec(evaluations, pending + 1, 1.0, seed, acq_restarts)
    experiment["algorithm"]["algorithmSettings"].append({"name": "pending_strategy", "value": strategy})
    parsed = parse_spec(experiment)
    searcher = create_searcher(parsed.algorithm, SearchSpace.from_spec(parsed), parsed.objective)
    in_flight: list[tuple[str, dict]] = []
    curve: list[float] = []
    started = time.process_time()

    def evaluate(trial_id: str, config: dict) -> None:
        value = hartmann6_value([config[f"x{i}"] for i in range(1, 7)])
        searcher.on_trial_complete(trial_id, {"value": value})
        curve.append(min(value, curve[-1]) if curve else value)

    for i in range(evaluations):
        in_flight.append((str(i), searcher.suggest(str(i))))
        if len(in_flight) > pending:
            evaluate(*in_flight.pop(0))
    for item in in_flight:
        evaluate(*item)
    return {"strategy": strategy, "pending": pending, "seed": seed, "best": curve[-1], "curve": curve,
            "cpu_s": time.process_time() - started}


def main(argv: Sequence[str] | None = None) -> int:
    from raytune_k8s.trials.synthetic import HARTMANN6_MIN

    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["believer", "max"], choices=["believer", "max", "mean", "min"])
    parser.add_argument("--pending", type=int, nargs="+", default=[3, 4], help="points pending at each suggestion")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--evaluations", type=int, default=200)
    parser.add_argument("--acq-restarts", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one process each")
    args = parser.parse_args(argv)
    if args.smoke:
        args.evaluations, args.seeds, args.pending, args.acq_restarts = 14, [0], [2], 1
    start = time.monotonic()
    grid = [(s, k, seed) for seed in args.seeds for k in args.pending for s in args.strategies]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(one_run, *zip(*grid), [args.evaluations] * len(grid), [args.acq_restarts] * len(grid)))
    cells: dict[str, dict[str, Any]] = {}
    rows = []
    for strategy in args.strategies:
        for k in args.pending:
            bests = [r["best"] for r in runs if r["strategy"] == strategy and r["pending"] == k]
            found = sum(b - HARTMANN6_MIN <= NEAR_OPTIMUM for b in bests)
            cells[f"{strategy}/{k}"] = {"median_best": statistics.median(bests), "mean_best": statistics.fmean(bests),
                                        "found_optimum": found, "runs": len(bests), "bests": bests}
            rows.append([strategy, k, f"{statistics.median(bests):.5f}", f"{statistics.fmean(bests):.5f}",
                         f"{found} / {len(bests)}", " ".join(f"{b:.4f}" for b in bests)])
    data = {"benchmark": NAME, "smoke": args.smoke,
            "setup": {"objective": "hartmann6", "optimum": HARTMANN6_MIN, "evaluations": args.evaluations,
                      "seeds": args.seeds, "pending": args.pending, "acq_restarts": args.acq_restarts,
                      "near_optimum": NEAR_OPTIMUM, "n_initial_points": 8},
            "results": cells, "runs": runs}
    headers = ["pending_strategy", "pending points", "best, median", "best, mean",
               f"within {NEAR_OPTIMUM} of the optimum", "best per seed"]
    text = f"\nBO on Hartmann-6, {args.evaluations} evaluations (optimum {HARTMANN6_MIN})\n{text_table(headers, rows)}"

    def markdown(d: dict[str, Any]) -> str:
        return (f"# Pending points in Bayesian optimisation\n\nHartmann-6 (optimum {HARTMANN6_MIN}), "
                f"{args.evaluations} evaluations, seeds {' '.join(map(str, args.seeds))}; a FIFO of k pending points "
                f"(an in-driver searcher at parallelism P has P-1, a searcher actor's ready suggestions add more).\n\n"
                f"{markdown_table(headers, rows)}\n\nCommand: `{d['environment']['command']}`\n")

    def figure(d: dict[str, Any]) -> Any:
        plt = pyplot()
        fig, axes = plt.subplots(1, len(args.pending), figsize=(5 * len(args.pending), 4), squeeze=False)
        for ax, k in zip(axes[0], args.pending):
            for strategy in args.strategies:
                curves = [r["curve"] for r in d["runs"] if r["strategy"] == strategy and r["pending"] == k]
                median = [max(1e-6, statistics.median(c[i] - HARTMANN6_MIN for c in curves)) for i in range(args.evaluations)]
                ax.plot(range(1, args.evaluations + 1), median, label=strategy)
            ax.set_yscale("log")
            ax.set_xlabel("evaluations")
            ax.set_ylabel("median regret (best so far - optimum)")
            ax.set_title(f"{k} points pending")
            ax.legend()
        return fig

    publish(args.out, NAME, data, start, argv, ["raytune_k8s", "bayesian-optimization", "scikit-learn"], text, markdown, figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
