"""The multi-objective test problems against values that follow from their published definitions."""

from __future__ import annotations

import math

import pytest

from raytune_k8s.spec import parse_spec
from raytune_k8s.trials import pareto_problems as pp


def _config(name: str, xs: list[float]) -> dict[str, object]:
    return {"problem": name, **{f"x{i}": x for i, x in enumerate(xs, 1)}}


def test_zdt_fronts():
    # x2..xn = 0 gives g = 1: the point is on the Pareto front.
    xs = [0.5] + [0.0] * 29
    assert pp.trial(_config("zdt1", xs)) == pytest.approx({"f1": 0.5, "f2": 1 - math.sqrt(0.5)})
    assert pp.trial(_config("zdt2", xs)) == pytest.approx({"f1": 0.5, "f2": 1 - 0.25})
    # x2..xn = 1 gives g = 10, the worst.
    far = pp.trial(_config("zdt1", [0.0] + [1.0] * 29))
    assert far == pytest.approx({"f1": 0.0, "f2": 10.0})


def test_dtlz2_sphere():
    # The last k = 10 variables at 0.5 give g = 0: the point is on the unit sphere.
    for x1, x2 in ((0.0, 0.0), (0.3, 0.7), (1.0, 0.25)):
        f = pp.trial(_config("dtlz2", [x1, x2] + [0.5] * 10))
        assert set(f) == {"f1", "f2", "f3"}
        assert f["f1"] ** 2 + f["f2"] ** 2 + f["f3"] ** 2 == pytest.approx(1.0)
    # The last variables at 0 give g = 10 * 0.25: sum(f^2) = (1 + g)^2.
    f = pp.trial(_config("dtlz2", [0.3, 0.7] + [0.0] * 10))
    assert sum(v**2 for v in f.values()) == pytest.approx(3.5**2)
    assert pp.trial(_config("dtlz2", [0.0] * 2 + [0.5] * 10)) == pytest.approx({"f1": 1.0, "f2": 0.0, "f3": 0.0})


def test_bnh_values_and_feasibility():
    spec = parse_spec({"name": "bnh", **pp.spec_parts("bnh"), "algorithm": {"algorithmName": "nsga2"},
                       "trial": {"function": "raytune_k8s.trials.pareto_problems:trial", "fixedParameters": {"problem": "bnh"}},
                       "maxTrialCount": 4, "parallelTrialCount": 1})
    targets = spec.targets
    origin = pp.trial(_config("bnh", [0.0, 0.0]))
    assert origin == pytest.approx({"f1": 0.0, "f2": 50.0, "c1": 25.0, "c2": 73.0})
    assert targets.feasible(origin)  # c1 = 25 is on its bound: met
    assert targets.feasible(pp.trial(_config("bnh", [5.0, 3.0])))  # f = (136, 4): an end of the front
    outside = pp.trial(_config("bnh", [0.0, 3.0]))  # c1 = 25 + 9 > 25; c2 = 64 + 36
    assert not targets.feasible(outside) and targets.violations(outside) == pytest.approx([9.0, 7.7 - 100.0])
    assert targets.violation_names() == ["c1<=25", "c2>=7.7"]


def test_osy_values_and_feasibility():
    spec = parse_spec({"name": "osy", **pp.spec_parts("osy"), "algorithm": {"algorithmName": "nsga2"},
                       "trial": {"function": "raytune_k8s.trials.pareto_problems:trial", "fixedParameters": {"problem": "osy"}},
                       "maxTrialCount": 4, "parallelTrialCount": 1})
    targets = spec.targets
    # x = (5, 1, 5, 0, 5, 10): the front's end with the lowest f1, every constraint on or inside its bound.
    end = pp.trial(_config("osy", [5.0, 1.0, 5.0, 0.0, 5.0, 10.0]))
    assert end == pytest.approx({"f1": -274.0, "f2": 176.0, "c1": 6.0, "c2": -4.0, "c3": 2.0, "c4": 4.0, "c5": 14.0})
    assert targets.feasible(end)
    # The box's lower corner: x1 + x2 = 0 < 2 (infeasible); c4 = 4 and c5 = 4 lie on their bounds.
    corner = pp.trial(_config("osy", [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]))
    assert not targets.feasible(corner)
    assert targets.violations(corner) == pytest.approx([0.0 - 6.0, 2.0 - 0.0, 0.0 - 2.0, 0.0 - 2.0, 4.0 - 4.0, 4.0 - 4.0])
    assert targets.violation_names() == ["c1<=6", "c1>=2", "c2<=2", "c3<=2", "c4<=4", "c5>=4"]


def test_spec_parts_parse_for_every_problem():
    for name, problem in pp.PROBLEMS.items():
        parts = pp.spec_parts(name)
        spec = parse_spec({"name": name, **parts, "algorithm": {"algorithmName": "random"},
                           "trial": {"function": "raytune_k8s.trials.pareto_problems:trial", "fixedParameters": {"problem": name}},
                           "maxTrialCount": 2, "parallelTrialCount": 1})
        assert [p.name for p in spec.parameters] == problem.variables
        assert spec.targets.metrics == list(problem.objectives) and spec.targets.directions == ["minimize"] * len(problem.objectives)
    assert pp.PROBLEMS["zdt1"].n_vars == 30 and pp.PROBLEMS["dtlz2"].n_vars == 12 and pp.PROBLEMS["bnh"].n_vars == 2
    with pytest.raises(KeyError):
        pp.trial({"problem": "zdt9"})
