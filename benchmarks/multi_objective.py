"""Several objectives: do raytune_k8s's searchers find good Pareto fronts, next to Optuna's samplers
run directly?

Problems (``raytune_k8s.trials.pareto_problems``, from their published definitions, every
objective minimized): ZDT1 and ZDT2 (30 variables, 2 objectives), DTLZ2 (12 variables, 3
objectives), OSY (6 variables, 2 objectives, 6 constraints; about 3 % of the box feasible). BNH
(2 variables, 2 constraints) runs when asked (``--problems bnh``), not by default: 100 random
points already come close to its front, so it tells no method from another (measured in its last full run:
Optuna's own TPESampler 5916 against random 5951, p = 0.35).

Methods: ``random``, ``nsga2``, ``tpe``, ``gp`` as an experiment builds them (spec dict ->
``parse_spec`` -> ``SearchSpace.from_spec`` -> ``create_searcher(..., targets=spec.targets)``,
``random_state`` = seed) and driven in this process as a run with ``parallelTrialCount`` 4 drives
them: 4 suggestions pending at once, and each time the oldest completes it is told and a new one
asked. Beside each, the same Optuna sampler (``RandomSampler``, ``NSGAIISampler``, ``TPESampler``,
``GPSampler``, defaults plus ``seed``) run directly and sequentially by ask/tell with the
equivalent distributions (constraints: ``Trial.set_constraint`` before ``tell``). No Ray there.

Score: the hypervolume of the feasible non-dominated trials after the budget (100 trials), with
one reference point per problem for every method: each objective's worst value over all runs (all
methods, all seeds, feasible trials) plus 10 % of its range. Checks, by a two-sided Mann-Whitney U
test over seeds at 5 %: each of ours is no worse than Optuna's same sampler (not significantly
lower), and ``tpe`` and ``gp`` beat ``random`` (higher median and significant).

End to end: one ``raytune_k8s.run`` per problem (real Ray, nsga2, 40 trials, 2 in parallel);
its status, trials and the hypervolume of its front (same reference point). ``--no-end-to-end``
leaves it out.

JSON layout: ``problems.<problem>.reference_point``; ``problems.<problem>.<method>`` (ours) and
``optuna.<sampler>.<problem>`` (Optuna's, by the same names) each hold ``hypervolume_median``,
``hypervolume_per_seed`` (seed order), ``hypervolume_iqr``, ``front_size_median``,
``feasible_fraction``, ``cpu_s_per_run``; ``comparisons``: one row per check (``p_value``,
``verdict``, ``passed``); ``end_to_end.<problem>``.

    python -m benchmarks.multi_objective            # full: 100 trials, 10 seeds, 2 processes
    python -m benchmarks.multi_objective --smoke --out /tmp/mo
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from raytune_k8s.results.pareto import front, hypervolume, reference_point, scored
from raytune_k8s.search import create_searcher
from raytune_k8s.search.space import SearchSpace
from raytune_k8s.spec import parse_spec
from raytune_k8s.spec.objectives import Targets
from raytune_k8s.trials import pareto_problems
from raytune_k8s.trials.pareto_problems import PROBLEMS, trial

from ._report import arg_parser, fmt, map_tasks, markdown_table, panel_grid, publish, text_table
from .search_quality import optuna_distributions

NAME = "multi_objective"
METHODS = ("random", "nsga2", "tpe", "gp")
PENDING = 4
#: Optuna's sampler for each method, with its defaults and the seed.
SAMPLERS: dict[str, Callable[[int], Any]] = {
    "random": lambda seed: _optuna().samplers.RandomSampler(seed=seed),
    "nsga2": lambda seed: _optuna().samplers.NSGAIISampler(seed=seed),
    "tpe": lambda seed: _optuna().samplers.TPESampler(seed=seed),
    "gp": lambda seed: _optuna().samplers.GPSampler(seed=seed),
}
#: the methods that must beat random (a higher median, significant); every method must be no worse than Optuna's same sampler
BETTER_THAN_RANDOM = ("tpe", "gp")
END_TO_END: dict[str, Any] = {"algorithm": "nsga2", "trials": 40, "parallel": 2}
CHECKPOINTS = (25, 50, 100)
#: the problems of a full run (``--problems`` picks others, BNH among them)
DEFAULT_PROBLEMS = ("zdt1", "zdt2", "dtlz2", "osy")
#: the methods ``--slow-seeds`` applies to
SLOW = ("gp",)

Run = tuple[str, str, str, int]  # (problem, "ours" | "optuna", method, seed)


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _quiet() -> None:
    """Optuna's ExperimentalWarning/FutureWarning (and Ray's logs) out of the output."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ray").setLevel(logging.ERROR)


def experiment(problem: str, algorithm: str, seed: int, trials: int, parallel: int) -> dict[str, Any]:
    """The experiment spec of a run of ``algorithm`` on ``problem``."""
    return {
        "name": f"{problem}-{algorithm}-s{seed}",
        **pareto_problems.spec_parts(problem),
        "algorithm": {"algorithmName": algorithm, "algorithmSettings": [{"name": "random_state", "value": seed}]},
        "trial": {"function": "raytune_k8s.trials.pareto_problems:trial", "fixedParameters": {"problem": problem},
                  "resources": {"cpu": 1}},
        "maxTrialCount": trials,
        "parallelTrialCount": parallel,
    }


def targets_of(problem: str) -> Targets:
    return parse_spec(experiment(problem, "random", 0, 1, 1)).targets


def run_ours(problem: str, method: str, seed: int, trials: int, pending: int = PENDING) -> list[dict[str, float]]:
    """Each trial's metrics, in completion order: the searcher an experiment builds, ``pending``
    suggestions out at once, the oldest completed first."""
    spec = parse_spec(experiment(problem, method, seed, trials, min(pending, trials)))
    searcher = create_searcher(spec.algorithm, SearchSpace.from_spec(spec), spec.objective, targets=spec.targets)
    fixed = spec.trial.fixed_parameters if spec.trial else {}
    out: deque[tuple[str, dict[str, Any]]] = deque()
    asked = 0
    results = []

    def ask() -> None:
        nonlocal asked
        trial_id = f"{seed}-{asked:05d}"
        config = searcher.suggest(trial_id)
        assert config is not None, f"{method} gave no suggestion"
        out.append((trial_id, config))
        asked += 1

    while asked < min(pending, trials):
        ask()
    while out:
        trial_id, config = out.popleft()
        metrics = trial({**fixed, **config})
        searcher.on_trial_complete(trial_id, metrics)
        results.append(metrics)
        if asked < trials:
            ask()
    return results


def run_optuna(problem: str, method: str, seed: int, trials: int) -> list[dict[str, float]]:
    """Each trial's metrics: Optuna's sampler for ``method`` by ask/tell, one trial at a time."""
    optuna = _optuna()
    targets = targets_of(problem)
    distributions = optuna_distributions(pareto_problems.spec_parts(problem)["parameters"])
    study = optuna.create_study(directions=targets.directions, sampler=SAMPLERS[method](seed))
    results = []
    for _ in range(trials):
        t = study.ask(distributions)
        metrics = trial({"problem": problem, **t.params})
        for name, violation in zip(targets.violation_names(), targets.violations(metrics) or []):
            t.set_constraint(name, violation)
        study.tell(t, targets.values(metrics))
        results.append(metrics)
    return results


def run_task(task: tuple[Run, int]) -> tuple[Run, list[dict[str, float]], float, float]:
    """One run -> its trials' metrics, wall and CPU seconds (BLAS held to one thread: parallel
    runs share 2 cores)."""
    from threadpoolctl import threadpool_limits

    (problem, side, method, seed), trials = task
    with threadpool_limits(limits=1):
        start, cpu = time.perf_counter(), time.process_time()
        runner = run_ours if side == "ours" else run_optuna
        metrics = runner(problem, method, seed, trials)
        return (problem, side, method, seed), metrics, time.perf_counter() - start, time.process_time() - cpu


# ---------------------------------------------------------------- scoring


def feasible_points(metrics: Sequence[dict[str, float]], targets: Targets) -> list[list[float]]:
    points = []
    for m in metrics:
        values = targets.values(m)
        if values is not None and targets.feasible(m):
            points.append(values)
    return points


def front_points(metrics: Sequence[dict[str, float]], targets: Targets) -> list[list[float]]:
    """The objective values of the feasible non-dominated trials."""
    trials = [scored(str(i), m, targets) for i, m in enumerate(metrics)]
    keys = set(front(trials, targets))
    return [t.values for t in trials if t.key in keys and t.values is not None]


def front_hypervolume(metrics: Sequence[dict[str, float]], targets: Targets, reference: Sequence[float]) -> tuple[float, int]:
    points = front_points(metrics, targets)
    return hypervolume(points, reference, targets.directions), len(points)


def summarize(runs: dict[int, tuple[list[dict[str, float]], float, float]], targets: Targets, reference: Sequence[float],
              checkpoints: Sequence[int]) -> dict[str, Any]:
    """One method on one problem over seeds."""
    seeds = sorted(runs)
    final = [front_hypervolume(runs[s][0], targets, reference) for s in seeds]
    hv = [h for h, _ in final]
    at = {str(c): float(np.median([front_hypervolume(runs[s][0][:c], targets, reference)[0] for s in seeds]))
          for c in checkpoints}
    feasible = [len(feasible_points(runs[s][0], targets)) / len(runs[s][0]) for s in seeds]
    return {
        "seeds": seeds,
        "hypervolume_median": float(np.median(hv)),
        "hypervolume_per_seed": hv,
        "hypervolume_iqr": [float(np.percentile(hv, 25)), float(np.percentile(hv, 75))],
        "hypervolume_median_at": at,
        "front_size_median": float(np.median([n for _, n in final])),
        "feasible_fraction": float(np.mean(feasible)),
        "cpu_s_per_run": float(np.mean([runs[s][2] for s in seeds])),
        "wall_s_per_run": float(np.mean([runs[s][1] for s in seeds])),
    }


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value (1 for two equal samples)."""
    from scipy.stats import mannwhitneyu

    if len(a) == len(b) and np.allclose(sorted(a), sorted(b)):
        return 1.0
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def comparisons(data: dict[str, Any], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Every check: ours vs Optuna's same sampler ("no worse": not significantly lower) and tpe, gp
    vs random ("better": higher median, significant)."""
    rows = []
    for name, prob in data["problems"].items():
        for method in data["methods"]:
            peer = data["optuna"].get(method, {}).get(name)
            if method in prob and peer:
                a, b = prob[method]["hypervolume_per_seed"], peer["hypervolume_per_seed"]
                p = mann_whitney(a, b)
                lower = float(np.median(a)) < float(np.median(b))
                verdict = "same" if p >= alpha else ("ours lower" if lower else "ours higher")
                rows.append({"problem": name, "method": method, "against": f"optuna {method}", "check": "no worse",
                             "median": prob[method]["hypervolume_median"], "median_against": peer["hypervolume_median"],
                             "p_value": p, "verdict": verdict, "passed": not (p < alpha and lower)})
        for method in BETTER_THAN_RANDOM:
            if method in prob and "random" in prob:
                a, b = prob[method]["hypervolume_per_seed"], prob["random"]["hypervolume_per_seed"]
                p = mann_whitney(a, b)
                higher = float(np.median(a)) > float(np.median(b))
                verdict = "same" if p >= alpha else ("higher" if higher else "lower")
                rows.append({"problem": name, "method": method, "against": "random", "check": "better",
                             "median": prob[method]["hypervolume_median"], "median_against": prob["random"]["hypervolume_median"],
                             "p_value": p, "verdict": verdict, "passed": p < alpha and higher})
    return rows


# ---------------------------------------------------------------- end to end


def end_to_end(problem: str, reference: Sequence[float] | None, workdir: Path) -> dict[str, Any]:
    """One experiment through ``raytune_k8s.run`` on a local Ray: status, trials, front hypervolume."""
    import raytune_k8s

    algorithm, trials, parallel = END_TO_END["algorithm"], END_TO_END["trials"], END_TO_END["parallel"]
    spec_dict = experiment(problem, algorithm, 0, trials, parallel)
    targets = parse_spec(spec_dict).targets
    start = time.monotonic()
    summary = raytune_k8s.run(spec_dict, storage_path=str(workdir), report=False)
    wall = time.monotonic() - start
    rows = summary["trial_table"]
    metrics = [r["metrics"] for r in rows if r["status"] == "Succeeded"]
    if reference is None:  # no in-process runs of this problem: the run's own points
        reference = reference_point(feasible_points(metrics, targets) or [[1.0] * len(targets.directions)], targets.directions)
    hv, size = front_hypervolume(metrics, targets, reference)
    out: dict[str, Any] = {
        "algorithm": algorithm, "max_trials": trials, "parallel": parallel, "status": summary["status"],
        "reason": summary.get("reason"), "trials": summary.get("trials"), "trials_total": summary.get("trials_total"),
        "hypervolume": hv, "front_size": size, "wall_s": wall, "pareto_front_in_summary": "pareto_front" in summary,
    }
    if isinstance(summary.get("pareto_front"), list):  # the summary's own front, when it has one
        ids = {p.get("trial_id") for p in summary["pareto_front"] if isinstance(p, dict)}
        listed = [r["metrics"] for r in rows if r["trial_id"] in ids]
        out["summary_front_size"] = len(summary["pareto_front"])
        out["summary_front_hypervolume"] = hypervolume([v for v in (targets.values(m) for m in listed) if v is not None],
                                                       reference, targets.directions)
    return out


# ---------------------------------------------------------------- report


COMPARISON_HEADERS = ["problem", "method", "against", "must be", "median HV", "median HV (against)", "Mann-Whitney p",
                      "at p < 0.05", "check"]


def comparison_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [[c["problem"], c["method"], c["against"], c["check"], c["median"], c["median_against"], c["p_value"], c["verdict"],
             "pass" if c["passed"] else "FAIL"] for c in data["comparisons"]]


def table(data: dict[str, Any], name: str) -> tuple[list[str], list[list[Any]]]:
    """One problem: each method, ours and Optuna's side by side."""
    prob = data["problems"][name]
    headers = ["method", "seeds", *[f"HV@{c} ours" for c in data["checkpoints"]], "HV IQR ours", "front ours",
               f"HV@{data['trials']} Optuna", "HV IQR Optuna", "front Optuna", "feasible ours/Optuna", "CPU s/run ours/Optuna"]
    rows = []
    for method in data["methods"]:
        ours, peer = prob.get(method), data["optuna"].get(method, {}).get(name)
        if ours is None and peer is None:
            continue
        iqr = lambda r: "-" if r is None else f"{fmt(r['hypervolume_iqr'][0])}-{fmt(r['hypervolume_iqr'][1])}"  # noqa: E731
        get = lambda r, k: None if r is None else r[k]  # noqa: E731
        both = lambda k: f"{fmt(get(ours, k), 2)}/{fmt(get(peer, k), 2)}"  # noqa: E731
        rows.append([method, len((ours or peer)["seeds"]),
                     *[None if ours is None else ours["hypervolume_median_at"][str(c)] for c in data["checkpoints"]],
                     iqr(ours), get(ours, "front_size_median"), get(peer, "hypervolume_median"), iqr(peer),
                     get(peer, "front_size_median"), both("feasible_fraction"), both("cpu_s_per_run")])
    return headers, rows


E2E_HEADERS = ["problem", "algorithm", "status", "trials", "front size", "hypervolume", "wall s"]


def e2e_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [[name, r["algorithm"], r["status"], r["trials"], r["front_size"], r["hypervolume"], r["wall_s"]]
            for name, r in data.get("end_to_end", {}).items()]


def text_report(data: dict[str, Any]) -> str:
    text = ""
    for name in data["problems"]:
        prob = data["problems"][name]
        text += f"\n{prob['title']}; reference point {[round(x, 4) for x in prob['reference_point']]}\n"
        text += text_table(*table(data, name)) + "\n"
    if data["comparisons"]:
        text += f"\nChecks (two-sided Mann-Whitney U over seeds, 5 %)\n{text_table(COMPARISON_HEADERS, comparison_rows(data))}\n"
    if data.get("end_to_end"):
        text += f"\nEnd to end (raytune_k8s.run, real Ray)\n{text_table(E2E_HEADERS, e2e_rows(data))}\n"
    return text


def markdown(data: dict[str, Any]) -> str:
    seeds = data["seeds"]
    lines = [
        "# Several objectives",
        "",
        f"Hypervolume (HV, higher is better) of the feasible non-dominated trials after {', '.join(map(str, data['checkpoints']))} "
        f"trials, median over seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}), with one reference point per problem for every "
        "method: each objective's worst feasible value over all runs (all methods, all seeds) plus 10 % of its range. "
        f"`front`: median number of trials on the front after {data['trials']}; `feasible`: share of trials meeting the "
        "constraints; `CPU s/run`: CPU seconds of one run (suggest + evaluate + tell), spread over "
        f"{data['jobs']} worker process(es), BLAS limited to 1 thread each.",
        "",
        data["method_text"],
        "",
    ]
    for name in data["problems"]:
        prob = data["problems"][name]
        lines += [f"## {prob['title']}", "", f"{prob['reference']}. Reference point "
                  f"({', '.join(prob['objectives'])}): ({', '.join(fmt(x, 4) for x in prob['reference_point'])})"
                  + (f"; constraints {', '.join(prob['constraints'])}" if prob["constraints"] else "") + ".", "",
                  markdown_table(*table(data, name)), ""]
    if data["comparisons"]:
        passed = sum(c["passed"] for c in data["comparisons"])
        lines += ["## Checks", "",
                  "Two-sided Mann-Whitney U test of the per-seed final hypervolumes at 5 %. `no worse`: ours against "
                  "Optuna's same sampler run directly; it fails only when ours is lower and the test tells the two apart. "
                  "`better`: against our `random`; it passes only when the median is higher and the test tells them apart.",
                  "", markdown_table(COMPARISON_HEADERS, comparison_rows(data)), "",
                  f"{passed} of {len(data['comparisons'])} checks pass.", ""]
    if data.get("end_to_end"):
        e2e = data["end_to_end_settings"]
        lines += ["## End to end", "",
                  f"One experiment per problem through `raytune_k8s.run` on a local Ray: `{e2e['algorithm']}`, seed 0, "
                  f"{e2e['trials']} trials, {e2e['parallel']} in parallel; the hypervolume of its front from the summary's "
                  "trial table, with the problem's reference point above (fewer trials than the table's runs, so lower).",
                  "", markdown_table(E2E_HEADERS, e2e_rows(data)), ""]
    env = data.get("environment")
    if env:
        lines += [f"Total run time {data['runtime_s']:.0f} s on {env['cpus']} CPUs ({env['platform']}; load average at the end "
                  f"{'/'.join(map(str, env['loadavg_1_5_15m']))} over 1/5/15 min), {env['date_utc']}; `{env['command']}`. "
                  f"Box plots: `{NAME}.png`; every figure and the per-seed hypervolumes: `{NAME}.json`."]
    return "\n".join(lines)


COLORS = {"random": "tab:gray", "nsga2": "tab:purple", "tpe": "tab:blue", "gp": "tab:green"}


def figure(data: dict[str, Any]) -> Any:
    names = list(data["problems"])
    plt, fig, axes = panel_grid(len(names), 6.5)
    for ax, name in zip(axes, names):
        prob = data["problems"][name]
        samples, labels, colors = [], [], []
        for method in data["methods"]:
            for side, r in (("ours", prob.get(method)), ("optuna", data["optuna"].get(method, {}).get(name))):
                if r is not None:
                    samples.append(r["hypervolume_per_seed"])
                    labels.append(method if side == "ours" else f"optuna\n{method}")
                    colors.append(COLORS.get(method, "tab:orange"))
        box = ax.boxplot(samples, patch_artist=True, widths=0.6, showfliers=False)
        for i, (patch, color) in enumerate(zip(box["boxes"], colors)):
            patch.set_facecolor(color)
            patch.set_alpha(0.35 if "optuna" in labels[i] else 0.75)
            jitter = np.random.default_rng(i).uniform(-0.12, 0.12, len(samples[i]))
            ax.scatter(i + 1 + jitter, samples[i], s=9, color="black", alpha=0.6, zorder=3)  # every seed
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
        ax.set_title(prob["title"], fontsize=10)
        ax.set_ylabel(f"hypervolume after {data['trials']} trials")
        ax.grid(alpha=0.3, axis="y")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.suptitle(f"Several objectives: hypervolume over {len(data['seeds'])} seeds (ours: {PENDING} pending; "
                 "optuna: sampler run directly, sequential)", fontsize=10)
    fig.tight_layout()
    return fig


METHOD_TEXT = (
    "Method: each of our searchers is built exactly as an experiment builds it - an experiment spec dict per problem "
    "(`objectives`, `constraints`, `random_state` = seed) -> `parse_spec` -> `SearchSpace.from_spec` -> "
    "`create_searcher(spec.algorithm, space, spec.objective, targets=spec.targets)` - and driven in this process as "
    f"a run with parallelTrialCount {PENDING} drives it: {PENDING} suggestions pending at once; each time the oldest "
    "completes (the problems are deterministic functions) it is told every objective and constrained metric and a "
    "new one is asked. `nsga2`, `tpe` and `gp` are Optuna's NSGAIISampler, TPESampler and GPSampler behind our ask/tell "
    "adapter, `random` our own seeded sampler. The Optuna columns are `RandomSampler`, `NSGAIISampler`, "
    "`TPESampler` and `GPSampler` with their defaults and `seed`, run directly and sequentially (ask, evaluate, "
    "`Trial.set_constraint` for each constraint bound, tell) with the equivalent distributions. No Ray in these runs."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per run (default 100)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..n-1 per method and problem (default 10)")
    parser.add_argument("--slow-seeds", type=int, default=None,
                        help="seeds for gp, ours and Optuna's (a GP run of 100 trials takes minutes; default: --seeds)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel processes (default 2; 1 = in this process)")
    parser.add_argument("--problems", nargs="+", default=list(DEFAULT_PROBLEMS), choices=list(PROBLEMS),
                        help=f"default: {' '.join(DEFAULT_PROBLEMS)}")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--no-optuna", action="store_true", help="leave out Optuna's samplers run directly")
    e2e = parser.add_mutually_exclusive_group()
    e2e.add_argument("--end-to-end", dest="end_to_end", action="store_true", default=None,
                     help="one raytune_k8s.run per problem on a local Ray (default, except with --smoke)")
    e2e.add_argument("--no-end-to-end", dest="end_to_end", action="store_false")
    args = parser.parse_args(argv)
    if args.smoke:
        args.trials, args.seeds, args.jobs = 12, 2, 1
        given = list(argv if argv is not None else sys.argv[1:])
        if "--problems" not in given:
            args.problems = ["zdt1", "bnh"]
        if "--methods" not in given:
            args.methods = ["random", "nsga2"]
    run_e2e = args.end_to_end if args.end_to_end is not None else not args.smoke
    checkpoints = [c for c in CHECKPOINTS if c < args.trials] + [args.trials]
    _quiet()

    start = time.monotonic()
    sides = ("ours",) if args.no_optuna else ("ours", "optuna")
    order = {m: i for i, m in enumerate(("gp", "tpe", "nsga2", "random"))}  # slowest first: workers end together
    slow = args.seeds if args.slow_seeds is None else min(args.slow_seeds, args.seeds)
    tasks = sorted(((p, side, m, s) for p in args.problems for m in args.methods for side in sides
                    for s in range(slow if m in SLOW else args.seeds)),
                   key=lambda t: (order[t[2]], t[0], t[3], t[1]))
    runs: dict[tuple[str, str, str], dict[int, tuple[list[dict[str, float]], float, float]]] = {}

    def record(result: tuple[Run, list[dict[str, float]], float, float]) -> None:
        (problem, side, method, seed), metrics, wall, cpu = result
        runs.setdefault((problem, side, method), {})[seed] = (metrics, wall, cpu)
        done = sum(len(v) for v in runs.values())
        print(f"  [{done:3d}/{len(tasks)}] {problem:6s} {side:6s} {method:7s} seed {seed:2d} {wall:6.1f} s ({cpu:.1f} s CPU)",
              file=sys.stderr, flush=True)

    for result in map_tasks(run_task, [(t, args.trials) for t in tasks], args.jobs, initializer=_quiet):
        record(result)

    data: dict[str, Any] = {
        "benchmark": NAME, "smoke": args.smoke, "trials": args.trials, "pending": PENDING, "seeds": list(range(args.seeds)),
        "slow_seeds": {m: list(range(slow)) for m in SLOW if m in args.methods},
        "checkpoints": checkpoints, "jobs": args.jobs, "methods": list(args.methods), "method_text": METHOD_TEXT,
        "problems": {}, "optuna": {},
    }
    for name in args.problems:
        problem = PROBLEMS[name]
        targets = targets_of(name)
        everything = [m for (p, _, _), by_seed in runs.items() if p == name for ms, _, _ in by_seed.values() for m in ms]
        points = feasible_points(everything, targets)
        # no feasible trial at all: a point that counts nothing (every hypervolume 0)
        reference = reference_point(points, targets.directions, margin=0.1) if points else [0.0] * len(targets.directions)
        prob: dict[str, Any] = {
            "title": problem.title, "reference": problem.reference, "variables": problem.n_vars,
            "objectives": list(problem.objectives), "constraints": [c.describe() for c in targets.constraints],
            "reference_point": reference, "feasible_points": len(points),
        }
        for method in args.methods:
            for side in sides:
                summary = summarize(runs[(name, side, method)], targets, reference, checkpoints)
                if side == "ours":
                    prob[method] = summary
                else:
                    data["optuna"].setdefault(method, {})[name] = summary
        data["problems"][name] = prob
    data["comparisons"] = comparisons(data)
    if run_e2e:
        data["end_to_end_settings"] = dict(END_TO_END)
        data["end_to_end"] = {}
        with tempfile.TemporaryDirectory(prefix="mo-e2e-") as workdir:
            for name in args.problems:
                print(f"  end to end: {name}", file=sys.stderr, flush=True)
                ref = data["problems"][name]["reference_point"] if data["problems"][name]["feasible_points"] else None
                data["end_to_end"][name] = end_to_end(name, ref, Path(workdir))
    packages = ["raytune_k8s", "ray", "optuna", "numpy", "scipy", "torch"]
    publish(args.out, NAME, data, start, argv, packages, text_report(data), markdown, figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
