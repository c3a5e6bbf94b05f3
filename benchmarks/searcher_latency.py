"""Searcher in an actor vs in the driver: what the driver waits for, and what the trials wait for.

Bayesian optimisation (bayes_opt, GP) on Hartmann-6 with 1-s trials, 200 trials at parallelism
4, run on seeds 0 to 5, each seed twice: once with the searcher in the driver (synchronous, as
Ray Tune runs searchers) and once in raytune_k8s's searcher actor. Per mode:

1. the driver's time blocked inside searcher calls (``suggest`` and ``on_trial_complete``),
   p50/p99/max in ms;
2. how long a freed trial slot waits until its next trial starts, and the slots' idle fraction
   (a ``suggest`` that hands back nothing still counts as waiting);
3. the experiment's wall time;
4. the best value found.

In the actor run the actor is killed after half of the trials; at the end the re-created
actor's observation count must equal the completed trials.

    python -m benchmarks.searcher_latency            # the full run (about 30 minutes)
    python -m benchmarks.searcher_latency --smoke --out /tmp/x
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "token")  # before Ray is imported: token auth is on

import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks._report import arg_parser, environment, markdown_table, pyplot, text_table, write_outputs  # noqa: E402

NAME = "searcher_latency"


def spec(trials: int, parallel: int, sleep_s: float, seed: int, acq_restarts: int = 10) -> dict[str, Any]:
    return {
        "name": "searcher-latency",
        "objective": {"type": "minimize", "objectiveMetricName": "value"},
        "algorithm": {
            "algorithmName": "bayesianoptimization",
            "algorithmSettings": [
                {"name": "random_state", "value": seed},
                {"name": "n_initial_points", "value": 8},
                {"name": "acq_restarts", "value": acq_restarts},
            ],
        },
        "parameters": [{"name": f"x{i}", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}} for i in range(1, 7)],
        "parallelTrialCount": parallel,
        "maxTrialCount": trials,
        "trial": {"trainable": "hartmann6", "fixedParameters": {"sleep": sleep_s}, "resources": {"cpu": 1}},
    }


def timed(searcher: Any) -> Any:
    """Wrap a Searcher so every call the driver makes into it is timed."""
    from ray.tune.search import Searcher

    class TimedSearcher(Searcher):
        def __init__(self) -> None:
            super().__init__(metric=searcher.metric, mode=searcher.mode)
            self.inner = searcher
            self.calls_s: list[float] = []

        def set_search_properties(self, metric, mode, config, **spec):  # type: ignore[no-untyped-def]
            ok = self.inner.set_search_properties(metric, mode, config, **spec)
            self._metric, self._mode = self.inner.metric, self.inner.mode
            return ok

        def _time(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.calls_s.append(time.perf_counter() - start)

        def suggest(self, trial_id):  # type: ignore[no-untyped-def]
            return self._time(self.inner.suggest, trial_id)

        def on_trial_complete(self, trial_id, result=None, error=False):  # type: ignore[no-untyped-def]
            return self._time(self.inner.on_trial_complete, trial_id, result=result, error=error)

        def on_trial_result(self, trial_id, result):  # type: ignore[no-untyped-def]
            return self._time(self.inner.on_trial_result, trial_id, result)

        def save(self, path):  # type: ignore[no-untyped-def]
            return self.inner.save(path)

        def restore(self, path):  # type: ignore[no-untyped-def]
            return self.inner.restore(path)

    return TimedSearcher()


def slot_waits(starts: list[float], ends: list[float], parallel: int) -> list[float]:
    """For every freed slot that had more work coming: seconds until the next trial started.

    The first ``parallel`` starts fill empty slots; each later start is matched with the
    earliest end not yet matched before it.
    """
    later_starts = sorted(starts)[parallel:]
    free_at = sorted(ends)
    return [start - end for start, end in zip(later_starts, free_at)]


def run_once(
    use_actor: bool, trials: int, parallel: int, sleep_s: float, seed: int, storage: Path, kill_at: int | None, acq_restarts: int
) -> dict[str, Any]:
    from ray import tune

    from raytune_k8s.experiment.runner import prepare, trial_resources
    from raytune_k8s.search.actor.driver import ActorSearcher
    from raytune_k8s._tune.warm_actors import warm_trial_actors

    plan = prepare(spec(trials, parallel, sleep_s, seed, acq_restarts), searcher_actor=False)
    inner = ActorSearcher(plan.searcher, prefetch=parallel) if use_actor else plan.searcher
    searcher = timed(inner)
    completed = {"n": 0, "killed": False}

    class KillHalfway(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):  # type: ignore[no-untyped-def]
            completed["n"] += 1
            if use_actor and kill_at is not None and completed["n"] == kill_at and not completed["killed"]:
                inner.kill_actor()
                completed["killed"] = True

    tuner = tune.Tuner(
        tune.with_resources(plan.trainable, trial_resources(plan.spec)),
        tune_config=tune.TuneConfig(
            metric="value", mode="min", search_alg=searcher, num_samples=trials, max_concurrent_trials=parallel, reuse_actors=True
        ),
        run_config=tune.RunConfig(name=f"{'actor' if use_actor else 'sync'}-{seed}", storage_path=str(storage), callbacks=[KillHalfway()], verbose=0),
    )
    start = time.monotonic()
    with warm_trial_actors(parallel):  # both runs, as raytune_k8s runs experiments
        results = tuner.fit()
    wall = time.monotonic() - start
    done = [r.metrics for r in results if r.error is None and "value" in r.metrics]
    values = [m["value"] for m in done]
    # When each trial really ran, as the trial itself saw it (Tune's own start/complete events
    # lag behind whenever the driver is busy, which would flatter a blocking searcher).
    run_starts = [m["t_start"] for m in done]
    run_ends = [m["t_end"] for m in done]
    waits = slot_waits(run_starts, run_ends, parallel)
    busy = sum(e - s for s, e in zip(run_starts, run_ends))
    makespan = max(run_ends) - min(run_starts)
    out: dict[str, Any] = {
        "wall_s": wall,
        "trials": len(values),
        "best": min(values),
        "call_s": list(searcher.calls_s),
        "slot_waits_s": waits,
        "slot_busy_s": busy,
        "slot_capacity_s": parallel * makespan,
    }
    if use_actor:
        deadline = time.monotonic() + 60
        while inner.observations() != len(values) and time.monotonic() < deadline:
            time.sleep(0.2)
        out["restored_observations"] = inner.observations()
        out["actor_thread_s_since_restore"] = inner.thread_seconds()
        out["actor_restarts"] = inner.restarts
        inner.close()
    return out


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode's figures over all seeds: per-call and per-slot figures pooled, the rest medians."""
    calls_ms = np.concatenate([np.asarray(r["call_s"]) * 1000 for r in runs])
    waits = [w for r in runs for w in r["slot_waits_s"]]
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "best": statistics.median(r["best"] for r in runs),
        "best_mean": statistics.fmean(r["best"] for r in runs),
        "trials": sum(r["trials"] for r in runs),
        "calls": int(calls_ms.size),
        "p50_wait_ms": float(np.percentile(calls_ms, 50)),
        "p99_wait_ms": float(np.percentile(calls_ms, 99)),
        "max_wait_ms": float(calls_ms.max()),
        "blocked_total_s": float(calls_ms.sum() / 1000) / len(runs),
        "slot_wait_median_s": statistics.median(waits) if waits else 0.0,
        "slot_wait_p90_s": float(np.percentile(waits, 90)) if waits else 0.0,
        "slot_idle_fraction": max(0.0, 1 - sum(r["slot_busy_s"] for r in runs) / sum(r["slot_capacity_s"] for r in runs)),
        "slot_waits_s": waits,
        "per_seed": [{k: v for k, v in r.items() if k not in ("call_s", "slot_waits_s")} for r in runs],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds per trial")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--acq-restarts", type=int, default=10,
                        help="bayes_opt L-BFGS-B restarts per suggestion (its default 10; 2 is ~5x cheaper)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.trials, args.sleep, args.parallel, args.seeds = 8, 0.2, 2, [0]

    import ray

    from raytune_k8s.sim.cluster import LocalRayHead

    with LocalRayHead(num_cpus=args.parallel) as head, tempfile.TemporaryDirectory() as storage:
        ray.init(address=head.address, log_to_driver=False)
        try:
            sync_runs, actor_runs = [], []
            for seed in args.seeds:  # the same seed through both, one after the other
                sync_runs.append(run_once(False, args.trials, args.parallel, args.sleep, seed, Path(storage), None, args.acq_restarts))
                actor_runs.append(run_once(True, args.trials, args.parallel, args.sleep, seed, Path(storage), args.trials // 2, args.acq_restarts))
        finally:
            ray.shutdown()
    sync, actor = pooled(sync_runs), pooled(actor_runs)
    restored = sum(r["restored_observations"] for r in actor_runs)

    completed = sum(r["trials"] for r in actor_runs)
    # Paired by seed; the same tolerance for "equal" as the tables print (5 decimals).
    no_worse = sum(round(a_run["best"], 5) <= round(s_run["best"], 5) for a_run, s_run in zip(actor_runs, sync_runs))
    seeds = " ".join(map(str, args.seeds))
    data = {
        "benchmark": NAME,
        "setup": {"algorithm": "bayesianoptimization", "objective": "hartmann6", "trials": args.trials,
                  "parallel": args.parallel, "trial_seconds": args.sleep, "seeds": args.seeds, "acq_restarts": args.acq_restarts,
                  "actor_killed_after_trials": args.trials // 2,
                  "aggregation": "per-call and per-slot figures pooled over seeds; wall_s and best are medians over seeds"},
        "actor": actor,
        "sync": sync,
        "actor_no_worse_seeds": no_worse,
        "restored_observations": restored,
        "completed_trials": completed,
        "environment": environment(f"benchmarks.{NAME}", list(argv if argv is not None else sys.argv[1:]), ["ray", "bayesian-optimization"]),
    }
    headers = ["", "sync (in driver)", "actor"]
    rows = [
        ["driver blocked per call p50 (ms)", sync["p50_wait_ms"], actor["p50_wait_ms"]],
        ["driver blocked per call p99 (ms)", sync["p99_wait_ms"], actor["p99_wait_ms"]],
        ["driver blocked per call max (ms)", sync["max_wait_ms"], actor["max_wait_ms"]],
        ["driver blocked per run (s)", sync["blocked_total_s"], actor["blocked_total_s"]],
        ["freed slot waits, median (s)", sync["slot_wait_median_s"], actor["slot_wait_median_s"]],
        ["freed slot waits, p90 (s)", sync["slot_wait_p90_s"], actor["slot_wait_p90_s"]],
        ["slot idle fraction", sync["slot_idle_fraction"], actor["slot_idle_fraction"]],
        ["wall time, median (s)", sync["wall_s"], actor["wall_s"]],
        ["best value, median (optimum -3.32237)", f"{sync['best']:.5f}", f"{actor['best']:.5f}"],
        ["best value, mean", f"{sync['best_mean']:.5f}", f"{actor['best_mean']:.5f}"],
        ["trials completed", sync["trials"], actor["trials"]],
    ]
    seed_headers = ["seed", "sync wall (s)", "actor wall (s)", "sync best", "actor best", "restored / completed"]
    seed_rows = [
        [seed, s_run["wall_s"], a_run["wall_s"], f"{s_run['best']:.5f}", f"{a_run['best']:.5f}", f"{a_run['restored_observations']} / {a_run['trials']}"]
        for seed, s_run, a_run in zip(args.seeds, sync["per_seed"], actor["per_seed"])
    ]
    print(text_table(headers, rows))
    print(text_table(seed_headers, seed_rows))
    print(f"actor's best no worse than sync's on {no_worse} of {len(args.seeds)} seeds")
    print(f"actor killed after {args.trials // 2} trials in each run: restored observations {restored} / completed trials {completed}")
    md = (
        f"# Searcher latency: actor vs in-driver\n\n{args.trials} trials of {args.sleep} s, parallelism {args.parallel}, "
        f"bayesianoptimization (acq_restarts {args.acq_restarts}) on Hartmann-6, seeds {seeds}, each seed through both. "
        f"Per-call and per-slot figures are pooled over the seeds; wall time and best value are medians.\n\n"
        f"{markdown_table(headers, rows)}\n\n{markdown_table(seed_headers, seed_rows)}\n\n"
        f"The actor's best value is no worse than the in-driver searcher's on {no_worse} of {len(args.seeds)} seeds "
        f"(same seed, compared to 5 decimals).\n\n"
        f"The actor is killed after {args.trials // 2} trials in each run: restored observations {restored}, "
        f"completed trials {completed}.\n\nCommand: `{data['environment']['command']}`\n"
    )
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].hist([sync["slot_waits_s"], actor["slot_waits_s"]], bins=30, label=["sync", "actor"])
    axes[0].set_xlabel("freed slot wait until next trial starts (s)")
    axes[0].set_ylabel("slots")
    axes[0].legend()
    axes[1].bar(["sync p99", "actor p99"], [sync["p99_wait_ms"], actor["p99_wait_ms"]], color=["tab:blue", "tab:orange"])
    axes[1].set_yscale("log")
    axes[1].set_ylabel("driver blocked per searcher call, p99 (ms)")
    fig.suptitle(f"Searcher in the driver vs in an actor ({args.trials} trials, parallelism {args.parallel}, seeds {seeds})")
    for path in write_outputs(args.out, NAME, data, md, fig):
        print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
