"""Several objectives with constraints (issue 29): the file and its refusals, the searchers'
saved state, the Pareto front (every feasible non-dominated trial and nothing else), and one
experiment on the session's Ray with the summary, the progress line, the report and the mirror."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from raytune_k8s.spec import SpecError, load_document, parse_spec


def _spec(**changes: Any) -> dict[str, Any]:
    """BNH (two objectives, two constraints) as an experiment file."""
    spec: dict[str, Any] = {
        "name": "bnh",
        "objectives": [{"metric": "f1", "direction": "minimize"}, {"metric": "f2", "direction": "minimize"}],
        "constraints": [{"metric": "c1", "max": 25.0}, {"metric": "c2", "min": 7.7}],
        "algorithm": {"algorithmName": "nsga2", "algorithmSettings": [{"name": "random_state", "value": 3}]},
        "parameters": [{"name": "x1", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "5"}},
                       {"name": "x2", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "3"}}],
        "trial": {"function": "raytune_k8s.trials.pareto_problems:trial", "fixedParameters": {"problem": "bnh"},
                  "resources": {"cpu": 1}},
        "maxTrialCount": 20,
        "parallelTrialCount": 2,
    }
    spec.update(changes)
    return spec


# ---------------------------------------------------------------- the file


def test_objectives_become_the_objective_and_its_metrics():
    spec = parse_spec(_spec())
    assert (spec.objective.metric, spec.objective.type) == ("f1", "minimize")
    assert spec.objective.additional_metrics == ["f2", "c1", "c2"]  # so every collector reads them
    assert spec.objective.strategy("f2") == "min" and spec.objective.strategy("c1") == "latest"
    assert spec.targets.several and spec.targets.constrained
    assert spec.targets.violation_names() == ["c1<=25", "c2>=7.7"]
    assert spec.targets.violations({"f1": 1, "f2": 2, "c1": 30, "c2": 8}) == pytest.approx([5.0, -0.3])
    assert not spec.targets.feasible({"c1": 30, "c2": 8}) and spec.targets.feasible({"c1": 20, "c2": 8})
    assert parse_spec(spec.to_yaml()) == spec  # written out and read back: the same experiment


@pytest.mark.parametrize("changes, line", [
    ({"objective": {"type": "minimize", "objectiveMetricName": "f1", "goal": 1.0}},
     "objective.goal: a goal stops one objective's search; with several objectives there is no single value to reach: "
     "remove it (maxTrialCount ends the run)"),
    *[({"algorithm": {"algorithmName": name}},
       f"algorithm.algorithmName: '{name}' takes one objective and no constraints; with several objectives choose one "
       "of random, grid, sobol, tpe, multivariate-tpe, nsga2, nsga3, gp")
      for name in ("cmaes", "hyperband", "pbt", "darts", "enas")],
    *[({"earlyStopping": {"algorithmName": rule}},
       f"earlyStopping: '{rule}' compares trials on one objective; it does not combine with several objectives: remove it")
      for rule in ("medianstop", "asha", "hyperband")],
    ({"algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "engine", "value": "hyperopt"}]}},
     "algorithm.algorithmSettings: engine: hyperopt takes one objective and no constraints; with several objectives use "
     "Optuna's TPE (the default engine)"),
    ({"constraints": [{"metric": "c1"}]}, "constraints[0]: give max, min or both"),
    ({"constraints": [{"metric": "c1", "min": 2, "max": 1}]}, "constraints[0]: min 2.0 is greater than max 1.0"),
    ({"objectives": [{"metric": "f1", "direction": "minimize"}, {"metric": "f1", "direction": "maximize"}]},
     "objectives[1].metric: 'f1' is already objective 0"),
    ({"objectives": [{"metric": "f1", "direction": "up"}, {"metric": "f2", "direction": "minimize"}]},
     "objectives[0].direction: Input should be 'maximize' or 'minimize'"),
    ({"objective": {"type": "maximize", "objectiveMetricName": "f1"}},
     "objective.objectiveMetricName: given beside objectives, objective must be objectives[0] ('f1', minimize), got "
     "('f1', maximize)"),
    ({"objectives": [], "objective": {"type": "minimize", "objectiveMetricName": "f1"},
      "algorithm": {"algorithmName": "bayesianoptimization"}},
     "algorithm.algorithmName: 'bayesianoptimization' takes one objective and no constraints; with constraints choose "
     "one of random, grid, sobol, tpe, multivariate-tpe, nsga2, nsga3, gp"),
])
def test_what_does_not_combine_is_refused_with_one_line(changes, line):
    with pytest.raises(SpecError) as caught:
        parse_spec(_spec(**changes))
    assert str(caught.value) == line


def test_a_katib_experiment_keeps_one_objective():
    manifest = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "bnh"},
                "spec": {k: v for k, v in _spec().items() if k not in ("name", "trial")}}
    with pytest.raises(SpecError) as caught:
        load_document(manifest)
    assert str(caught.value).splitlines()[0] == ("spec.objectives: unknown field (a Katib Experiment has one objective and no "
                                                 "constraints; several objectives and constraints are this project's: write the "
                                                 "short format or an OptimizationJob)")


def test_an_optimization_job_takes_several_objectives_and_constraints():
    job = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "OptimizationJob", "metadata": {"name": "bnh"},
        "spec": {
            "objectives": [{"metric": "f1", "direction": "Minimize"}, {"metric": "f2", "direction": "Maximize"}],
            "constraints": [{"metric": "c1", "max": 25}],
            "searchAlgorithm": {"raytune-k8s.io/algorithm": {"name": "nsga2"}},
            "parameters": [{"name": "lr", "searchSpace": {"uniform": {"min": "0.1", "max": "1"}}}],
            "numTrials": 4,
            "trainJobTemplate": {"spec": {"runtimeRef": {"name": "torch-distributed"},
                                          "trainer": {"image": "python:3.11", "command": ["python", "-c", "print(1)"]}}},
        },
    }
    loaded = load_document(job)
    assert [(o.metric, o.direction) for o in loaded.spec.targets.objectives] == [("f1", "minimize"), ("f2", "maximize")]
    assert loaded.spec.targets.violation_names() == ["c1<=25"]
    assert any(n.startswith("spec.objectives: several objectives") for n in loaded.notes)
    job["spec"]["constraints"] = [{"metric": "c1"}]
    with pytest.raises(SpecError, match=r"spec\.constraints\[0\]: give max, min or both"):
        load_document(job)


# ---------------------------------------------------------------- search


@pytest.mark.parametrize("algorithm", ["nsga2", "nsga3", "tpe", "multivariate-tpe", "gp", "random", "sobol"])
def test_a_searcher_restored_mid_run_suggests_what_it_would_have(algorithm, tmp_path):
    from raytune_k8s.search import create_searcher
    from raytune_k8s.search.space import SearchSpace
    from raytune_k8s.trials.pareto_problems import trial

    spec = parse_spec(_spec(algorithm={"algorithmName": algorithm, "algorithmSettings": [
        {"name": "random_state", "value": 5}, *([{"name": "population_size", "value": 4}] if "nsga" in algorithm else []),
        *([{"name": "n_startup_trials", "value": 4}] if algorithm in ("gp", "tpe", "multivariate-tpe") else [])]}))

    def searcher():
        return create_searcher(spec.algorithm, SearchSpace.from_spec(spec), spec.objective, targets=spec.targets)

    def drive(s, first: int, count: int) -> list[dict]:
        configs = []
        for i in range(first, first + count):
            config = s.suggest(f"t{i}")
            configs.append(config)
            s.on_trial_complete(f"t{i}", trial({**config, "problem": "bnh"}))
        return configs

    running = searcher()
    drive(running, 0, 6)  # past the samplers' random start-up (4) and NSGA's first generation (4)
    running.save(str(tmp_path / "state.pkl"))
    restored = searcher()
    restored.restore(str(tmp_path / "state.pkl"))
    assert drive(restored, 6, 3) == drive(running, 6, 3)


def test_constraints_reach_the_sampler_s_own_study():
    from raytune_k8s.search import create_searcher
    from raytune_k8s.search.space import SearchSpace

    spec = parse_spec(_spec())
    s = create_searcher(spec.algorithm, SearchSpace.from_spec(spec), spec.objective, targets=spec.targets)
    s.suggest("a"), s.suggest("b"), s.suggest("c")
    s.on_trial_complete("a", {"f1": 1.0, "f2": 2.0, "c1": 30.0, "c2": 8.0})  # c1 above its max
    s.on_trial_complete("b", {"f1": 1.0, "f2": 2.0, "c2": 8.0})  # c1 missing: cannot be judged, told as failed
    s.on_trial_complete("c", None, error=True)
    a, b, c = s.study.get_trials()
    assert a.state.name == "COMPLETE" and a.values == [1.0, 2.0] and a.constraints == pytest.approx({"c1<=25": 5.0, "c2>=7.7": -0.3})
    assert b.state.name == "FAIL" and c.state.name == "FAIL"


# ---------------------------------------------------------------- the front


def _dominates(a: list[float], b: list[float]) -> bool:  # minimizing both
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _expected_front(rows: list[dict], targets) -> set[str]:
    """Every feasible finished trial no other feasible finished trial dominates (brute force)."""
    feasible = [r for r in rows if r["status"] == "Succeeded" and targets.feasible(r["metrics"])]
    values = {r["trial_id"]: [r["metrics"][m] for m in targets.metrics] for r in feasible}
    return {t for t, v in values.items() if not any(_dominates(w, v) for u, w in values.items() if u != t)}


def test_one_objective_with_a_constraint_keeps_best_and_takes_the_best_feasible(tmp_path):
    from raytune_k8s.results.summary import build_summary

    spec = parse_spec(_spec(objectives=[], objective={"type": "minimize", "objectiveMetricName": "f1"},
                            constraints=[{"metric": "c1", "max": 25.0}]))
    rows = [{"trial_id": t, "name": f"bnh-{t}", "status": "Succeeded", "params": {"x1": x}, "objective": f1,
             "metrics": {"f1": f1, "c1": c1}, "observation": {}, "iterations": 1, "error": None}
            for t, x, f1, c1 in [("a", 0.0, 1.0, 30.0), ("b", 1.0, 2.0, 20.0), ("c", 2.0, 3.0, 10.0)]]
    summary = build_summary(spec, rows, wall_s=1.0, experiment_dir=tmp_path)
    assert summary["best"]["trial_id"] == "b"  # "a" is better on f1, and infeasible
    assert [p["trial_id"] for p in summary["pareto_front"]] == ["b"]
    assert (summary["feasible"], summary["infeasible"]) == (2, 1)


@pytest.fixture(scope="module")
def bnh_run(tmp_path_factory, ray_head):
    """One constrained two-objective experiment on the session's Ray, mirrored into SQLite."""
    import ray

    from raytune_k8s import run

    if not ray.is_initialized():
        ray.init(address=ray_head.address, log_to_driver=False)
    base = tmp_path_factory.mktemp("bnh")
    # f1 <= 60 as well: about half of BNH's box is infeasible, so the front must leave trials out
    spec = _spec(constraints=[{"metric": "c1", "max": 25.0}, {"metric": "c2", "min": 7.7}, {"metric": "f1", "max": 60.0}],
                 algorithm={"algorithmName": "nsga2", "algorithmSettings": [{"name": "random_state", "value": 3},
                                                                            {"name": "population_size", "value": 6}]})
    storage = f"sqlite:///{base / 'optuna.db'}"
    summary = run(spec, storage_path=base / "runs", report=True, optuna_storage=storage)
    return summary, storage, parse_spec(spec)


def test_the_front_holds_every_feasible_non_dominated_trial_and_nothing_else(bnh_run, ray_connected):
    summary, _, spec = bnh_run
    assert summary["status"] == "Succeeded" and summary["trials_total"] == 20, summary["reason"]
    rows = summary["trial_table"]
    front = {p["trial_id"] for p in summary["pareto_front"]}
    assert front == _expected_front(rows, spec.targets) and front
    by_id = {r["trial_id"]: r for r in rows}
    assert all(by_id[t]["feasible"] and spec.targets.feasible(by_id[t]["metrics"]) for t in front)  # never an infeasible one
    assert summary["infeasible"] >= 1 and summary["feasible"] + summary["infeasible"] == 20
    for p in summary["pareto_front"]:
        assert p["values"] == {m: by_id[p["trial_id"]]["metrics"][m] for m in ("f1", "f2")}
    volume = summary["hypervolume"]
    assert volume["value"] > 0 and len(volume["reference_point"]) == 2
    assert summary["best"]["trial_id"] in front
    saved = json.loads((Path(summary["experiment_dir"]) / "summary.json").read_text())
    assert saved["pareto_front"] == summary["pareto_front"]


def test_the_report_and_the_mirror_show_the_front(bnh_run, ray_connected):
    import optuna

    summary, storage, _ = bnh_run
    page = (Path(summary["experiment_dir"]) / "report.html").read_text()
    for key in ("pareto", "hypervolume"):
        section = page.split(f'<section id="{key}">', 1)[1].split("</section>", 1)[0]
        assert "Not drawn" not in section and f"plot-{key}" in section
    study = optuna.load_study(study_name="bnh", storage=storage)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"] and study.metric_names == ["f1", "f2"]
    mirrored = {t.user_attrs["raytune_trial_id"]: t for t in study.trials}
    assert len(mirrored) == 20 and all(len(t.constraints) == 3 for t in mirrored.values() if t.state.name == "COMPLETE")
    assert {t.user_attrs["raytune_trial_id"] for t in study.best_trials} == {p["trial_id"] for p in summary["pareto_front"]}


def test_export_writes_every_objective_and_constraint(bnh_run, tmp_path):
    """``raytune-k8s export`` after the run: the same multi-objective study as the live mirror."""
    import optuna

    from raytune_k8s.cli import main

    summary, _, _ = bnh_run
    storage = f"sqlite:///{tmp_path / 'exported.db'}"
    assert main(["export", summary["experiment_dir"], "--optuna-storage", storage]) == 0
    study = optuna.load_study(study_name="bnh", storage=storage)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"] and study.metric_names == ["f1", "f2"]
    finished = [r for r in summary["trial_table"] if r["status"] == "Succeeded"]
    assert len(study.trials) == len(finished) and all(len(t.constraints) == 3 for t in study.trials)
    assert {t.user_attrs["raytune_trial_id"] for t in study.best_trials} == {p["trial_id"] for p in summary["pareto_front"]}


def test_results_print_the_front(bnh_run, capsys):
    from raytune_k8s.results.table import print_table

    summary, _, _ = bnh_run
    print_table(summary)
    out = capsys.readouterr().out
    assert f"Pareto front, {len(summary['pareto_front'])} of {summary['feasible']} feasible trials" in out
    assert "c1 <= 25; c2 >= 7.7; f1 <= 60" in out
    assert f"Pareto front of {len(summary['pareto_front'])} trials, hypervolume" in out
    front_table = out.split("Pareto front,", 1)[1]
    assert all(p["trial_id"] in front_table for p in summary["pareto_front"])  # every front trial is a row


def test_the_progress_line_shows_the_front_s_size_and_hypervolume(capsys):
    from types import SimpleNamespace

    from raytune_k8s.experiment.progress import ProgressLine

    spec = parse_spec(_spec())
    line = ProgressLine(spec.objective, 3, min_interval_s=0.0, targets=spec.targets)
    for tid, metrics in [("a", {"f1": 1.0, "f2": 3.0, "c1": 1.0, "c2": 9.0}), ("b", {"f1": 3.0, "f2": 1.0, "c1": 1.0, "c2": 9.0}),
                         ("c", {"f1": 0.5, "f2": 0.5, "c1": 30.0, "c2": 9.0})]:  # c dominates both, and is infeasible
        trial = SimpleNamespace(trial_id=tid)
        line.on_trial_start(0, [], trial)
        line.on_trial_result(0, [], trial, metrics)
        line.on_trial_complete(0, [], trial)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    # the reference point is the worst of each objective plus 10 % of its range: (3.2, 3.2); the front a and b: 2.2 x 0.2 twice, less their 0.2 x 0.2 overlap
    assert "3/3 done | 0 running | 0 failed | front 2 trials, hypervolume 0.84" in last, last
