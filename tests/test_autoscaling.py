"""Autoscaling to the requested parallelism, on a simulated cluster: a real Ray head running the
real Ray autoscaler (v2) with Ray's fake multi-node provider, whose nodes stand in for worker
pods. Plus the quota arithmetic and the ResourceQuota parsing, which need no cluster.

One cluster for the module (1-CPU workers, at most 6, short idle timeout). The session's Ray
(conftest ``ray_head``) is disconnected while these tests run; ``ray_connected`` reconnects.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import ray
import yaml
from kubernetes import client as k8s

import raytune_k8s
from raytune_k8s.scaling import coordinator, request
from raytune_k8s.scaling import quota as quotas
from raytune_k8s.cli import main
from raytune_k8s.scaling.coordinator import fair_shares
from raytune_k8s.sim.cluster import AutoscalingLocalCluster, _cluster_processes
from raytune_k8s.scaling.quota import Quota, quota_from_resourcequota, quota_parallelism
from raytune_k8s.spec import SpecError

from .helpers import REPO, wait_for

IDLE_TIMEOUT_S = 6.0
MAX_WORKERS = 6
GiB = 2**30


# ---------------------------------------------------------------- quota arithmetic (no cluster)


@pytest.mark.parametrize(
    "parallel, trial, quota, fits",
    [
        (6, {"cpu": 1, "gpu": 0}, Quota(cpu=3), 3),
        (6, {"cpu": 1, "gpu": 0}, Quota(cpu=3.5), 3),
        (6, {"cpu": 0.5, "gpu": 0}, Quota(cpu=2), 4),
        (2, {"cpu": 1, "gpu": 0}, Quota(cpu=8), 2),
        (6, {"cpu": 1, "gpu": 0}, None, 6),
        (6, {"cpu": 1, "gpu": 0}, Quota(), 6),
        (6, {"cpu": 1, "gpu": 0, "memory": 2 * GiB}, Quota(cpu=8, memory=5 * GiB), 2),
        (6, {"cpu": 1, "gpu": 0}, Quota(cpu=8, memory=1 * GiB), 6),  # trials that ask for no memory
        (6, {"cpu": 0, "gpu": 1}, Quota(cpu=1, gpu=4), 4),  # 0-CPU trials are not capped by CPU
    ],
)
def test_quota_parallelism(parallel, trial, quota, fits):
    assert quota_parallelism(parallel, trial, quota) == fits


@pytest.mark.parametrize(
    "trial, quota, message",
    [
        ({"cpu": 2, "gpu": 0}, Quota(cpu=1), "trial.resources.cpu: 2 vCPU per trial does not fit the tenant quota of 1 vCPU"),
        ({"cpu": 1, "gpu": 0, "memory": 4 * GiB}, Quota(cpu=8, memory=3 * GiB),
         "trial.resources.memory: 4Gi memory per trial does not fit the tenant quota of 3Gi memory"),
        ({"cpu": 1, "gpu": 2}, Quota(gpu=1), "trial.resources.gpu: 2 GPU per trial does not fit the tenant quota of 1 GPU"),
    ],
)
def test_quota_too_small_for_one_trial_names_the_field(trial, quota, message):
    with pytest.raises(SpecError) as info:
        quota_parallelism(3, trial, quota)
    assert str(info.value) == message
    assert info.value.field == message.split(":")[0]


def test_quota_note_is_one_clear_line(capsys):
    assert quotas.effective_parallelism(6, {"cpu": 1, "gpu": 0}, {"cpu": "3"}) == 3
    assert quotas.effective_parallelism(6, {"cpu": 1, "gpu": 0}, Quota(cpu=8)) == 6  # not capped: silent
    err = capsys.readouterr().err
    assert err == (
        "quota caps parallelism: parallelTrialCount 6 asks for 6 x 1 vCPU, "
        "the tenant quota allows 3 vCPU: running 3 trials at once\n"
    )


def test_fixed_size_cluster_note(capsys):
    request._note_fixed_capacity(request.trial_bundles({"cpu": 1, "gpu": 0}, 6), {"CPU": 2.0})
    request._note_fixed_capacity(request.trial_bundles({"cpu": 1, "gpu": 0}, 2), {"CPU": 2.0})
    assert capsys.readouterr().err == (
        "cluster caps parallelism: 6 trials at once ask for 6 x 1 vCPU, "
        "the cluster has 2 vCPU and does not autoscale: at most 2 trials at once\n"
    )


def test_trial_bundles_one_per_trial():
    assert request.trial_bundles({"cpu": 2, "gpu": 0, "memory": 4 * GiB}, 3) == [{"CPU": 2.0, "memory": 4.0 * GiB}] * 3
    assert request.trial_bundles({"cpu": 0, "gpu": 0}, 3) == []


def _resource_quota(hard: dict[str, str], status_hard: dict[str, str] | None = None) -> k8s.V1ResourceQuota:
    return k8s.V1ResourceQuota(
        metadata=k8s.V1ObjectMeta(name="raytune-trials", namespace="user2"),
        spec=k8s.V1ResourceQuotaSpec(hard=hard),
        status=k8s.V1ResourceQuotaStatus(hard=status_hard, used={"limits.cpu": "2"}) if status_hard else None,
    )


def test_resourcequota_parsing():
    q = quota_from_resourcequota(_resource_quota({"requests.cpu": "6", "limits.cpu": "6", "requests.memory": "12Gi", "pods": "3"}))
    assert q == Quota(cpu=6.0, memory=12 * GiB)
    # status.hard is what the API server enforces; of limits and requests the smaller binds
    q = quota_from_resourcequota(_resource_quota({"limits.cpu": "18"}, {"limits.cpu": "4500m", "requests.cpu": "5", "limits.memory": "9Gi"}))
    assert q == Quota(cpu=4.5, memory=9 * GiB)
    q = quota_from_resourcequota(_resource_quota({"cpu": "2", "requests.nvidia.com/gpu": "1"}))
    assert q == Quota(cpu=2.0, gpu=1.0)
    assert not quota_from_resourcequota(_resource_quota({"pods": "4"}))


@pytest.mark.parametrize("tenant, trials_at_once", [("user1", 9), ("user2", 3)])
def test_tenant_manifests_quota_gives_the_readme_parallelism(tenant, trials_at_once):
    """Our tenants' trial quotas, with the 2-vCPU/4Gi trials of the worker pods (README table)."""
    docs = yaml.safe_load_all((REPO / "cluster" / "tenants" / tenant / "resourcequota.yaml").read_text())
    trials = next(d for d in docs if d["metadata"]["name"] == quotas.DEFAULT_QUOTA_NAME)
    quota = quota_from_resourcequota(_resource_quota(trials["spec"]["hard"]))
    assert quota_parallelism(12, {"cpu": 2, "gpu": 0, "memory": 4 * GiB}, quota) == trials_at_once
    # The overlay hands the same quota to the head's environment, where the driver reads it.
    from .cluster_schema import render

    cluster = next(d for d in render(REPO / "cluster" / "tenants" / tenant) if d["kind"] == "RayCluster")
    head = next(c for c in cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"] if c["name"] == "ray-head")
    env = {e["name"]: e.get("value") for e in head["env"] if "value" in e}
    assert quotas.quota_from_env(env) == quota


def test_read_namespace_quota(monkeypatch):
    from kubernetes import config

    for env in (quotas.QUOTA_CPU_ENV, quotas.QUOTA_MEMORY_ENV, quotas.QUOTA_GPU_ENV):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv(quotas.NAMESPACE_ENV, "user2")
    assert quotas.read_namespace_quota() is None  # not in a pod

    calls = []
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv(quotas.QUOTA_ENV, "raytune-trials")
    monkeypatch.setattr(config, "load_incluster_config", lambda: None)

    def read(self, name, namespace, **kwargs):
        calls.append((name, namespace))
        return _resource_quota({"limits.cpu": "6", "limits.memory": "12Gi"})

    monkeypatch.setattr(k8s.CoreV1Api, "read_namespaced_resource_quota", read)
    assert quotas.read_namespace_quota() == Quota(cpu=6.0, memory=12 * GiB)
    assert calls == [("raytune-trials", "user2")]
    # The quota in the head's environment wins, and needs no API call.
    monkeypatch.setenv(quotas.QUOTA_CPU_ENV, "18")
    monkeypatch.setenv(quotas.QUOTA_MEMORY_ENV, "36Gi")
    assert quotas.read_namespace_quota() == Quota(cpu=18.0, memory=36 * GiB) and len(calls) == 1
    monkeypatch.setenv(quotas.QUOTA_CPU_ENV, "nan")
    with pytest.raises(SpecError, match="quota: 'nan' is not a CPU quantity"):
        quotas.read_namespace_quota()


def test_quota_too_small_is_bad_input_and_starts_nothing(tmp_path, capsys):
    spec = _counter_spec("too-big", parallel=2, trials=2)
    spec["trial"]["resources"] = {"cpu": 2}
    path = tmp_path / "too-big.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = main(["run", str(path), "--storage-path", str(tmp_path / "runs"), "--quota-cpu", "1", "--no-report"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: trial.resources.cpu: 2 vCPU per trial does not fit the tenant quota of 1 vCPU"
    )
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- on the simulated cluster


def _two_trial_spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "objective": {"type": "minimize", "objectiveMetricName": "value"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 3}]},
        "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10}},
                       {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15}}],
        "parallelTrialCount": 1, "maxTrialCount": 2,
        "trial": {"trainable": "branin", "resources": {"cpu": 1}},
    }


def test_cluster_up_with_one_cpu_workers_runs_a_submitted_experiment(tmp_path):
    """``cluster up --worker-cpus 1`` starts workers that Ray accepts (``--num-cpus 1``, not
    ``1.0``, which ``ray start`` refused, so that no trial ever ran), and ``ray job submit`` of an
    experiment then runs its trials there. ``up`` says how to use the cluster and refuses a
    second one; ``down`` leaves nothing, and says so when there is nothing to stop."""
    import psutil

    state_file = tmp_path / "cluster.json"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["RAYTUNE_K8S_CLUSTER_STATE"] = str(state_file)
    cli = [sys.executable, "-m", "raytune_k8s"]
    up_args = [*cli, "cluster", "up", "--worker-cpus", "1", "--max-workers", "1", "--idle-timeout-s", "5", "--pod-start-s", "1"]
    up = subprocess.run(up_args, env=env, capture_output=True, text=True, timeout=180)
    assert up.returncode == 0, up.stderr[-3000:]
    state = json.loads(state_file.read_text())
    try:
        assert f"export RAY_ADDRESS={state['address']}" in up.stdout and "raytune-k8s cluster down" in up.stdout
        assert state["pod_start_s"] == 1
        assert psutil.Process(state["pid"]).is_running(), "the cluster runs on after 'up' returns"
        again = subprocess.run(up_args, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "already up" in again.stderr, again.stderr[-2000:]
        work = tmp_path / "work"
        work.mkdir()
        (work / "experiment.yaml").write_text(yaml.safe_dump(_two_trial_spec("one-cpu-workers")))
        submit = subprocess.run(
            [shutil.which("ray") or "ray", "job", "submit", "--address", state["dashboard_url"], "--working-dir", str(work),
             "--", "raytune-k8s", "run", "experiment.yaml", "--storage-path", str(tmp_path / "runs"), "--no-report"],
            env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=300)
        assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
        summary = json.loads((tmp_path / "runs" / "one-cpu-workers" / "summary.json").read_text())
        assert summary["status"] == "Succeeded" and summary["trials"] == 2
        assert not Path(state["failed_starts"]).exists(), Path(state["failed_starts"]).read_text()
    finally:
        down = subprocess.run([*cli, "cluster", "down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
    assert _cluster_processes(Path(state["temp_dir"])) == [] and not Path(state["temp_dir"]).exists() and not state_file.exists()
    down = subprocess.run([*cli, "cluster", "down"], env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 0 and "no cluster" in down.stdout, down.stdout + down.stderr


def test_a_worker_that_fails_to_start_is_reported_with_its_error(tmp_path):
    """A worker whose ``ray start`` dies is recorded by the provider with its log's last line,
    the run prints it at once, and after the (lowered) resource wait says what it waits for."""
    if ray.is_initialized():
        ray.shutdown()  # the session's Ray; `ray_connected` reconnects later tests
    head = AutoscalingLocalCluster(worker_cpus=1, max_workers=1, idle_timeout_s=5,
                                   worker_start_args=["--no-such-option"])
    with head:
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump(_two_trial_spec("failing-workers")))
        env = {**head.client_env(), "RAYTUNE_K8S_RESOURCE_WAIT_S": "5"}
        with open(tmp_path / "run.log", "wb") as log:
            driver = subprocess.Popen([sys.executable, "-m", "raytune_k8s", "run", str(spec), "--address", head.address,
                                       "--storage-path", str(tmp_path / "runs"), "--no-report"],
                                      stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        start = time.monotonic()
        try:
            def said() -> bool:
                text = (tmp_path / "run.log").read_text(errors="replace")
                return "failed to start" in text and "waiting" in text
            _until(said, 60, "the run reports the failed worker and the wait")
        finally:
            driver.send_signal(signal.SIGTERM)
            driver.wait(120)
        took = time.monotonic() - start
        out = (tmp_path / "run.log").read_text(errors="replace")
        line = next(line for line in out.splitlines() if "failed to start" in line)
        assert line.startswith("worker n1 failed to start: ") and "no-such-option" in line, out[-3000:]
        wait = next(line for line in out.splitlines() if line.startswith("waiting "))
        assert "for resources: 1 trial(s) pending, 0 running of 1; each trial needs cpu 1" in wait, wait
        assert "the cluster has 1 node(s) with CPU 0 free of 0" in wait and "one worker offers CPU 1" in wait, wait
        assert took < 60, took
        records = [json.loads(r) for r in head.failed_starts_file.read_text().splitlines()]
        assert records[0]["node"] == "n1" and "no-such-option" in records[0]["reason"]
        if len(records) >= 3:  # retried with a growing back-off (1 s, 2 s, ...), not at every autoscaler step
            assert records[2]["time"] - records[1]["time"] >= 0.9 * 1.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[AutoscalingLocalCluster]:
    if ray.is_initialized():
        ray.shutdown()  # the session's Ray; `ray_connected` reconnects later tests
    # At most 2 nodes start Ray at once: on a busy machine, nodes started all at once can miss the
    # 15 s within which a raylet needs its agent up, and abort (see raytune_k8s.sim.provider).
    head = AutoscalingLocalCluster(worker_cpus=1, max_workers=MAX_WORKERS, idle_timeout_s=IDLE_TIMEOUT_S, max_starting=2)
    with head:
        ray.init(address=head.address, log_to_driver=False)
        try:
            yield head
        finally:
            ray.shutdown()
    assert _cluster_processes(head.temp_dir) == [], "stop() left processes of the cluster behind"


@pytest.fixture
def at_zero(cluster: AutoscalingLocalCluster) -> AutoscalingLocalCluster:
    cluster.wait_for_workers(0, timeout=60)
    return cluster


def _counter_spec(name: str, *, parallel: int, trials: int, **fixed: Any) -> dict[str, Any]:
    return {
        "name": name,
        "objective": {"type": "maximize", "objectiveMetricName": "step"},
        "algorithm": {"algorithmName": "random"},
        "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}}],
        "parallelTrialCount": parallel,
        "maxTrialCount": trials,
        "trial": {
            "function": "raytune_k8s.trials.probes:counter",
            "fixedParameters": fixed,
            "resources": {"cpu": 1},
            "retries": 2,
        },
    }


def _results(experiment_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every result each trial reported, in order (its result.json)."""
    out = {}
    for path in experiment_dir.glob("*/result.json"):
        out[path.parent.name] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def _max_overlap(results: dict[str, list[dict[str, Any]]], sleep: float) -> int:
    """The most trials counting at the same moment (each from its first step's start to its last)."""
    events = []
    for rows in results.values():
        events += [(rows[0]["t"] - sleep, 1), (rows[-1]["t"], -1)]
    running = most = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        running += delta
        most = max(most, running)
    return most


def test_scales_from_zero_to_parallelism_and_back(at_zero, tmp_path):
    spec = _counter_spec("scale-6", parallel=6, trials=6, steps=4, sleep=0.5, wait_for=6, wait_dir=str(tmp_path / "signin"))
    summary = raytune_k8s.run(spec, storage_path=tmp_path, report=False)
    assert at_zero.resource_request() == [], "the request is withdrawn when the experiment ends"
    assert summary["status"] == "Succeeded" and summary["trials"] == 6
    results = _results(tmp_path / "scale-6")
    assert len({rows[-1]["node_id"] for rows in results.values()}) == 6, "one trial per worker node"
    assert _max_overlap(results, 0.5) == 6, "all six trials counted at once: six workers were up together"
    at_zero.wait_for_workers(0, timeout=120)  # and then none: the idle workers are removed


def test_quota_caps_parallelism_and_says_why(at_zero, tmp_path, capsys):
    spec = _counter_spec("quota-3", parallel=6, trials=6, steps=4, sleep=0.5, wait_for=3, wait_dir=str(tmp_path / "signin"))
    path = tmp_path / "quota-3.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = main(["run", str(path), "--storage-path", str(tmp_path), "--quota-cpu", "3", "--no-report"])
    err = capsys.readouterr().err
    assert code == 0
    note = "quota caps parallelism: parallelTrialCount 6 asks for 6 x 1 vCPU, the tenant quota allows 3 vCPU: running 3 trials at once"
    assert [line for line in err.splitlines() if "caps parallelism" in line] == [note]
    results = _results(tmp_path / "quota-3")
    assert len(results) == 6
    assert _max_overlap(results, 0.5) == 3
    assert len({rows[-1]["node_id"] for rows in results.values()}) == 3, "only the workers the quota allows were started"


def test_killed_worker_trial_continues_from_checkpoint_on_a_new_node(at_zero, tmp_path):
    steps, kill_at = 12, 4
    spec = _counter_spec("kill", parallel=1, trials=1, steps=steps, sleep=0.5)
    killed: dict[str, Any] = {}

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for rows in _results(tmp_path / "kill").values():
                if rows and rows[-1]["step"] >= kill_at:
                    killed.update(node_id=at_zero.kill_worker(rows[-1]["node_id"]), after_step=rows[-1]["step"],
                                  at=time.monotonic())
                    return
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    summary = raytune_k8s.run(spec, storage_path=tmp_path, report=False)
    thread.join()
    assert killed, "the trial never reached the step to kill it at"
    assert summary["status"] == "Succeeded" and summary["trials"] == 1 and summary["failed"] == 0
    (rows,) = _results(tmp_path / "kill").values()
    assert [r["step"] for r in rows] == list(range(1, steps + 1)), "every step once, in order: none lost or redone"
    before = [r for r in rows if r["starts"] == 1]
    after = [r for r in rows if r["starts"] == 2]
    assert before and after and len(before) + len(after) == steps
    assert {r["node_id"] for r in before} == {killed["node_id"]}
    assert killed["node_id"] not in {r["node_id"] for r in after}, "continued on a replacement node"
    assert after[0]["step"] == before[-1]["step"] + 1, "continued from the last checkpoint"
    assert len(list((tmp_path / "kill").glob("*/checkpoint_*"))) >= 1  # the checkpoints live in the shared storage_path


def _coordinator_state() -> dict[str, Any]:
    """The coordinator's state; empty while no experiment has created it yet."""
    try:
        actor = ray.get_actor(coordinator.NAME, namespace=coordinator.NAMESPACE)
    except ValueError:
        return {"experiments": {}, "request": [], "dropped": []}
    return ray.get(actor.state.remote())


def _both_joined() -> dict[str, Any] | None:
    state = _coordinator_state()
    return state if len(state["experiments"]) == 2 else None


_until = functools.partial(wait_for, interval=0.25)  # (predicate, timeout, what)


def _driver(cluster: AutoscalingLocalCluster, spec: dict[str, Any], tmp_path: Path) -> subprocess.Popen[bytes]:
    """``raytune-k8s run`` of ``spec`` as a driver process of its own, joined to ``cluster``."""
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**cluster.client_env(), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(tmp_path / f"{spec['name']}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "raytune_k8s", "run", str(path), "--address", cluster.address,
             "--storage-path", str(tmp_path / "runs"), "--no-report"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )


def test_fair_shares_of_a_quota():
    one = {"CPU": 1.0}
    assert fair_shares([[one] * 6, [one] * 6], {"cpu": 6}) == [3, 3]
    assert fair_shares([[one] * 6, [one] * 6], {"cpu": 5}) == [3, 2], "the earlier experiment gets the odd trial"
    assert fair_shares([[one] * 1, [one] * 6], {"cpu": 6}) == [1, 5], "what one leaves goes to the other"
    assert fair_shares([[one] * 4, [one] * 4], None) == [4, 4], "no quota: every ask"
    assert fair_shares([[{"CPU": 2.0}] * 3, [one] * 3], {"cpu": 4, "memory": None}) == [1, 2]
    assert fair_shares([[{"CPU": 1.0, "GPU": 1.0}] * 2, [one] * 2], {"cpu": 8, "gpu": 1}) == [1, 2]
    assert fair_shares([], {"cpu": 4}) == []


def test_two_experiments_at_once_both_scale_up_and_finish(at_zero, tmp_path):
    """Each asks for 2 workers; their 4 first trials wait for each other, so both run together."""
    barrier = str(tmp_path / "signin")
    specs = [_counter_spec(name, parallel=2, trials=4, steps=3, sleep=0.5, wait_for=4, wait_dir=barrier)
             for name in ("exp-a", "exp-b")]
    drivers = [_driver(at_zero, spec, tmp_path) for spec in specs]
    try:
        both = _until(_both_joined, 120, "both experiments joined the coordinator")
        assert sorted(e["name"] for e in both["experiments"].values()) == ["exp-a", "exp-b"]
        assert both["request"] == [{"CPU": 1.0}] * 4, "the request is the sum of both experiments' asks"
        codes = [d.wait(timeout=300) for d in drivers]
    finally:
        for d in drivers:
            d.kill()
    logs = {s["name"]: (tmp_path / f"{s['name']}.log").read_text(errors="replace")[-3000:] for s in specs}
    assert codes == [0, 0], logs
    nodes = {}
    for spec in specs:
        summary = json.loads((tmp_path / "runs" / spec["name"] / "summary.json").read_text())
        assert summary["status"] == "Succeeded" and summary["trials"] == 4, spec["name"]
        results = _results(tmp_path / "runs" / spec["name"])
        nodes[spec["name"]] = {rows[-1]["node_id"] for rows in results.values()}
    assert len(nodes["exp-a"] | nodes["exp-b"]) >= 4, "four workers were up for the two experiments"
    assert _coordinator_state()["experiments"] == {} and at_zero.resource_request() == []
    at_zero.wait_for_workers(0, timeout=120)


def test_sigkilled_driver_lets_its_workers_go(at_zero, tmp_path):
    spec = _counter_spec("killed-driver", parallel=2, trials=2, steps=200, sleep=0.5)
    driver = _driver(at_zero, spec, tmp_path)
    try:
        _until(lambda: any(rows for rows in _results(tmp_path / "runs" / "killed-driver").values()), 120,
               "a trial reported on a worker")
        assert [e["name"] for e in _coordinator_state()["experiments"].values()] == ["killed-driver"]
        assert at_zero.resource_request() == [{"CPU": 1.0}] * 2
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    killed = time.monotonic()
    _until(lambda: "killed-driver" in _coordinator_state()["dropped"], 60, "the coordinator dropped the dead driver")
    assert _coordinator_state()["experiments"] == {} and at_zero.resource_request() == []
    # The bound: back to 0 workers within the idle timeout + 10 s of the kill.
    at_zero.wait_for_workers(0, timeout=IDLE_TIMEOUT_S + 10 - (time.monotonic() - killed))


def test_parallelism_request_asks_for_all_workers_at_once_and_withdraws(at_zero):
    """Last in the module: the workers it starts are not waited for, the cluster just stops."""
    assert request.cluster_can_autoscale()
    with request.parallelism_request(request.trial_bundles({"cpu": 1, "gpu": 0}, 3), "request") as asked:
        assert asked
        assert at_zero.resource_request() == [{"CPU": 1.0}] * 3
        # With no trial pending, the request alone makes the autoscaler launch all three.
        _until(lambda: at_zero.pending_workers() + at_zero.worker_count() >= 3, 60, "three workers launched")
    assert at_zero.resource_request() == []
