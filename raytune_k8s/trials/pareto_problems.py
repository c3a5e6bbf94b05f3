"""Multi-objective test problems as trials, written from their published definitions: ZDT1 and
ZDT2 (two objectives), DTLZ2 with three objectives, OSY (two objectives, six constraints) and BNH
(two objectives, two constraints).

Every objective is minimized. A problem's variables are the spec parameters ``x1`` ... ``xn``
(1-based, as the papers write them); :func:`spec_parts` gives an experiment's ``parameters``,
``objectives`` and ``constraints`` for a problem, and :func:`trial` is the function trial
(``trial.function: raytune_k8s.trials.pareto_problems:trial`` with the fixed parameter
``problem``) that returns each objective (``f1``, ``f2``, ...) and constrained metric (``c1``,
``c2``, ...) by name. No Ray here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class ParetoProblem:
    """A test problem: its box, its objectives (all minimized), its constraints as metrics with
    bounds, and the function from the variables to every metric."""

    name: str
    title: str
    reference: str
    bounds: tuple[tuple[float, float], ...]
    objectives: tuple[str, ...]
    #: constraint metric -> {"min": ..., "max": ...} (either or both): feasible when within
    constraints: tuple[tuple[str, dict[str, float]], ...]
    evaluate: Callable[[Sequence[float]], dict[str, float]]

    @property
    def n_vars(self) -> int:
        return len(self.bounds)

    @property
    def variables(self) -> list[str]:
        return [f"x{i}" for i in range(1, self.n_vars + 1)]

    def __call__(self, xs: Sequence[float]) -> dict[str, float]:
        if len(xs) != self.n_vars:
            raise ValueError(f"{self.name} takes {self.n_vars} variables, got {len(xs)}")
        return self.evaluate([float(x) for x in xs])


def zdt1(xs: Sequence[float]) -> dict[str, float]:
    """ZDT1 (Zitzler, Deb and Thiele 2000, "Comparison of multiobjective evolutionary algorithms:
    empirical results", Evolutionary Computation 8(2):173-195): f1 = x1,
    g = 1 + 9 * sum(x2..xn) / (n - 1), f2 = g * (1 - sqrt(f1 / g)); convex front f2 = 1 - sqrt(f1)
    where g = 1 (x2..xn = 0)."""
    f1, g = xs[0], _zdt_g(xs)
    return {"f1": f1, "f2": g * (1 - math.sqrt(f1 / g))}


def zdt2(xs: Sequence[float]) -> dict[str, float]:
    """ZDT2 (the same paper): ZDT1's f1 and g, f2 = g * (1 - (f1 / g)^2); concave front
    f2 = 1 - f1^2."""
    f1, g = xs[0], _zdt_g(xs)
    return {"f1": f1, "f2": g * (1 - (f1 / g) ** 2)}


def _zdt_g(xs: Sequence[float]) -> float:
    return 1 + 9 * sum(xs[1:]) / (len(xs) - 1)


def dtlz2(xs: Sequence[float], objectives: int = 3) -> dict[str, float]:
    """DTLZ2 (Deb, Thiele, Laumanns and Zitzler 2002, "Scalable multi-objective optimization test
    problems", Proc. CEC 2002, 825-830) with M objectives: g = sum((x_i - 0.5)^2) over the last
    k = n - M + 1 variables, f_m = (1 + g) * prod(cos(x_j pi / 2), j < M - m + 1) *
    sin(x_{M-m+1} pi / 2) (no sine for f_1); the front is the unit sphere's positive part
    (g = 0: the last k variables at 0.5), so sum(f_m^2) = (1 + g)^2."""
    m = objectives
    g = sum((x - 0.5) ** 2 for x in xs[m - 1:])
    out = {}
    for i in range(1, m + 1):  # f_i: cosines of the first M - i angles, times the sine of the next one
        value = 1 + g
        for x in xs[: m - i]:
            value *= math.cos(x * math.pi / 2)
        if i > 1:
            value *= math.sin(xs[m - i] * math.pi / 2)
        out[f"f{i}"] = value
    return out


def bnh(xs: Sequence[float]) -> dict[str, float]:
    """BNH (Binh and Korn 1997, "MOBES: a multiobjective evolution strategy for constrained
    optimization problems", Proc. 3rd Int. Conf. on Genetic Algorithms (Mendel 97), 176-182;
    as in Deb 2001, "Multi-Objective Optimization using Evolutionary Algorithms"): x1 in [0, 5],
    x2 in [0, 3], f1 = 4 x1^2 + 4 x2^2, f2 = (x1 - 5)^2 + (x2 - 5)^2, subject to
    c1 = (x1 - 5)^2 + x2^2 <= 25 and c2 = (x1 - 8)^2 + (x2 + 3)^2 >= 7.7."""
    x1, x2 = xs
    return {
        "f1": 4 * x1**2 + 4 * x2**2,
        "f2": (x1 - 5) ** 2 + (x2 - 5) ** 2,
        "c1": (x1 - 5) ** 2 + x2**2,
        "c2": (x1 - 8) ** 2 + (x2 + 3) ** 2,
    }


def osy(xs: Sequence[float]) -> dict[str, float]:
    """OSY (Osyczka and Kundu 1995, "A new method to solve generalized multicriteria optimization
    problems using the simple genetic algorithm", Structural Optimization 10(2):94-99; as in Deb
    2001): x1, x2, x6 in [0, 10], x3, x5 in [1, 5], x4 in [0, 6];
    f1 = -(25 (x1 - 2)^2 + (x2 - 2)^2 + (x3 - 1)^2 + (x4 - 4)^2 + (x5 - 1)^2), f2 = sum(x_i^2),
    subject to 2 <= x1 + x2 <= 6 (``c1``: the paper's first two constraints), x2 - x1 <= 2 (``c2``),
    x1 - 3 x2 <= 2 (``c3``), (x3 - 3)^2 + x4 <= 4 (``c4``) and (x5 - 3)^2 + x6 >= 4 (``c5``).
    About 3 % of the box is feasible: a problem where the constraints, not only the objectives,
    decide what a search finds."""
    x1, x2, x3, x4, x5, x6 = xs
    return {
        "f1": -(25 * (x1 - 2) ** 2 + (x2 - 2) ** 2 + (x3 - 1) ** 2 + (x4 - 4) ** 2 + (x5 - 1) ** 2),
        "f2": sum(x**2 for x in xs),
        "c1": x1 + x2,
        "c2": x2 - x1,
        "c3": x1 - 3 * x2,
        "c4": (x3 - 3) ** 2 + x4,
        "c5": (x5 - 3) ** 2 + x6,
    }


#: k = 10 distance variables for DTLZ2 with M = 3 (Deb et al. 2002's choice): n = M + k - 1.
DTLZ2_K = 10

PROBLEMS: dict[str, ParetoProblem] = {
    "zdt1": ParetoProblem("zdt1", "ZDT1 (30-d, 2 objectives, convex front)", "Zitzler, Deb and Thiele 2000",
                          ((0.0, 1.0),) * 30, ("f1", "f2"), (), zdt1),
    "zdt2": ParetoProblem("zdt2", "ZDT2 (30-d, 2 objectives, concave front)", "Zitzler, Deb and Thiele 2000",
                          ((0.0, 1.0),) * 30, ("f1", "f2"), (), zdt2),
    "dtlz2": ParetoProblem("dtlz2", "DTLZ2 (12-d, 3 objectives, spherical front)", "Deb, Thiele, Laumanns and Zitzler 2002",
                           ((0.0, 1.0),) * (3 + DTLZ2_K - 1), ("f1", "f2", "f3"), (), dtlz2),
    "osy": ParetoProblem("osy", "OSY (6-d, 2 objectives, 6 constraints)", "Osyczka and Kundu 1995",
                         ((0.0, 10.0), (0.0, 10.0), (1.0, 5.0), (0.0, 6.0), (1.0, 5.0), (0.0, 10.0)), ("f1", "f2"),
                         (("c1", {"min": 2.0, "max": 6.0}), ("c2", {"max": 2.0}), ("c3", {"max": 2.0}),
                          ("c4", {"max": 4.0}), ("c5", {"min": 4.0})), osy),
    "bnh": ParetoProblem("bnh", "BNH (2-d, 2 objectives, 2 constraints)", "Binh and Korn 1997",
                         ((0.0, 5.0), (0.0, 3.0)), ("f1", "f2"), (("c1", {"max": 25.0}), ("c2", {"min": 7.7})), bnh),
}


def get(name: str) -> ParetoProblem:
    try:
        return PROBLEMS[name]
    except KeyError:
        raise KeyError(f"unknown problem {name!r}; choose from {', '.join(PROBLEMS)}") from None


def spec_parts(name: str) -> dict[str, Any]:
    """An experiment's ``parameters``, ``objectives`` and ``constraints`` for problem ``name``."""
    problem = get(name)
    return {
        "parameters": [{"name": v, "parameterType": "double", "feasibleSpace": {"min": lo, "max": hi}}
                       for v, (lo, hi) in zip(problem.variables, problem.bounds)],
        "objectives": [{"metric": m, "direction": "minimize"} for m in problem.objectives],
        "constraints": [{"metric": metric, **bounds} for metric, bounds in problem.constraints],
    }


def trial(config: dict[str, Any]) -> dict[str, float]:
    """The function trial: every metric of problem ``config['problem']`` at ``config``'s ``x1`` ... ``xn``."""
    problem = get(str(config["problem"]))
    return problem([float(config[v]) for v in problem.variables])
