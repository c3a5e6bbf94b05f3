"""Overhead: what the machinery costs per trial, next to plain Ray Tune and an Optuna loop.

Trivial trials (Branin evaluated once, reported at once, with the wall-clock time the trial
started) at parallelism P, through ``raytune_k8s.run`` (random search, as an experiment runs
it), through plain Ray Tune with ``reuse_actors=True`` (the fair peer) and with its defaults
(``tune.Tuner`` + ``TuneConfig(num_samples=N, max_concurrent_trials=P)``), and through an
in-process Optuna loop. Two figures per path: ``first_trial_s``, seconds from the call
(``run()``, ``Tuner(...)``, ``create_study``) to the first trial running, and
``marginal_ms_per_trial``, the slope of wall time between N=100 and N=1000 trials. The Ray paths
run on ONE local Ray head (``LocalRayHead(num_cpus=2)``, token auth on, already warm) that this
benchmark starts and stops. ``cli_cold_s``: ``raytune-k8s run`` of 100 trials end to end in a
fresh process with its embedded Ray.

Autoscaling reaction (seconds from experiment start to P workers, from experiment end to 0
workers) is measured on ``raytune_k8s.sim.cluster.AutoscalingLocalCluster`` when it exists; see
:func:`measure_autoscaling`.

    python -m benchmarks.overhead                 # full: N=100 and 1000, P=2 (plain Tune defaults: 10 and 40)
    python -m benchmarks.overhead --smoke --out /tmp/oh
"""

from __future__ import annotations

import os

# Ray reads its authentication mode when it is first imported: set it before anything imports ray.
os.environ["RAY_AUTH_MODE"] = "token"

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

from ._report import arg_parser, fmt, markdown_table, publish, pyplot, text_table, write_outputs  # noqa: E402

NAME = "overhead"
NUM_CPUS = 2
BRANIN_PARAMS = [
    {"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10}},
    {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15}},
]
#: The paths measured, in table order: key -> label.
PATHS = {
    "raytune_k8s": "raytune_k8s.run (random, reuse_actors=True)",
    "ray_tune_reuse": "plain Ray Tune, reuse_actors=True (random): the fair peer",
    "ray_tune_default": "plain Ray Tune, defaults (random, reuse_actors=False)",
    "optuna": "Optuna in-process loop (RandomSampler)",
    "optuna_tpe": "Optuna in-process loop (TPESampler)",
}


def _raytune_k8s_label() -> str:
    """What ``raytune_k8s.run`` does per experiment in this tree (the searcher actor is recent)."""
    import inspect

    import raytune_k8s

    actor = "searcher_actor" in inspect.signature(raytune_k8s.run).parameters
    return "raytune_k8s.run (random, reuse_actors=True" + (", searcher in a Ray actor)" if actor else ")")


def trial_cpu(parallel: int) -> float:
    """CPUs per trial so that ``parallel`` trials fit on the head's CPUs (at most 1)."""
    return min(1.0, NUM_CPUS / parallel)


def stamped_branin(config: dict[str, Any]) -> dict[str, float]:
    """The trivial trial: Branin at (x, y), and the wall-clock time it started (``started_at``)."""
    from raytune_k8s.trials.synthetic import branin_value

    started = time.time()
    return {"value": branin_value(config["x"], config["y"]), "started_at": started}


def experiment_spec(name: str, trials: int, parallel: int, seed: int, stamped: bool = False) -> dict[str, Any]:
    """The experiment of N trivial trials (``stamped``: :func:`stamped_branin`, else the built-in
    ``branin``)."""
    trial = {"function": "benchmarks.overhead:stamped_branin"} if stamped else {"trainable": "branin"}
    return {
        "name": name,
        "objective": {"type": "minimize", "objectiveMetricName": "value",
                      **({"additionalMetricNames": ["started_at"]} if stamped else {})},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": seed}]},
        "parameters": BRANIN_PARAMS,
        "parallelTrialCount": parallel,
        "maxTrialCount": trials,
        "maxFailedTrialCount": 0,
        "trial": {**trial, "resources": {"cpu": trial_cpu(parallel)}},
    }


def measure_raytune_k8s(trials: int, parallel: int, storage: Path, seed: int) -> tuple[float, float]:
    """(wall seconds, seconds to the first trial running) of one whole ``raytune_k8s.run``
    (checks, Tuner, summary; no report) of N trivial trials."""
    import raytune_k8s

    spec = experiment_spec(f"overhead-{seed}-{trials}", trials, parallel, seed, stamped=True)
    called, start = time.time(), time.perf_counter()
    summary = raytune_k8s.run(spec, storage_path=storage, report=False)
    elapsed = time.perf_counter() - start
    if summary["trials"] != trials or summary["failed"]:
        raise RuntimeError(f"raytune_k8s run incomplete: {summary['trials']} trials, {summary['failed']} failed")
    first = min(row["observation"]["started_at"]["latest"] for row in summary["trial_table"])
    return elapsed, first - called


def measure_ray_tune(trials: int, parallel: int, storage: Path, seed: int, reuse: bool = False) -> tuple[float, float]:
    """(wall seconds, seconds to the first trial running) of plain ``tune.Tuner(...).fit()`` on
    the same trivial trial: Tune's defaults, or with ``reuse_actors=True``."""
    from ray import tune

    trainable: Any = stamped_branin  # Tune reports a returned dict
    if parallel > NUM_CPUS:  # Tune's default is 1 CPU per trial: give P trials room as raytune_k8s does
        trainable = tune.with_resources(stamped_branin, {"cpu": trial_cpu(parallel)})
    called, start = time.time(), time.perf_counter()
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(-5, 10), "y": tune.uniform(0, 15)},
        tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=parallel, metric="value", mode="min",
                                    **({"reuse_actors": True} if reuse else {})),
        run_config=tune.RunConfig(name=f"tune-{'reuse' if reuse else 'default'}-{seed}-{trials}", storage_path=str(storage)),
    )
    grid = tuner.fit()
    elapsed = time.perf_counter() - start
    if len(grid) != trials or grid.num_errors:
        raise RuntimeError(f"Ray Tune run incomplete: {len(grid)} trials, {grid.num_errors} errors")
    return elapsed, min(r.metrics["started_at"] for r in grid) - called


def measure_optuna(trials: int, seed: int, sampler: str) -> tuple[float, float]:
    """(wall seconds, seconds to the first trial running) of an in-process Optuna study
    (in-memory storage) of N trivial trials."""
    import optuna

    from raytune_k8s.trials.synthetic import branin_value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    first: list[float] = []

    def objective(trial: Any) -> float:
        if not first:
            first.append(time.perf_counter())
        return branin_value(trial.suggest_float("x", -5, 10), trial.suggest_float("y", 0, 15))

    start = time.perf_counter()
    make = optuna.samplers.RandomSampler if sampler == "random" else optuna.samplers.TPESampler
    study = optuna.create_study(direction="minimize", sampler=make(seed=seed))
    study.optimize(objective, n_trials=trials)
    elapsed = time.perf_counter() - start
    assert len(study.trials) == trials
    return elapsed, first[0] - start


def measure_cli_cold(trials: int, parallel: int, storage: Path) -> tuple[float | None, str | None]:
    """Wall seconds of ``raytune-k8s run`` (a fresh process, embedded local Ray, no report) of N
    trivial trials of the built-in ``branin``: what a new user waits for."""
    import yaml

    spec_file = storage / "cli-cold.yaml"
    spec_file.write_text(yaml.safe_dump(experiment_spec("cli-cold", trials, parallel, seed=0)))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "raytune_k8s", "run", str(spec_file), "--storage-path", str(storage),
                           "--no-report"], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:  # (a start-up that timed out on a loaded machine, say): recorded, not fatal
        return None, f"exit {proc.returncode}: " + (proc.stdout + proc.stderr)[-1500:]
    return elapsed, None


#: (workers, pod start s) points of the autoscaling measurement, with issue 13's goals: 0 -> 9
#: workers <= 10 s, 0 -> 6 <= 8 s at pod start 0; pod start time adds to that.
AUTOSCALING_GRID = ((6, 0.0), (9, 0.0), (6, 15.0), (9, 15.0))
SCALE_UP_GOAL_S = {6: 8.0, 9: 10.0}
SCALE_DOWN_GOAL_OVER_IDLE_S = 3.0
#: Most nodes starting Ray at once by default: no limit, as KubeRay creates every pod of a
#: scale-up together (``--max-starting N`` caps it, for a machine too loaded to start them all).
AUTOSCALING_MAX_STARTING: int | None = None


def measure_autoscaling(
    parallel: int, storage: Path, *, trial_s: float = 5.0, idle_timeout_s: float = 10.0, timeout_s: float = 180.0,
    grid: Sequence[tuple[int, float]] | None = None, max_starting: int | None = AUTOSCALING_MAX_STARTING,
) -> dict[str, Any]:
    """Autoscaling reaction on the simulated autoscaling cluster (the real Ray autoscaler v2 with
    our pod provider, ``raytune_k8s.sim.AutoscalingLocalCluster``), at ``parallel`` workers and
    pod start 0 (the top-level keys), then at each (workers, pod start s) point of ``grid``
    (default :data:`AUTOSCALING_GRID`; none when ``trial_s`` < 5, the smoke run), under ``points``:

    * ``scale_up_s``: seconds from the start of ``raytune_k8s.run`` (cluster at 0 workers) until
      that many worker nodes are alive;
    * ``scale_down_s``: seconds from the return of ``raytune_k8s.run`` until 0 workers are left;
      this includes the cluster's idle timeout (``idle_timeout_s``).

    Each experiment: 2 x workers trials of ``trial_s`` seconds (Branin with a sleep), 1 CPU each,
    on 1-CPU workers (so one trial per worker), on a cluster of its own; a Ray connection of this
    process is closed first.
    """
    if grid is None:
        grid = AUTOSCALING_GRID if trial_s >= 5.0 else ()
    first = _autoscaling_point(parallel, 0.0, storage, trial_s, idle_timeout_s, timeout_s, max_starting)
    points = [first] + [_autoscaling_point(n, pod, storage, trial_s, idle_timeout_s, timeout_s, max_starting)
                        for n, pod in grid if (n, pod) != (parallel, 0.0)]
    return {**first, "points": points}


def _autoscaling_point(workers: int, pod_start_s: float, storage: Path, trial_s: float, idle_timeout_s: float,
                       timeout_s: float, max_starting: int | None) -> dict[str, Any]:
    import threading

    import ray

    import raytune_k8s
    from raytune_k8s.sim import AutoscalingLocalCluster

    if ray.is_initialized():
        ray.shutdown()
    trials = 2 * workers
    spec = experiment_spec(f"autoscaling-{workers}-{pod_start_s:g}", trials, workers, seed=0)
    spec["trial"] = {"trainable": "branin", "fixedParameters": {"sleep": trial_s}, "resources": {"cpu": 1}}
    samples: list[tuple[float, int]] = []
    with AutoscalingLocalCluster(worker_cpus=1, max_workers=workers, idle_timeout_s=idle_timeout_s,
                                 pod_start_s=pod_start_s, max_starting=max_starting) as cluster:
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            cluster.wait_for_workers(0, timeout=60)
            stop = threading.Event()

            def watch() -> None:
                while not stop.is_set():
                    samples.append((time.monotonic(), cluster.worker_count()))
                    time.sleep(0.2)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            try:
                start = time.monotonic()
                summary = raytune_k8s.run(spec, storage_path=storage)
                end = time.monotonic()
                cluster.wait_for_workers(0, timeout=idle_timeout_s + timeout_s)
                zero = time.monotonic()
            finally:
                stop.set()
                watcher.join()
        finally:
            ray.shutdown()
    reached = next((t for t, n in samples if n >= workers), None)
    most = max((n for _, n in samples), default=0)
    if summary["trials"] != trials or summary["failed"]:
        raise RuntimeError(f"autoscaling experiment incomplete: {summary['trials']} trials, {summary['failed']} failed")
    up_s = None if reached is None else reached - start
    goal = SCALE_UP_GOAL_S.get(workers)
    return {
        "scale_up_s": up_s,
        "scale_down_s": zero - end,
        "scale_down_after_idle_timeout_s": zero - end - idle_timeout_s,
        "available": True,
        "most_workers": most,
        "target_workers": workers,
        "pod_start_s": pod_start_s,
        "max_starting": max_starting,
        "scale_up_goal_s": None if goal is None else goal + pod_start_s,
        "idle_timeout_s": idle_timeout_s,
        "experiment_s": end - start,
        "trials": trials,
        "trial_s": trial_s,
        "note": None if reached is not None else f"never reached {workers} workers (at most {most})",
    }


def _summary(runs: dict[int, list[tuple[float, float]]], label: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A path's figures from its runs (N -> [(wall s, first-trial s)]): the median wall time at
    each N, the slope between the smallest and largest N, the first trial at the smallest N."""
    sizes = sorted(runs)
    wall = {n: statistics.median(w for w, _ in runs[n]) for n in sizes}
    low, high = sizes[0], sizes[-1]
    per_trial = [1000 * w / low for w, _ in runs[low]]
    return {
        "label": label,
        "first_trial_s": statistics.median(f for _, f in runs[low]),
        "marginal_ms_per_trial": 1000 * (wall[high] - wall[low]) / (high - low) if high > low else None,
        # the same slope between the fastest run at each N: this machine's noise only ever adds time
        "marginal_ms_per_trial_fastest": (1000 * (min(w for w, _ in runs[high]) - min(w for w, _ in runs[low])) / (high - low)
                                          if high > low else None),
        "marginal_between": [low, high],
        "wall_s": {str(n): wall[n] for n in sizes},
        "runs": {str(n): [{"wall_s": w, "first_trial_s": f} for w, f in runs[n]] for n in sizes},
        # wall / N at the smallest N (this table's figure before the marginal cost)
        "ms_per_trial": statistics.median(per_trial),
        "ms_per_trial_runs": per_trial,
        **(extra or {}),
    }


def tables(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = ["path", "first trial running, s", "marginal ms/trial", "marginal, fastest runs", "between N",
               "wall s at each N (median)", "x raytune_k8s (marginal)"]
    base = data["raytune_k8s"]["marginal_ms_per_trial"]
    rows = []
    for key in PATHS:
        r = data[key]
        marginal = r["marginal_ms_per_trial"]
        walls = ", ".join(f"{n}: {fmt(w)}" for n, w in r["wall_s"].items())
        rows.append([f"{key}: {r['label']}", r["first_trial_s"], marginal, r.get("marginal_ms_per_trial_fastest"),
                     "-".join(map(str, r["marginal_between"])), walls,
                     marginal / base if marginal and base else None])
    return headers, rows


def autoscaling_rows(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    a = data["autoscaling"]
    headers = ["workers", "pod start s", "scale up s (run start, 0 workers -> all)", "goal s",
               "scale down s (run end -> 0)", "idle timeout s", "down - idle timeout (goal <= 3)", "experiment s"]
    rows = [
        [p.get("target_workers"), p.get("pod_start_s", 0.0), p["scale_up_s"],
         p.get("scale_up_goal_s") if p.get("scale_up_goal_s") is not None else "",
         p["scale_down_s"], p.get("idle_timeout_s"), p.get("scale_down_after_idle_timeout_s"), p.get("experiment_s")]
        for p in a.get("points") or [a]
        if p.get("available")
    ]
    if a.get("note"):
        rows.append([f"note: {a['note']}"] + [None] * (len(headers) - 1))
    return headers, rows


def markdown(data: dict[str, Any]) -> str:
    headers, rows = tables(data)
    ah, ar = autoscaling_rows(data)
    env = data["environment"]
    k8s = data["raytune_k8s"]
    goals = [
        ["raytune_k8s marginal ms/trial (goal <= 15)", k8s["marginal_ms_per_trial"]],
        ["raytune_k8s marginal ms/trial, fastest runs", k8s.get("marginal_ms_per_trial_fastest")],
        ["plain Ray Tune reuse_actors=True marginal ms/trial (the peer), median / fastest runs",
         f"{fmt(data['ray_tune_reuse']['marginal_ms_per_trial'])} / {fmt(data['ray_tune_reuse'].get('marginal_ms_per_trial_fastest'))}"],
        ["raytune_k8s first trial running, s after run() on a warm Ray (goal <= 3)", k8s["first_trial_s"]],
        [f"`raytune-k8s run` of {data['cli_trials']} trials, cold start with embedded Ray, s (goal <= 10)", data["cli_cold_s"]],
    ]
    return "\n".join([
        "# Overhead",
        "",
        f"Per-trial cost of the machinery: trivial trials (Branin evaluated and reported at once) at parallelism "
        f"P={data['parallel']}. Per path: seconds from the call to the first trial running (the trial stamps the wall "
        "clock when it starts) and the marginal cost per trial, the slope of the median wall time between the two sizes "
        f"({data['sizes']} trials; plain Ray Tune's defaults, which start a new trial actor per trial, {data['default_sizes']}); "
        f"{data['repeats']} run(s) per size (the column beside it takes the slope between the fastest run at each size: "
        f"on this machine the same run can take 16 s or 30 s, and noise only adds time). The Ray paths share one warm local Ray head with {NUM_CPUS} CPUs (token auth), "
        f"trials {fmt(trial_cpu(data['parallel']))} CPU each; an untimed plain-Tune warm-up ran first (not in --smoke) and the "
        "paths alternate, so drifting load hits all alike. raytune_k8s is the whole `raytune_k8s.run` (spec checks, "
        "searcher actor, Tuner, summary.json; no report); plain Ray Tune is `Tuner(...)` + `fit()` with Tune's default "
        "loggers and progress output. Optuna runs in this process with in-memory storage, no Ray: a floor, not a peer in "
        "capability.",
        "",
        markdown_table(headers, rows),
        "",
        markdown_table(["goal (issue 13)", "measured"], goals),
        "",
        "## Autoscaling reaction",
        "",
        "On `raytune_k8s.sim.AutoscalingLocalCluster`: a local Ray head (0 CPUs) running the real Ray "
        "autoscaler v2 with our pod provider: 1-CPU worker nodes (`ray start` processes on this machine) started "
        "together and removed on demand like KubeRay worker pods, each after a fixed pod start time (scheduling and "
        "image pull on a real cluster). A cluster of its own per row; it starts at 0 workers. Every worker node "
        "starts a raylet and Ray's Python agents, about 2.5 CPU-seconds on this 2-core machine, so 9 nodes need "
        "about 11 s of both cores: the scale-up here is CPU-bound, and other work on the machine slows it.",
        "",
        markdown_table(ah, ar),
        "",
        f"Total run time {data['runtime_s']:.0f} s on {env['cpus']} CPUs ({env['platform']}; load average at the end "
              f"{'/'.join(map(str, env['loadavg_1_5_15m']))} over 1/5/15 min; the run's own processes count too, anything "
        f"well above the CPU count is other work), {env['date_utc']}; "
        f"`{env['command']}`. Chart: `{NAME}.png`; raw runs: `{NAME}.json`.",
    ])


def figure(data: dict[str, Any]) -> Any:
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1.4]})
    keys = list(PATHS)
    marginal = [max(1e-3, data[k]["marginal_ms_per_trial"] or 0.0) for k in keys]
    bars = ax.bar(range(len(keys)), marginal, color=["tab:blue", "tab:cyan", "tab:gray", "tab:orange", "tab:olive"])
    for bar, m, k in zip(bars, marginal, keys):
        ax.annotate(f"{fmt(m)} ms\nfirst {fmt(data[k]['first_trial_s'])} s", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.axhline(15, color="tab:red", ls="--", lw=1, label="goal: 15 ms")
    ax.legend(fontsize=7)
    ax.set_xticks(range(len(keys)), keys, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("marginal ms per trial, log scale")
    ax.set_title(f"trivial trials, P={data['parallel']}: marginal cost (slope between sizes), first trial running", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if data["scale_up_s"] is not None and data["scale_down_s"] is not None:
        idle = data["autoscaling"].get("idle_timeout_s") or 0.0
        ax2.bar([0], [data["scale_up_s"]], color="tab:green")
        ax2.bar([1], [idle], color="tab:red", alpha=0.35, hatch="//", label="idle timeout (configured)")
        ax2.bar([1], [max(0.0, data["scale_down_s"] - idle)], bottom=[idle], color="tab:red", label="the rest")
        for x, v in ((0, data["scale_up_s"]), (1, data["scale_down_s"])):
            ax2.annotate(f"{v:.1f} s", (x, v), ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax2.set_xticks([0, 1], [f"0 -> {data['parallel']} workers", f"{data['parallel']} -> 0 workers"], fontsize=8)
        ax2.set_ylabel("seconds")
        ax2.legend(fontsize=7)
    else:
        ax2.axis("off")
        ax2.text(0.5, 0.5, "autoscaling reaction:\nnot measured\n" + str(data["autoscaling"].get("note") or ""),
                 ha="center", va="center", fontsize=8, wrap=True, transform=ax2.transAxes)
    ax2.set_title("autoscaling reaction", fontsize=9)
    fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[100, 1000], metavar=("N1", "N2"),
                        help="trials per run: the marginal cost is the slope between them (default 100 1000)")
    parser.add_argument("--default-sizes", type=int, nargs=2, default=[10, 40], metavar=("N1", "N2"),
                        help="the same for plain Ray Tune's defaults, ~2 s a trial (default 10 40)")
    parser.add_argument("--parallel", type=int, default=2, help="P concurrent trials (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per path and size; the median is used (default 1)")
    parser.add_argument("--cli-trials", type=int, default=100, help="trials of the cold-start CLI run (default 100)")
    parser.add_argument("--autoscaling", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the autoscaling reaction on a fake multi-node cluster (default on)")
    parser.add_argument("--max-starting", type=int, default=0,
                        help="most simulated nodes starting Ray at once (default 0: no limit, as KubeRay starts pods)")
    parser.add_argument("--replot", type=Path, metavar="JSON",
                        help="only rewrite the .md and .png from an earlier run's JSON (into --out)")
    args = parser.parse_args(argv)
    if args.replot:
        data = json.loads(args.replot.read_text())
        PATHS["raytune_k8s"] = data["raytune_k8s"]["label"]
        paths = write_outputs(args.out, NAME, data, markdown(data), figure(data))
        print(f"wrote {', '.join(map(str, paths))}")
        return 0
    if args.smoke:
        args.sizes, args.default_sizes, args.repeats, args.cli_trials = [4, 8], [2, 4], 1, 4
    warnings.filterwarnings("ignore")

    import ray

    from raytune_k8s.sim.cluster import LocalRayHead

    start = time.monotonic()
    data: dict[str, Any] = {"benchmark": NAME, "smoke": args.smoke, "sizes": args.sizes, "default_sizes": args.default_sizes,
                            "trials": args.sizes[0], "parallel": args.parallel, "repeats": args.repeats,
                            "cli_trials": args.cli_trials}
    runs: dict[str, dict[int, list[tuple[float, float]]]] = {key: {} for key in PATHS}
    with tempfile.TemporaryDirectory(prefix="rtk8s-overhead-") as tmp:
        storage = Path(tmp)
        data["cli_cold_s"], data["cli_cold_error"] = measure_cli_cold(args.cli_trials, args.parallel, storage)
        print(f"  raytune-k8s run, cold: {data['cli_cold_s']} s {data['cli_cold_error'] or ''}", file=sys.stderr, flush=True)
        with LocalRayHead(num_cpus=NUM_CPUS) as head:
            os.environ.pop("RAY_ADDRESS", None)
            ray.init(address=head.address, log_to_driver=False)
            logging.getLogger("ray").setLevel(logging.WARNING)
            try:
                if not args.smoke:
                    measure_ray_tune(args.parallel, args.parallel, storage, seed=-1)  # warm-up, untimed
                    measure_raytune_k8s(args.parallel, args.parallel, storage, seed=99)
                measures = {
                    "raytune_k8s": lambda n, r: measure_raytune_k8s(n, args.parallel, storage, seed=r),
                    "ray_tune_reuse": lambda n, r: measure_ray_tune(n, args.parallel, storage, seed=r, reuse=True),
                    "ray_tune_default": lambda n, r: measure_ray_tune(n, args.parallel, storage, seed=r),
                }
                for r in range(args.repeats):  # interleaved: drifting load hits every path alike
                    for i in range(2):
                        for key, measure in measures.items():
                            n = (args.default_sizes if key == "ray_tune_default" else args.sizes)[i]
                            runs[key].setdefault(n, []).append(measure(n, r))
                            print(f"  {key} N={n} run {r}: {runs[key][n][-1][0]:.1f} s", file=sys.stderr, flush=True)
            finally:
                ray.shutdown()
        for key, sampler in (("optuna", "random"), ("optuna_tpe", "tpe")):
            for n in args.sizes:
                runs[key][n] = [measure_optuna(n, r, sampler) for r in range(max(3, args.repeats))]
        if args.autoscaling:
            sizes = {"trial_s": 1.0, "idle_timeout_s": 3.0} if args.smoke else {}
            autoscaling = measure_autoscaling(args.parallel, storage, max_starting=args.max_starting or None, **sizes)
        else:
            autoscaling = {"scale_up_s": None, "scale_down_s": None, "available": None,
                           "note": "not measured: --no-autoscaling"}

    PATHS["raytune_k8s"] = _raytune_k8s_label()
    for key in PATHS:
        data[key] = _summary(runs[key], PATHS[key], {"trial_cpu": trial_cpu(args.parallel)} if key == "raytune_k8s" else None)
    data["scale_up_s"] = autoscaling["scale_up_s"]
    data["scale_down_s"] = autoscaling["scale_down_s"]
    data["autoscaling"] = autoscaling
    headers, rows = tables(data)
    ah, ar = autoscaling_rows(data)
    text = (f"\nPer-trial overhead, P={args.parallel}\n{text_table(headers, rows)}\n"
            f"raytune-k8s run of {args.cli_trials} trials, cold: {fmt(data['cli_cold_s'])} s\n\n{text_table(ah, ar)}")
    publish(args.out, NAME, data, start, argv, ["raytune_k8s", "ray", "optuna"], text, markdown, figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
