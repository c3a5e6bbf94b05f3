"""The benchmarks at tiny sizes (``--smoke``), so they keep working; these are not timed tests.

The four that start their own Ray in a subprocess (overhead, quota, searcher_latency,
multi_fidelity; about 7 minutes together) are marked ``benchmark_smoke`` and left out of the
default run:
``python -m pytest tests -q -m benchmark_smoke`` runs them.

search_quality runs in this process (it needs no Ray); overhead runs as ``python -m`` in a
subprocess because it starts (and stops) its own Ray clusters and must set RAY_AUTH_MODE before
Ray is imported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .helpers import REPO


def _outputs(out: Path, name: str) -> dict[str, Any]:
    """The JSON, after checking the markdown and PNG beside it."""
    assert (out / f"{name}.md").read_text().startswith("# ")
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads((out / f"{name}.json").read_text())


def test_search_quality_smoke(tmp_path):
    from benchmarks import search_quality as sq

    assert sq.main(["--smoke", "--out", str(tmp_path)]) == 0
    data = _outputs(tmp_path, "search_quality")
    assert data["smoke"] is True and data["runtime_s"] > 0
    assert set(data["problems"]) == set(sq.PROBLEM_NAMES)
    for name, prob in data["problems"].items():
        assert prob["threshold"] > 0 and 0 <= prob["fraction_within_threshold"] <= 1, name
        assert set(prob["results"]) == set(sq.METHODS), name
        for method, r in prob["results"].items():
            assert r["seeds"] == data["seeds"][method] >= 1
            for c in map(str, data["checkpoints"]):
                lo, hi = r["iqr_regret"][c]
                assert 0 <= lo <= r["median_regret"][c] <= hi, (name, method)
            reach = r["evals_to_threshold"]
            assert reach["of"] == r["seeds"] and 0 <= reach["reached"] <= reach["of"]
            assert all(e is None or 1 <= e <= data["budget"] for e in reach["per_seed"])
            assert r["ms_per_evaluation"] > 0 and r["seconds_per_run"] > 0 and r["cpu_ms_per_evaluation"] > 0
    # The tabular spaces map onto spec parameters of every kind the searchers must handle.
    kinds = {p["parameterType"] for p in data["problems"]["hpolib-protein-structure"]["parameters"]}
    assert kinds == {"categorical", "discrete", "double"}


def test_search_quality_runs_are_seeded_and_regret_is_exact():
    from benchmarks import search_quality as sq

    problem = sq.get_problem("nasbench201-cifar10")
    first = sq.run_raytune_k8s(problem, "tpe", 3, 8)
    assert first == sq.run_raytune_k8s(problem, "tpe", 3, 8), "random_state seeds the searcher"
    curve = sq.regret_curve(problem, first)
    assert (curve >= 0).all() and (curve[1:] <= curve[:-1]).all()
    best = max(problem.evaluate.means, key=problem.evaluate.means.get)  # the table's best cell
    config = {name: choices[int(i)] for (name, choices), i in zip(problem.evaluate.search_space.items(), best)}
    assert problem.regret(sq.trial({**config, "problem": problem.name})["val_acc"]) == 0


@pytest.mark.benchmark_smoke
def test_scale_smoke(tmp_path):
    """400 trivial trials, SIGKILLed with their Ray at 200 and resumed; plain Tune beside them."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--smoke", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    data = _outputs(tmp_path, "scale")
    assert data["trials"] == 400 and len(data["blocks_ms_per_trial"]) == 4 and all(ms > 0 for ms in data["blocks_ms_per_trial"])
    assert 200 <= data["killed_at"] < 400 and data["resume_s"] > 0
    check = data["resume_check"]
    assert check["ok"] and check["lost"] == 0 and check["ended_twice"] == 0 and check["ended_before_kill"] >= 200, check
    trace = data["resume_memory_trace"]  # the resumed driver's memory, every 0.5 s
    assert trace and all(0 < x["shared_mb"] < x["rss_mb"] for x in trace) and trace[-1]["t"] > trace[0]["t"]
    assert data["driver_traced_peak_mb"] >= max(x["rss_mb"] for x in trace)
    assert all(len(data[f"{k}_mb_by_block"]) == 4 for k in ("driver", "head", "searcher", "workers"))
    assert data["searcher_peak_mb"] > 0 and data["results_s"] > 0 and data["report_s"] > 0
    plain = data["plain_tune"]
    assert plain["trials_done"] == 200 and len(plain["blocks_ms_per_trial"]) == 2 and not plain["stopped_by_memory"]
    assert set(data["checks"]) >= {"every_block_le_16_ms", "driver_peak_le_1500_mb", "resume_nothing_lost_or_rerun"}


@pytest.mark.benchmark_smoke
def test_overhead_smoke(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.overhead", "--smoke", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    data = _outputs(tmp_path, "overhead")
    assert data["smoke"] is True and data["sizes"] == [4, 8]
    for key in ("raytune_k8s", "ray_tune_reuse", "ray_tune_default", "optuna", "optuna_tpe"):
        assert data[key]["marginal_between"] == (data["default_sizes"] if key == "ray_tune_default" else data["sizes"]), key
        r = data[key]
        low, high = r["marginal_between"]
        # Each N's wall time is the median of its runs, and the marginal cost is the slope between
        # the two N's (noise can make it negative; the relation holds whatever the machine).
        for n in (low, high):
            walls = [run["wall_s"] for run in r["runs"][str(n)]]
            assert walls and all(w > 0 for w in walls) and r["wall_s"][str(n)] == pytest.approx(statistics.median(walls)), key
        assert r["marginal_ms_per_trial"] == pytest.approx(1000 * (r["wall_s"][str(high)] - r["wall_s"][str(low)]) / (high - low)), key
        fastest = [min(run["wall_s"] for run in r["runs"][str(n)]) for n in (low, high)]
        assert r["marginal_ms_per_trial_fastest"] == pytest.approx(1000 * (fastest[1] - fastest[0]) / (high - low)), key
        assert r["ms_per_trial"] == pytest.approx(1000 * r["wall_s"][str(low)] / low), key  # per trial at the small N
        assert 0 < r["first_trial_s"] < r["wall_s"][str(low)], key
    assert data["cli_cold_s"] is not None and data["cli_cold_s"] > 0, data["cli_cold_error"]
    # The simulated cluster scaled to the experiment's parallelism and back.
    assert data["autoscaling"]["available"] is True
    assert data["scale_up_s"] > 0 and data["scale_down_s"] > 0
    assert data["autoscaling"]["most_workers"] == data["parallel"]


def _run_module(name: str, out: Path, *extra: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--smoke", "--out", str(out), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return _outputs(out, name)


@pytest.mark.benchmark_smoke
def test_quota_replay_smoke(tmp_path):
    """Both tenants on their own simulated autoscaling clusters, quotas scaled down 3x."""
    data = _run_module("quota", tmp_path)
    assert data["mode"] == "replay"
    for user, slots in (("user1", 3), ("user2", 1)):
        u = data["users"][user]
        assert u["mode"] == "replay" and u["slots"] == slots and u["trials"] == 4
        assert 1 <= u["parallel"] <= slots  # never more at once than the quota allows
        for key in ("quota_vcpu", "wall_min", "ideal_min", "efficiency"):
            assert u[key] > 0, (user, key)
        # The ideal is the paper's trials packed into the slots with no overhead: never beaten.
        assert u["efficiency"] <= 1 and u["ideal_min"] <= u["wall_min"], (user, u["ideal_min"], u["wall_min"])
        # Workers that came up late only delay the ideal.
        assert len(u["workers_up_at_s"]) == slots and u["ideal_given_workers_min"] >= u["ideal_min"]
        assert u["efficiency_given_workers"] > 0 and u["first_trial_s"] > 0


def test_the_ideal_schedule_waits_for_each_worker():
    from benchmarks.quota import ideal_makespan

    assert ideal_makespan([2, 2], 2) == 2
    assert ideal_makespan([2, 2], 2, ready_at=[0, 5]) == 4  # the late worker is never needed
    assert ideal_makespan([2, 2], 2, ready_at=[3, 5]) == 7
    assert ideal_makespan([1, 1, 1], 3, ready_at=[4]) == 2  # unlisted workers are there from the start


@pytest.mark.benchmark_smoke
def test_searcher_latency_smoke(tmp_path):
    data = _run_module("searcher_latency", tmp_path)
    for run in ("actor", "sync"):
        assert data[run]["trials"] == 8 and data[run]["p99_wait_ms"] > 0 and 0 <= data[run]["slot_idle_fraction"] < 1
    assert data["restored_observations"] == data["completed_trials"] == 8


def test_pending_points_smoke(tmp_path):
    from benchmarks import pending_points as pp

    assert pp.main(["--smoke", "--out", str(tmp_path)]) == 0
    data = _outputs(tmp_path, "pending_points")
    assert set(data["results"]) == {"believer/2", "max/2"}
    for run in data["runs"]:
        assert len(run["curve"]) == 14 and run["curve"] == sorted(run["curve"], reverse=True)  # best so far only improves
        assert run["best"] == run["curve"][-1] > -3.3224


def test_mnist_curves_table_is_what_the_mnist_torch_trial_trains():
    """The multi-fidelity table holds real learning curves: one configuration trained again by
    the mnist-torch trial's own code gives the table's first epochs (to a digit or two of the
    1,000 validation digits: BLAS kernels may differ between CPUs)."""
    from benchmarks import mnist_curves as mc

    table = mc.load_table()
    assert table["epochs"] == mc.EPOCHS and table["grid"] == mc.GRID
    assert set(table["curves"]) == {mc.key(c) for c in mc.configurations()}
    for curve in table["curves"].values():
        assert len(curve["val"]) == mc.EPOCHS and all(0 <= v <= 1 for v in curve["val"])
    config = {"lr": 0.1, "optimizer": "sgd", "batch-size": 256, "num-hidden": 16, "num-layers": 1}
    again = mc.train_curve(config, epochs=2)["val"]
    assert again == pytest.approx(table["curves"][mc.key(config)]["val"][:2], abs=0.002)
    # Early epochs mislead: the best configuration after 1 epoch is not the best after 27.
    first = max(table["curves"], key=lambda k: table["curves"][k]["val"][0])
    last = max(table["curves"], key=lambda k: table["curves"][k]["val"][-1])
    assert first != last


@pytest.mark.benchmark_smoke
def test_multi_fidelity_smoke(tmp_path):
    data = _run_module("multi_fidelity", tmp_path)
    assert set(data["methods"]) == {"random", "random+asha", "hyperband", "pbt"}
    for method, r in data["methods"].items():
        assert r["seeds"] == 1 and len(r["median"]) == data["budget_epochs"], method
        regrets = [r["regret_at"][str(c)] for c in data["checkpoints"]]
        assert all(0 <= x for x in regrets) and regrets == sorted(regrets, reverse=True), method
    # Early stopping spends fewer epochs per trial than training every trial to the end.
    assert data["methods"]["random+asha"]["trials"] > data["methods"]["random"]["trials"]


def test_multi_objective_smoke(tmp_path):
    import math

    from benchmarks import multi_objective as mo

    assert mo.main(["--smoke", "--out", str(tmp_path)]) == 0
    data = _outputs(tmp_path, "multi_objective")
    assert data["smoke"] is True and data["runtime_s"] > 0 and data["seeds"] == [0, 1] and data["trials"] == 12
    assert set(data["problems"]) == {"zdt1", "bnh"} and data["methods"] == ["random", "nsga2"]
    assert "end_to_end" not in data  # only when asked, with --smoke
    for name, prob in data["problems"].items():
        ref = prob["reference_point"]
        assert len(ref) == 2 and all(math.isfinite(x) for x in ref), name
        for r in [prob[m] for m in data["methods"]] + [data["optuna"][m][name] for m in data["methods"]]:
            hv = r["hypervolume_per_seed"]
            assert len(hv) == 2 and all(math.isfinite(h) and h > 0 for h in hv), name
            assert r["hypervolume_median"] == pytest.approx(statistics.median(hv))
            assert r["front_size_median"] >= 1 and 0 < r["feasible_fraction"] <= 1
    # Every check ran, with a p-value and a verdict.
    assert {(c["problem"], c["method"]) for c in data["comparisons"]} == {(p, m) for p in data["problems"] for m in data["methods"]}
    assert all(0 <= c["p_value"] <= 1 and isinstance(c["passed"], bool) for c in data["comparisons"])
    # The front of a constrained run holds feasible trials only, and the hypervolume is the front's.
    targets = mo.targets_of("bnh")
    infeasible_seen = 0
    for method in data["methods"]:
        metrics = mo.run_ours("bnh", method, 0, data["trials"])
        points = mo.front_points(metrics, targets)
        feasible = [targets.values(m) for m in metrics if targets.feasible(m)]
        infeasible = [targets.values(m) for m in metrics if not targets.feasible(m)]
        infeasible_seen += len(infeasible)
        assert points and all(p in feasible and p not in infeasible for p in points), method
        hv, size = mo.front_hypervolume(metrics, targets, data["problems"]["bnh"]["reference_point"])
        assert size == len(points) and hv == data["problems"]["bnh"][method]["hypervolume_per_seed"][0], method
    assert infeasible_seen  # BNH's c1 <= 25 cuts off part of the box: the front left some trials out
