"""The distributed-trial examples and `raytune-k8s cluster volumes`, checked without Ray.

* every example of a distributed trial (four Katib manifests in examples/katib/, one short-format
  file) validates with the CLI, and reads as the gang its operator would start: replica names in
  rank order, primaries, the success rule, each replica's resources and operator environment, and
  a program this project can run for every replica;
* `raytune-k8s cluster volumes` prints a JSON6902 patch that the real `kubectl kustomize` applies
  to cluster/base (and to the GPU worker group of components/gpu-workers): the worker pods get the
  experiment's persistentVolumeClaim and hostPath volumes mounted where its trials mount them,
  and the result still fits KubeRay's RayCluster schema; an experiment without such volumes
  prints one comment and exits 0; bad input exits 2 with one error.

Running these examples on Ray is for the gang tests (tests/test_distributed_trials.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from raytune_k8s.cli import main
from raytune_k8s.spec import load_spec
from raytune_k8s.spec.quantities import parse_memory
from raytune_k8s.trials import command_trial
from raytune_k8s.trials.command import program_argv
from raytune_k8s.trials.operator_env import Endpoint, replica_env

from .helpers import REPO

try:  # tests/ may or may not be a package
    from . import cluster_schema as cs
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cluster_schema as cs

KATIB = REPO / "examples" / "katib"
#: example -> (framework, replica names in rank order, primary replicas, ranks whose success is the trial's)
GANGS: dict[str, tuple[str, list[str], list[str], tuple[int, ...]]] = {
    "katib/pytorchjob-mnist.yaml": ("pytorch", ["master-0", "worker-0"], ["master-0"], (0,)),
    "katib/trainjob-pytorch.yaml": ("trainer-torch", ["node-0", "node-1"], ["node-0"], (0, 1)),
    "katib/tfjob-mnist-with-summaries.yaml": ("tensorflow", ["worker-0", "worker-1"], ["worker-0", "worker-1"], (0,)),
    "katib/xgboostjob-lightgbm.yaml": ("xgboost", ["master-0", "worker-0"], ["master-0"], (0,)),
    "mnist-torch-ddp.yaml": ("pytorch", ["master-0", "worker-0"], ["master-0"], (0,)),
}
EXAMPLES = [REPO / "examples" / name for name in GANGS]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``raytune-k8s ARGS`` run in this process (``cluster volumes`` loads no Ray: a process of its
    own per call only added an interpreter's start-up): exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's refusals
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["raytune-k8s", *args], code, out.getvalue(), err.getvalue())


# ----------------------------------------------------------------------------------- the examples

def test_each_distributed_example_validates_with_the_cli():
    """`raytune-k8s validate` on each (one process for all five): exit 0, no warning, no error."""
    code = ("import sys\nfrom raytune_k8s.cli import main\n"
            "sys.exit(max(main(['validate', p]) for p in sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, EXAMPLES)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": ok (") == len(EXAMPLES), proc.stdout
    assert "warning:" not in proc.stderr and "error:" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("name", list(GANGS))
def test_each_example_is_the_gang_its_operator_starts(name):
    framework, replicas, primaries, success = GANGS[name]
    spec = load_spec(str(REPO / "examples" / name))
    trial = command_trial(spec)
    assert trial is not None and trial.gang is not None and trial.distributed
    gang = trial.gang
    assert gang.framework == framework
    assert [r.name for r in gang.replicas] == replicas
    assert [r.rank for r in gang.replicas] == list(range(len(replicas)))
    assert [r.name for r in gang.primaries] == primaries
    assert gang.success_ranks == success and not gang.success_any
    # Half a CPU (and 1Gi in the manifests) per replica: one trial fits a 2-core embedded Ray.
    for bundle in gang.bundles():
        assert bundle["CPU"] == 0.5
        assert bundle.get("memory", parse_memory("1Gi")) == parse_memory("1Gi")
    assert spec.parallel_trials * sum(b["CPU"] for b in gang.bundles()) <= 2
    assert spec.max_trials == 2


@pytest.mark.parametrize("name", list(GANGS))
def test_every_replica_runs_a_program_this_project_has(name):
    """Katib's image paths (and the xgboost-lightgbm image's entrypoint) map to our stand-ins."""
    trial = command_trial(load_spec(str(REPO / "examples" / name)))
    assert trial is not None and trial.gang is not None
    for replica in trial.gang.replicas:
        main = replica.pod.main
        argv = program_argv(list(main.argv), main.image, main.has_command)
        module = argv[argv.index("-m") + 1] if "-m" in argv else ""  # ours: the stand-in, or named directly
        assert module.startswith("raytune_k8s.trials.katib_programs."), f"{name}: {replica.name}: {argv[:4]} is no program we have"


def _envs(name: str) -> list[dict[str, str]]:
    trial = command_trial(load_spec(str(REPO / "examples" / name)))
    assert trial is not None and trial.gang is not None
    endpoints = [Endpoint(f"10.0.0.{i + 1}", 20000 + i) for i in range(len(trial.gang.replicas))]
    return [replica_env(trial.gang, r, endpoints) for r in trial.gang.replicas]


def test_the_pytorch_examples_get_what_init_process_group_reads():
    for name in ("katib/pytorchjob-mnist.yaml", "mnist-torch-ddp.yaml"):
        envs = _envs(name)
        assert [(e["WORLD_SIZE"], e["RANK"], e["MASTER_ADDR"], e["MASTER_PORT"]) for e in envs] == \
            [("2", "0", "10.0.0.1", "20000"), ("2", "1", "10.0.0.1", "20000")], name


def test_the_trainjob_nodes_get_the_torch_runtimes_variables_only():
    envs = _envs("katib/trainjob-pytorch.yaml")
    assert [e["PET_NODE_RANK"] for e in envs] == ["0", "1"]
    assert all(e["PET_NNODES"] == "2" and e["PET_NPROC_PER_NODE"] == "1" and e["PET_MASTER_ADDR"] == "10.0.0.1"
               for e in envs)
    assert not any("WORLD_SIZE" in e or "MASTER_ADDR" in e for e in envs)  # plain python3: each node alone


def test_the_tfjob_workers_each_get_their_own_tf_config():
    import json

    configs = [json.loads(e["TF_CONFIG"]) for e in _envs("katib/tfjob-mnist-with-summaries.yaml")]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0}, {"type": "worker", "index": 1}]
    assert all(c["cluster"] == {"worker": ["10.0.0.1:20000", "10.0.0.2:20001"]} for c in configs)


def test_the_xgboost_replicas_get_the_master_and_worker_addresses():
    envs = _envs("katib/xgboostjob-lightgbm.yaml")
    assert [e["RANK"] for e in envs] == ["0", "1"] and all(e["WORLD_SIZE"] == "2" for e in envs)
    assert all(e["WORKER_ADDRS"] == "10.0.0.2" and e["MASTER_ADDR"] == "10.0.0.1" for e in envs)


def test_the_tfjob_log_path_is_made_per_trial(tmp_path):
    from raytune_k8s.collectors import create_collector

    spec = load_spec(str(KATIB / "tfjob-mnist-with-summaries.yaml"))
    collector = create_collector(spec.metrics_collector, list(spec.objective.metrics), tmp_path)
    assert collector.local_path is not None
    assert collector.rewrite("--log-path=/mnist-summaries") == f"--log-path={collector.local_path.parent}"


# ------------------------------------------------------------------------------ cluster volumes

def _with_volumes(tmp_path: Path, edit: Any = None) -> Path:
    """The PyTorchJob example with a persistentVolumeClaim, a hostPath and an emptyDir volume in
    both replicas' pods, and a Secret only the Master mounts."""
    doc = yaml.safe_load((KATIB / "pytorchjob-mnist.yaml").read_text())
    doc["metadata"]["name"] = "mnist-volumes"
    replicas = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]
    for rep in replicas.values():
        pod = rep["template"]["spec"]
        pod["volumes"] = [{"name": "mnist", "persistentVolumeClaim": {"claimName": "mnist-data", "readOnly": True}},
                          {"name": "scratch", "emptyDir": {}},
                          {"name": "cache", "hostPath": {"path": "/var/cache/mnist", "type": "DirectoryOrCreate"}}]
        pod["containers"][0]["volumeMounts"] = [{"name": "mnist", "mountPath": "/data/mnist", "readOnly": True},
                                                {"name": "scratch", "mountPath": "/scratch"},
                                                {"name": "cache", "mountPath": "/cache"}]
    master = replicas["Master"]["template"]["spec"]
    master["volumes"].append({"name": "experiments", "secret": {"secretName": "tracker-token"}})
    master["containers"][0]["volumeMounts"].append({"name": "experiments", "mountPath": "/etc/tracker", "readOnly": True})
    if edit:
        edit(doc)
    path = tmp_path / "mnist-volumes.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _overlay(tmp_path: Path, patch: str, components: list[str] = ()) -> list[dict[str, Any]]:
    """cluster/base (plus ``components``) with ``patch`` as a tenant overlay would add it, rendered."""
    overlay = tmp_path / "overlay"
    (overlay / "patches").mkdir(parents=True)
    (overlay / "patches" / "volumes.yaml").write_text(patch)

    def rel(path: Path) -> str:  # kustomize takes no absolute paths to bases
        return os.path.relpath(path, overlay)

    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [rel(cs.CLUSTER_DIR / "base")],
        **({"components": [rel(cs.CLUSTER_DIR / "components" / c) for c in components]} if components else {}),
        "patches": [{"path": "patches/volumes.yaml",
                     "target": {"group": "ray.io", "version": "v1", "kind": "RayCluster", "name": "raytune"}}],
    }))
    return cs.render(overlay)


def _ray_cluster(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (cluster,) = [d for d in docs if d["kind"] == "RayCluster"]
    return cluster


def _worker(cluster: dict[str, Any], group: str) -> tuple[dict[str, Any], dict[str, Any]]:
    (spec,) = [g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == group]
    pod = spec["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "ray-worker"]
    return pod, container


def test_cluster_volumes_patch_mounts_the_experiments_volumes_in_the_worker_pods(tmp_path):
    path = _with_volumes(tmp_path)
    proc = _cli("cluster", "volumes", str(path))
    assert proc.returncode == 0, proc.stderr
    # hostPath is refused by the tenant namespaces' Pod Security level: said on stderr and in the patch
    assert proc.stderr.splitlines() == [line[2:] for line in proc.stdout.splitlines() if line.startswith("# warning:")]
    assert len(proc.stderr.splitlines()) == 1 and "hostPath" in proc.stderr and "restricted" in proc.stderr

    base = _ray_cluster(cs.render(cs.CLUSTER_DIR / "base"))
    cluster = _ray_cluster(_overlay(tmp_path, proc.stdout))
    pod, container = _worker(cluster, "cpu2")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes == {
        "experiments": {"name": "experiments", "persistentVolumeClaim": {"claimName": "raytune-experiments"}},
        "mnist": {"name": "mnist", "persistentVolumeClaim": {"claimName": "mnist-data", "readOnly": True}},
        "cache": {"name": "cache", "hostPath": {"path": "/var/cache/mnist", "type": "DirectoryOrCreate"}},
        # the Master's Secret, renamed: the worker pod has a volume named experiments
        "experiments-2": {"name": "experiments-2", "secret": {"secretName": "tracker-token"}},
    }
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts == {
        "/mnt/experiments": {"name": "experiments", "mountPath": "/mnt/experiments"},
        "/data/mnist": {"name": "mnist", "mountPath": "/data/mnist", "readOnly": True},
        "/cache": {"name": "cache", "mountPath": "/cache"},
        "/etc/tracker": {"name": "experiments-2", "mountPath": "/etc/tracker", "readOnly": True},
    }
    # nothing else moved: the head, and the worker group but for its volumes and mounts
    assert cluster["spec"]["headGroupSpec"] == base["spec"]["headGroupSpec"]
    before_pod, before_container = _worker(base, "cpu2")
    assert {k: v for k, v in pod.items() if k not in ("volumes", "containers")} == \
        {k: v for k, v in before_pod.items() if k not in ("volumes", "containers")}
    assert {k: v for k, v in container.items() if k != "volumeMounts"} == \
        {k: v for k, v in before_container.items() if k != "volumeMounts"}
    cs.require_crds()
    assert cs.crd_errors(cluster) == []


def test_cluster_volumes_patch_for_the_gpu_worker_group(tmp_path):
    proc = _cli("cluster", "volumes", str(_with_volumes(tmp_path)), "--worker-group", "gpu1")
    assert proc.returncode == 0, proc.stderr
    cluster = _ray_cluster(_overlay(tmp_path, proc.stdout, ["gpu-workers"]))
    gpu_pod, gpu_container = _worker(cluster, "gpu1")
    assert {m["mountPath"] for m in gpu_container["volumeMounts"]} == {"/mnt/experiments", "/data/mnist", "/cache", "/etc/tracker"}
    assert {v["name"] for v in gpu_pod["volumes"]} == {"experiments", "mnist", "cache", "experiments-2"}
    cpu_pod, _ = _worker(cluster, "cpu2")
    assert [v["name"] for v in cpu_pod["volumes"]] == ["experiments"]


def test_the_patch_does_not_apply_where_the_worker_group_is_not(tmp_path):
    """Its `test` ops: gpu1's patch on a cluster without the GPU group fails to render."""
    proc = _cli("cluster", "volumes", str(_with_volumes(tmp_path)), "--worker-group", "gpu1")
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(AssertionError, match="kubectl kustomize"):
        _overlay(tmp_path, proc.stdout)


@pytest.mark.parametrize("example", [KATIB / "pytorchjob-mnist.yaml", REPO / "examples" / "mnist-torch-ddp.yaml",
                                     KATIB / "random.yaml"], ids=lambda p: p.name)
def test_an_experiment_without_volumes_gets_one_comment(example):
    proc = _cli("cluster", "volumes", str(example))
    assert proc.returncode == 0 and proc.stderr == ""
    (line,) = proc.stdout.splitlines()
    assert line.startswith("# experiment ") and "nothing to patch" in line


def test_emptydir_only_volumes_need_no_patch(tmp_path):
    def only_scratch(doc: dict[str, Any]) -> None:
        for rep in doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"].values():
            pod = rep["template"]["spec"]
            pod["volumes"] = [v for v in pod["volumes"] if "emptyDir" in v]
            pod["containers"][0]["volumeMounts"] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "scratch"]

    proc = _cli("cluster", "volumes", str(_with_volumes(tmp_path, only_scratch)))
    assert proc.returncode == 0 and "nothing to patch" in proc.stdout and len(proc.stdout.splitlines()) == 1


def test_cluster_volumes_bad_input_is_one_error(tmp_path):
    missing = _cli("cluster", "volumes", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines() == [f"error: experiment file '{tmp_path / 'nope.yaml'}' does not exist"]

    def on_the_experiments_mount(doc: dict[str, Any]) -> None:
        master = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
        master["containers"][0]["volumeMounts"][0]["mountPath"] = "/mnt/experiments"

    clash = _cli("cluster", "volumes", str(_with_volumes(tmp_path, on_the_experiments_mount)))
    assert clash.returncode == 2 and clash.stdout == ""
    (line,) = clash.stderr.splitlines()
    assert line.startswith("error: ") and "spec.trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Master.template.spec.volumes[0]" in line
    assert "/mnt/experiments" in line and "'experiments'" in line

    unknown = _cli("cluster", "volumes", str(KATIB / "random.yaml"), "--worker-group", "gpu8")
    assert unknown.returncode == 2 and unknown.stdout == "" and "invalid choice: 'gpu8'" in unknown.stderr


def test_replicas_mounting_different_volumes_at_one_path_are_refused(tmp_path):
    def worker_elsewhere(doc: dict[str, Any]) -> None:
        worker = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
        worker["volumes"][0]["persistentVolumeClaim"]["claimName"] = "other-data"

    proc = _cli("cluster", "volumes", str(_with_volumes(tmp_path, worker_elsewhere)))
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert "Worker.template.spec.volumes[0]" in line and "/data/mnist" in line and "another volume" in line


def test_the_patch_builder_reads_the_spec_only():
    """No Ray: the module reads the experiment file with the spec package, nothing more."""
    code = ("import sys\nfrom raytune_k8s.reporting.volumes_patch import volumes_patch\n"
            f"print(volumes_patch({str(KATIB / 'random.yaml')!r}), end='')\n"
            "assert 'ray' not in sys.modules, 'building the patch imported ray'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# experiment katib-random:")


def test_mounted_twice_the_same_is_one_volume(tmp_path):
    """Master and Worker mount the same claim at the same path: one volume, one mount; and a
    mount any replica writes to is writable."""
    from raytune_k8s.reporting.volumes_patch import worker_volumes

    def worker_writes(doc: dict[str, Any]) -> None:
        worker = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
        worker["containers"][0]["volumeMounts"][0]["readOnly"] = False

    needed = worker_volumes(load_spec(str(_with_volumes(tmp_path, worker_writes))))
    mnist = next(v for v in needed if v.name == "mnist")
    assert mnist.users == ["master-0", "worker-0"] and mnist.mounts == {("/data/mnist", None): False}
    assert [v.name for v in needed] == ["mnist", "cache", "experiments-2"]
    assert dict(needed[1].volume.detail) == {"path": "/var/cache/mnist", "type": "DirectoryOrCreate"}
