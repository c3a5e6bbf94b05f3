"""Every command that starts Ray processes leaves none behind: on success, on failure and on
Ctrl-C. Each test runs the real command line in a shell-like environment without
``RAY_AUTH_MODE`` and lists the processes of its own session by the session's temp dir in their
command lines (never anyone else's Ray).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import psutil
import pytest
import yaml

from raytune_k8s.sim.cluster import _cluster_processes

from .helpers import wait_for

SHELL_ENV = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}


def _cli(*args: str, env: dict[str, str], **kwargs: Any) -> Any:
    return [sys.executable, "-m", "raytune_k8s", *args], {"env": env, "text": True, **kwargs}


_wait_for = functools.partial(wait_for, interval=0.2)  # (predicate, timeout, what)


def _none_left(marker: Path, timeout: float = 15) -> list[str]:
    """The session's processes still alive after ``timeout`` s (Ray's own shutdown takes a moment)."""
    deadline = time.monotonic() + timeout
    while (left := _cluster_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [" ".join(p.cmdline()[:3]) for p in left if p.is_running()]


# ---------------------------------------------------------------- raytune-k8s cluster up / down


@pytest.fixture
def state_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "cluster.json"
    yield path
    if path.exists():  # a failed test: stop what it left, by its own record
        from raytune_k8s.sim.cluster import stop_background_cluster

        stop_background_cluster(path)


def _cluster_env(state_file: Path) -> dict[str, str]:
    return {**SHELL_ENV, "RAYTUNE_K8S_CLUSTER_STATE": str(state_file)}


def test_cluster_up_then_down_without_ray_auth_mode_leaves_nothing(state_file):
    env = _cluster_env(state_file)
    cmd, kw = _cli("cluster", "up", "--worker-cpus", "1", "--max-workers", "2", env=env)
    up = subprocess.run(cmd, capture_output=True, timeout=180, **kw)
    assert up.returncode == 0, up.stderr
    assert "Traceback" not in up.stderr and "export RAY_ADDRESS=" in up.stdout
    temp_dir = Path(json.loads(state_file.read_text())["temp_dir"])
    assert any("gcs_server" in " ".join(p.cmdline()) for p in _cluster_processes(temp_dir)), "the cluster runs on after 'up'"
    cmd, kw = _cli("cluster", "down", env=env)
    down = subprocess.run(cmd, capture_output=True, timeout=120, **kw)
    assert down.returncode == 0 and "stopped the local cluster" in down.stdout, down.stderr
    assert _none_left(temp_dir) == [] and not state_file.exists() and not temp_dir.exists()


def _start_up_until_gcs_runs(state_file: Path) -> tuple[subprocess.Popen[str], Path, psutil.Process]:
    """``cluster up`` in the background, up to the moment its GCS runs (head not ready yet)."""
    cmd, kw = _cli("cluster", "up", "--worker-cpus", "1", "--max-workers", "2", env=_cluster_env(state_file))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    state = _wait_for(lambda: state_file.exists() and json.loads(state_file.read_text()), 60,
                      "the cluster was not recorded before its readiness wait")
    temp_dir = Path(state["temp_dir"])
    gcs = _wait_for(lambda: next((p for p in _cluster_processes(temp_dir) if "gcs_server" in " ".join(p.cmdline())), None),
                    60, "no GCS started")
    assert proc.poll() is None, "the head was ready too early for this test"
    return proc, temp_dir, gcs


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_cluster_up_interrupted_while_starting_stops_everything(state_file, signum):
    proc, temp_dir, _ = _start_up_until_gcs_runs(state_file)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted: every process it started is stopped" in err, err
    assert "Traceback" not in err
    assert _none_left(temp_dir) == [] and not state_file.exists()


def test_cluster_up_that_fails_while_starting_stops_everything(state_file):
    proc, temp_dir, _ = _start_up_until_gcs_runs(state_file)
    # `ray start --block` dies, leaving the GCS and the other processes it had started
    # (killing the GCS instead makes it give up too, but only after Ray's 30-s GCS timeout).
    starter = next(p for p in psutil.Process(proc.pid).children(recursive=True)
                   if "start" in p.cmdline() and "--block" in p.cmdline())
    starter.kill()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "error: ray start exited" in err, err
    assert _none_left(temp_dir) == [] and not state_file.exists()


# ---------------------------------------------------------------- raytune-k8s run (embedded Ray)


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """A short RAY_TMPDIR (Ray's socket paths must stay under 108 bytes) that marks the session."""
    path = Path(tempfile.mkdtemp(prefix="rtkp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _embedded_run(tmp_path: Path, ray_tmp: Path, trial: dict[str, Any], **spec: Any) -> tuple[list[str], dict[str, Any]]:
    doc = {
        "name": "leaves-nothing",
        "objective": {"type": "minimize", "objectiveMetricName": "value"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 1}]},
        "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10}},
                       {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15}}],
        "parallelTrialCount": 1, "maxTrialCount": 2, "maxFailedTrialCount": 0,
        "trial": {**trial, "resources": {"cpu": 1}},
        **spec,
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(doc))
    env = {**SHELL_ENV, "RAY_TMPDIR": str(ray_tmp), "RAYTUNE_K8S_STORAGE": str(tmp_path / "runs")}
    return _cli("run", str(path), "--no-report", env=env)


def _started_ray_there(ray_tmp: Path) -> bool:
    return any(ray_tmp.glob("ray/session_*"))


RAY_CHATTER = ("Checkpoint successfully created", "Experiment state snapshotting", "Started a local Ray instance",
               "Token authentication is enabled", "Configuration for experiment", "View detailed results here")


def test_the_terminal_shows_progress_and_errors_and_ray_only_when_verbose(tmp_path, ray_tmp):
    """By default: our progress lines, the table and the paths, none of Ray's and Tune's chatter;
    ``--verbose`` (the failing run) shows that chatter too, and each failed trial's error either
    way. Each run leaves no process of the Ray it started."""
    cmd, kw = _embedded_run(
        tmp_path, ray_tmp,
        {"function": "raytune_k8s.trials.probes:counter", "fixedParameters": {"steps": 12, "sleep": 0.05}},
        objective={"type": "maximize", "objectiveMetricName": "step"}, maxTrialCount=1)
    done = subprocess.run(cmd, capture_output=True, timeout=300, **kw)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout + done.stderr
    assert "1/1 done" in out and "summary.json" in out, out[-3000:]
    lines = out.splitlines()  # one line per event, unwrapped, where the output is not a terminal
    assert any("1/1 done" in line and "| best step=12" in line for line in lines), out[-3000:]
    assert any(line.startswith("Succeeded (") and "best step=12 with {" in line for line in lines), out[-3000:]
    assert [chatter for chatter in RAY_CHATTER if chatter in out] == []
    assert _started_ray_there(ray_tmp) and _none_left(ray_tmp) == []

    failing = {"command": "python3 -c 'import sys; print(\"no data at /data/mnist\", file=sys.stderr); sys.exit(3)'"}
    (tmp_path / "failing").mkdir()
    cmd, kw = _embedded_run(tmp_path / "failing", ray_tmp, failing)
    done = subprocess.run(cmd + ["--verbose"], capture_output=True, timeout=300, **kw)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Failed" in done.stdout
    shown = [chatter for chatter in RAY_CHATTER if chatter in done.stdout + done.stderr]
    assert "Started a local Ray instance" in shown, shown
    errors = [line for line in done.stderr.splitlines() if line.startswith("  error: ")]
    assert errors and "exited with status 3" in errors[0] and "traceback: " in errors[0], done.stderr[-3000:]
    assert _none_left(ray_tmp) == []


def test_run_interrupted_with_ctrl_c_leaves_nothing(tmp_path, ray_tmp):
    """The trial reports as a training program does, and leaves a silent grandchild running (a
    trial that reports nothing at all holds Tune's stop up for 10 s: README, Known limits)."""
    seconds = f"61.{uuid.uuid4().int % 10**6:06d}"  # marks this test's grandchild process
    script = f"sleep {seconds} & while true; do echo value=1; sleep 0.2; done"
    cmd, kw = _embedded_run(tmp_path, ray_tmp, {"command": f"sh -c '{script}'"})
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

    def trial() -> psutil.Process | None:
        return next((p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", seconds]), None)

    sleeper = _wait_for(trial, 180, "the trial never started")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, err[-3000:]
    assert _none_left(ray_tmp) == []
    assert not sleeper.is_running() or sleeper.status() == psutil.STATUS_ZOMBIE


# ---------------------------------------------------------------- listing a session's processes


def test_listing_processes_skips_unreadable_ones_and_lets_bugs_through(tmp_path):
    from raytune_k8s.sim.cluster import _cmdline

    marker = tmp_path / f"marker-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(marker)])
    try:
        listed = _wait_for(lambda: _cluster_processes(marker), 10, "the marked process is not listed")
        assert [p.pid for p in listed] == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
    assert _cluster_processes(marker) == []
    with pytest.raises(psutil.NoSuchProcess):
        listed[0].cmdline()
    assert _cmdline(listed[0]) == "", "a process gone since it was listed has no command line"

    class Broken(psutil.Process):
        def cmdline(self) -> list[str]:
            raise RuntimeError("a bug, not a process that went away")

    with pytest.raises(RuntimeError, match="a bug"):
        _cmdline(Broken(os.getpid()))
