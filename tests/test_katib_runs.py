"""Katib manifests run on Ray: each trial kind that has a single-process meaning and each
collector kind, in a real experiment; Katib's words in the results."""

from __future__ import annotations

import copy
import re
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from raytune_k8s.cli import main

from .conftest import REPO

BASE: dict[str, Any] = yaml.safe_load((REPO / "examples" / "katib" / "random.yaml").read_text())

# Programs a trial runs (written into the test's directory): each reports `loss` its own way.
PROGRAMS = {
    "stdout": "import sys\nlr = float(sys.argv[1])\nfor step in range(3):\n    print(f'step={step} loss={(lr - 0.03) ** 2 + 1 / (step + 1):.6f}', flush=True)\n",
    "text": "import sys\nlr = float(sys.argv[1])\nwith open(sys.argv[2], 'w') as f:\n    for step in range(3):\n        f.write(f'loss={(lr - 0.03) ** 2 + 1 / (step + 1):.6f}\\n')\n",
    "tfevent": "import sys\nfrom tensorboardX import SummaryWriter\nlr = float(sys.argv[1])\nw = SummaryWriter(sys.argv[2])\nfor step in range(3):\n    w.add_scalar('train/loss', (lr - 0.03) ** 2 + 1 / (step + 1), step)\nw.close()\n",
    "push": "import sys\nfrom raytune_k8s import report_metrics\nlr = float(sys.argv[1])\nfor step in range(3):\n    report_metrics({'loss': (lr - 0.03) ** 2 + 1 / (step + 1)})\n",
}


def _manifest(tmp_path: Path, name: str, program: str, kind: str, collector: dict | None, path_arg: str | None) -> Path:
    doc = copy.deepcopy(BASE)
    doc["metadata"]["name"] = name
    spec = doc["spec"]
    spec.update(parallelTrialCount=2, maxTrialCount=2)
    script = tmp_path / f"{program}.py"
    script.write_text(PROGRAMS[program])
    pod = spec["trialTemplate"]["trialSpec"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    container["command"] = [sys.executable, str(script), "${trialParameters.learningRate}", *([path_arg] if path_arg else [])]
    container["resources"] = {"requests": {"cpu": "1"}}
    if collector:
        spec["metricsCollectorSpec"] = collector
    if kind != "Job":
        key, primary = {"PyTorchJob": ("pytorchReplicaSpecs", "Master"), "TFJob": ("tfReplicaSpecs", "Chief"),
                        "XGBoostJob": ("xgbReplicaSpecs", "Master")}[kind]
        spec["trialTemplate"]["trialSpec"] = {"apiVersion": "kubeflow.org/v1", "kind": kind,
                                              "spec": {key: {primary: {"replicas": 1, "restartPolicy": "OnFailure", "template": pod}}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


CASES = [
    # (trial kind, program, metricsCollectorSpec, path argument)
    ("Job", "stdout", None, None),
    ("PyTorchJob", "tfevent", {"source": {"fileSystemPath": {"path": "/katib/tb", "kind": "Directory"}},
                               "collector": {"kind": "TensorFlowEvent"}}, "/katib/tb"),
    ("TFJob", "push", {"collector": {"kind": "Push"}}, None),
    ("XGBoostJob", "text", {"source": {"fileSystemPath": {"path": "/katib/loss.log", "kind": "File"}},
                            "collector": {"kind": "File"}}, "/katib/loss.log"),
    ("Job", "push", {"collector": {"kind": "None"}}, None),
]


@pytest.mark.parametrize("kind, program, collector, path_arg", CASES,
                         ids=[f"{c[0]}-{(c[2] or {}).get('collector', {}).get('kind', 'StdOut')}" for c in CASES])
def test_trial_kind_and_collector_run_for_real(ray_connected, tmp_path, capsys, kind, program, collector, path_arg):
    name = f"{kind.lower()}-{program}"
    path = _manifest(tmp_path, name, program, kind, collector, path_arg)
    storage = tmp_path / "runs"
    assert main(["run", str(path), "--storage-path", str(storage)]) == 0
    summary = json.loads((storage / name / "summary.json").read_text())
    assert (summary["status"], summary["reason"]) == ("Succeeded", "ExperimentMaxTrialsReached")
    for row in summary["trial_table"]:
        lr = row["params"]["lr"]
        assert row["status"] == "Succeeded" and row["iterations"] == 3
        # Katib's default strategy for a minimized objective: the trial's lowest loss.
        assert row["objective"] == pytest.approx((lr - 0.03) ** 2 + 1 / 3, rel=1e-4)
        assert row["observation"]["loss"]["latest"] == pytest.approx(row["objective"], rel=1e-4)
    capsys.readouterr()
    assert main(["results", str(storage / name), "--katib"]) == 0
    status = yaml.safe_load(capsys.readouterr().out)["status"]
    assert status["conditions"][-1] == {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached",
                                        "message": "Experiment has succeeded: ExperimentMaxTrialsReached"}
    best = summary["trial_table"][0]
    assert status["currentOptimalTrial"]["bestTrialName"] == best["name"]
    assert status["trialsSucceeded"] == 2 and sorted(status["succeededTrialList"]) == sorted(r["name"] for r in summary["trial_table"])
    assert {a["name"] for a in status["currentOptimalTrial"]["parameterAssignments"]} == {"lr", "momentum"}


def test_katib_mnist_manifest_with_json_file_collector(ray_connected, tmp_path, capsys):
    """The stand-in for Katib's pytorch-mnist image, its hypertune JSON log, and Katib's
    metadata references, as a Katib user's manifest writes them."""
    doc = yaml.safe_load((REPO / "examples" / "katib" / "file-json-collector.yaml").read_text())
    doc["spec"].update(parallelTrialCount=2, maxTrialCount=2)
    # A range where 40 SGD steps already learn (the example's own range needs a few epochs).
    doc["spec"]["parameters"] = [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.07", "max": "0.09"}},
                                 {"name": "momentum", "parameterType": "double", "feasibleSpace": {"min": "0.8", "max": "0.85"}}]
    doc["spec"]["algorithm"]["algorithmSettings"] = [{"name": "random_state", "value": "3"}]  # the same two trials every run
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] += ["--batch-size=100", "--log-interval=10"]
    container["env"] = [{"name": "TRIAL_NAME", "value": "${trialParameters.trialName}"}]
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "trialName", "reference": "${trialSpec.Name}"})
    path = tmp_path / "mnist.yaml"
    path.write_text(yaml.safe_dump(doc))
    storage = tmp_path / "runs"
    assert main(["run", str(path), "--storage-path", str(storage)]) == 0
    err = capsys.readouterr().err
    assert "/opt/pytorch-mnist/mnist.py is not on this machine: trials run raytune-k8s's stand-in" in err
    experiment = storage / "katib-file-json"
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["status"] == "Succeeded" and summary["succeeded"] == 2
    for row in summary["trial_table"]:
        assert 0.5 < row["metrics"]["accuracy"] <= 1 and row["metrics"]["loss"] > 0  # chance is 0.1
    logs = sorted(experiment.glob("*/collector/katib/mnist.json"))
    assert len(logs) == 2, "each trial wrote its own copy of Katib's path"
    assert (experiment / "katib-experiment.yaml").read_text() == path.read_text()


def test_katib_darts_manifest_reports_its_genotype(ray_connected, tmp_path, capsys):
    """DARTS as Katib runs it: one trial whose objective is the derived genotype, a text."""
    storage = tmp_path / "runs"
    assert main(["run", str(REPO / "examples" / "katib" / "darts.yaml"), "--storage-path", str(storage)]) == 0
    summary = json.loads((storage / "katib-darts" / "summary.json").read_text())
    assert (summary["status"], summary["reason"]) == ("Succeeded", "ExperimentMaxTrialsReached")
    genotype = summary["best"]["metrics"]["Best-Genotype"]
    assert genotype.startswith("Genotype(normal=")
    ops = set(re.findall(r"'([a-z_0-9x]+)',\d", genotype))
    assert ops and ops <= {"max_pooling_3x3", "skip_connection"}, genotype  # only nasConfig's operations
    observed = summary["currentOptimalTrial"]["observation"]["metrics"]
    assert {"name": "Best-Genotype", "latest": genotype} in observed
