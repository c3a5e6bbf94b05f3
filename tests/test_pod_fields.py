"""A Katib trial's pod-level fields: real runs where they can run here (emptyDir, a hostPath that
exists, init containers, fieldRef), and the exact line where they cannot (a volume not mounted,
an init container that fails, Secrets outside a pod), and a note for each that belongs to the
worker group."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from raytune_k8s.cli import main
from raytune_k8s.spec.trial_kinds import ContainerProcess, PodProcesses, Volume, VolumeMount
from raytune_k8s.spec.models import Resources
from raytune_k8s.trials.pod_setup import PodIdentity, PodSetupError, prepare_pod, run_init_containers

# The init container leaves a number in the pod's emptyDir; the main container reports it as the
# loss once the pod's name (fieldRef) is the trial's and the hostPath's file is there.
_INIT = "import sys; open('/scratch/seed.txt', 'w').write(sys.argv[1])"
_MAIN = ("import os, sys\n"
         "assert os.environ['POD_NAME'] == sys.argv[1], (os.environ['POD_NAME'], sys.argv[1])\n"
         "assert os.environ['POD_NAMESPACE'] == 'team-a'\n"
         "data = open(os.path.join(sys.argv[2], 'input.txt')).read().strip()\n"
         "seed = open('/scratch/seed.txt').read()\n"
         "open('/scratch/seen.txt', 'w').write(os.environ['POD_NAME'])\n"
         "print(f'loss={float(seed) + float(data)}')\n")


def _manifest(tmp_path: Path, *, init_command: list[str], host_path: str) -> dict[str, Any]:
    pod = {
        "initContainers": [{"name": "fetch", "image": "busybox", "command": init_command,
                            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
        "containers": [{
            "name": "main", "image": "python:3.11", "command": [sys.executable, "-c", _MAIN, "${trialParameters.trialName}", "/data"],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}, {"name": "data", "mountPath": "/data"}],
        }],
        "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "data", "hostPath": {"path": host_path}}],
        "nodeSelector": {"pool": "cpu"}, "tolerations": [{"key": "spot", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}}, "imagePullSecrets": [{"name": "registry"}], "serviceAccountName": "trainer",
    }
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "pod-fields", "namespace": "team-a"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"}, "parallelTrialCount": 1, "maxTrialCount": 1, "maxFailedTrialCount": 1,
            "parameters": [{"name": "seed", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "seed", "reference": "seed"}, {"name": "trialName", "reference": "${trialSpec.Name}"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                              "spec": {"template": {"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}}, "spec": pod}}},
            },
        },
    }


def test_empty_dir_init_containers_field_refs_and_an_existing_host_path_run(ray_connected, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("0.5\n")
    doc = _manifest(tmp_path, init_command=[sys.executable, "-c", _INIT, "${trialParameters.seed}"], host_path=str(data))
    # The pod mounts the hostPath at /data; on one machine the folder must be there: stand it in.
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"][-1] = str(data)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][1]["mountPath"] = str(data)
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["run", str(path), "--storage-path", str(tmp_path / "runs"), "--no-report"]) == 0
    err = capsys.readouterr().err
    for field in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets", "serviceAccountName"):
        assert f"note: spec.trialTemplate.trialSpec.spec.template.spec.{field}: no effect here" in err, (field, err)
    assert "note: spec.trialTemplate.trialSpec.spec.template.metadata.annotations: no effect here" in err
    summary = json.loads((tmp_path / "runs" / "pod-fields" / "summary.json").read_text())
    assert summary["status"] == "Succeeded", summary
    row = summary["trial_table"][0]
    assert row["metrics"]["loss"] == row["params"]["seed"] + 0.5
    trial_dir = next(p for p in (tmp_path / "runs" / "pod-fields").iterdir() if (p / "params.json").exists())
    scratch = trial_dir / "volumes" / "scratch"  # the trial's own emptyDir, kept with its files
    assert scratch.joinpath("seed.txt").read_text() == str(row["params"]["seed"])
    assert scratch.joinpath("seen.txt").read_text() == row["name"]  # fieldRef metadata.name: Katib's trial name


def test_an_init_container_that_fails_fails_the_trial_naming_it(ray_connected, tmp_path):
    doc = _manifest(tmp_path, init_command=[sys.executable, "-c", "print('no such dataset'); raise SystemExit(3)"],
                    host_path=str(tmp_path))
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][1]["mountPath"] = str(tmp_path)
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["run", str(path), "--storage-path", str(tmp_path / "runs"), "--no-report"]) == 1
    summary = json.loads((tmp_path / "runs" / "pod-fields" / "summary.json").read_text())
    assert "init container 'fetch' exited with status 3; last output: no such dataset" in summary["trial_table"][0]["error"]


def test_a_volume_not_mounted_where_the_trial_runs_fails_it_with_one_line(tmp_path):
    main_container = ContainerProcess(name="main", image=None, argv=("true",), env={}, working_dir=None, resources=Resources(),
                                      mounts=(VolumeMount("data", "/no/such/mount"),))
    pod = PodProcesses(main=main_container, volumes=(Volume("data", "persistentVolumeClaim", {"claimName": "mnist"}),))
    try:
        prepare_pod(pod, tmp_path, PodIdentity("t", "default"))
    except PodSetupError as exc:
        assert str(exc) == ("volume 'data' (persistentVolumeClaim) is not mounted at /no/such/mount on this Ray worker: "
                            "mount it in the worker pods (`raytune-k8s cluster volumes EXPERIMENT.yaml` prints the "
                            "kustomize patch, cluster/README.md 'Volumes'), or, on one machine, create the folder")
    else:
        raise AssertionError("a missing mount must fail the trial")


def test_an_init_container_that_cannot_start_is_named(tmp_path):
    init = ContainerProcess(name="warmup", image=None, argv=("/no/such/program",), env={}, working_dir=None, resources=Resources())
    prepared = prepare_pod(PodProcesses(main=init, init=(init,)), tmp_path, PodIdentity("t", "default"))
    try:
        run_init_containers(prepared, lambda text: text, lambda line: None, {})
    except PodSetupError as exc:
        assert str(exc).startswith("init container 'warmup' could not start: ")
    else:
        raise AssertionError("an init container that cannot start must fail the trial")


def test_secrets_outside_a_pod_are_one_error_before_anything_starts(tmp_path, capsys):
    doc = _manifest(tmp_path, init_command=["true"], host_path=str(tmp_path))
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}})
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["run", str(path), "--storage-path", str(tmp_path / "runs"), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: {path}: spec.trialTemplate.trialSpec.spec.template.spec.containers[0].env[2].valueFrom."
                       "secretKeyRef: Secret 'db' is read through the Kubernetes API, which this run cannot reach (it is "
                       "not in a pod with a service account); give the value in env, or run the experiment in the cluster")
    assert not (tmp_path / "runs").exists()
