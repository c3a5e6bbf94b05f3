"""Every bad experiment file gets one line naming the field, exit status 2, and nothing starts."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from raytune_k8s.cli import main

from .conftest import REPO

GOOD: dict[str, Any] = yaml.safe_load((REPO / "examples" / "mnist-mxnet-random.yaml").read_text())


def _spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        node = spec
        *parents, last = dotted.split("/")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return spec


_DELETE = object()

CASES = [
    # (id, spec dict or raw text, expected text in the one error line)
    ("yaml-syntax", "name: x\nobjective: [unclosed\n", "invalid YAML: line"),
    ("not-a-mapping", "- just\n- a list\n", "must be a YAML mapping"),
    ("unknown-key", _spec(**{"parallelTrials": 3}), "parallelTrials: unknown field"),
    ("unknown-nested-key", _spec(**{"objective/metric": "x"}), "objective.metric: unknown field"),
    ("wrong-type", _spec(**{"maxTrialCount": "many"}), "maxTrialCount: Input should be a valid integer"),
    ("missing-required", _spec(**{"objective/objectiveMetricName": _DELETE}), "objective.objectiveMetricName: required field is missing"),
    ("missing-trial", _spec(trial=_DELETE), "trialTemplate: required field is missing"),
    ("empty-categorical", _spec(**{"parameters/2/feasibleSpace/list": []}), "parameters[2].feasibleSpace.list: a categorical parameter needs a non-empty list"),
    ("min-greater-than-max", _spec(**{"parameters/0/feasibleSpace": {"min": 0.5, "max": 0.1}}), "parameters[0].feasibleSpace: min 0.5 is greater than max 0.1"),
    ("step-does-not-fit", _spec(**{"parameters/0/feasibleSpace": {"min": 0.01, "max": 0.03, "step": 0.015}}), "parameters[0].feasibleSpace.step: step 0.015 does not divide"),
    ("step-too-large", _spec(**{"parameters/1/feasibleSpace": {"min": 2, "max": 5, "step": 4}}), "parameters[1].feasibleSpace.step: step 4 is larger than the range"),
    ("int-not-whole", _spec(**{"parameters/1/feasibleSpace": {"min": 2.5, "max": 5}}), "parameters[1].feasibleSpace.min: an int parameter needs a whole number"),
    ("zero-max-trials", _spec(maxTrialCount=0), "maxTrialCount: Input should be greater than 0"),
    ("negative-parallel", _spec(parallelTrialCount=-1), "parallelTrialCount: Input should be greater than 0"),
    ("negative-max-failed", _spec(maxFailedTrialCount=-2), "maxFailedTrialCount: Input should be greater than or equal to 0"),
    ("parallel-over-max", _spec(parallelTrialCount=20), "parallelTrialCount: 20 is greater than maxTrialCount 12"),
    ("log-min-zero", _spec(**{"parameters/0/feasibleSpace": {"min": 0, "max": 0.1, "distribution": "logUniform"}}), "parameters[0].feasibleSpace.min: a logUniform distribution needs min > 0"),
    ("unknown-distribution", _spec(**{"parameters/0/feasibleSpace/distribution": "cauchy"}), "parameters[0].feasibleSpace.distribution: Input should be"),
    ("unknown-parameter-type", _spec(**{"parameters/0/parameterType": "float"}), "parameters[0].parameterType: Input should be"),
    ("unknown-algorithm", _spec(**{"algorithm/algorithmName": "cmaes-xl"}), "algorithm.algorithmName: unknown algorithm 'cmaes-xl'; choose one of random, grid, tpe, multivariate-tpe, cmaes, sobol, bayesianoptimization, hyperband, pbt, darts, enas"),
    ("unknown-algorithm-setting", _spec(**{"algorithm/algorithmSettings": [{"name": "seeed", "value": 1}]}), "algorithm.algorithmSettings[0].name: unknown setting 'seeed'"),
    ("bad-algorithm-setting", _spec(**{"algorithm/algorithmSettings": [{"name": "random_state", "value": "abc"}]}), "algorithm.algorithmSettings[0].value: random_state must be a whole number"),
    ("unknown-early-stopping", _spec(earlyStopping={"algorithmName": "patience"}), "earlyStopping.algorithmName: unknown early-stopping rule 'patience'; choose one of medianstop, asha, hyperband"),
    ("unknown-trainable", _spec(**{"trial/trainable": "mnist-jax"}), "trial.trainable: unknown trainable 'mnist-jax'"),
    ("two-trial-kinds", _spec(**{"trial/command": "echo hi"}), "trial: give exactly one of 'trainable', 'function' or 'command' (got trainable, command)"),
    ("unimportable-function", _spec(**{"trial/trainable": _DELETE, "trial/function": "no_such_module_xyz:train"}), "trial.function: cannot import 'no_such_module_xyz'"),
    ("unknown-placeholder", _spec(**{"trial/trainable": _DELETE, "trial/command": "echo ${trialParameters.momentum}"}), "trial.command: placeholder ${trialParameters.momentum} names no parameter"),
    ("bad-cpu", _spec(**{"trial/resources/cpu": "two"}), "trial.resources.cpu: 'two' is not a CPU quantity"),
    ("bad-memory", _spec(**{"trial/resources/memory": "1 gallon"}), "trial.resources.memory: '1 gallon' is not a memory quantity"),
    ("grid-without-step", _spec(**{"algorithm/algorithmName": "grid", "algorithm/algorithmSettings": []}), "parameters[0].feasibleSpace.step: grid search needs a step"),
    ("bad-name", _spec(name="My Experiment"), "name: 'My Experiment' must be lowercase"),
]


def _write(tmp_path: Path, spec: Any) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("spec, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_spec_gets_one_line_exit_2_and_nothing_started(tmp_path, monkeypatch, capsys, spec, expected):
    was_initialized = ray.is_initialized()
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray was started for a bad spec"))
    storage = tmp_path / "storage"
    code = main(["run", str(_write(tmp_path, spec)), "--storage-path", str(storage)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert not storage.exists(), "nothing may be written for a bad spec"
    assert ray.is_initialized() == was_initialized


def test_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert f"experiment file '{tmp_path / 'nope.yaml'}' does not exist" in capsys.readouterr().err


def test_bad_spec_from_the_real_command_line(tmp_path):
    """The installed console script: exit status 2, one stderr line, no Ray session dir made."""
    path = _write(tmp_path, _spec(**{"parameters/0/feasibleSpace": {"min": 0.5, "max": 0.1}}))
    ray_tmp = tmp_path / "raytmp"
    ray_tmp.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "raytune_k8s", "run", str(path), "--storage-path", str(tmp_path / "s")],
        capture_output=True, text=True, env={**__import__("os").environ, "RAY_TMPDIR": str(ray_tmp)}, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {path}: parameters[0].feasibleSpace: min 0.5 is greater than max 0.1"]
    assert list(ray_tmp.iterdir()) == [] and not (tmp_path / "s").exists()


def test_every_example_is_valid():
    for path in sorted((REPO / "examples").glob("*.yaml")):
        assert main(["validate", str(path)]) == 0, path
