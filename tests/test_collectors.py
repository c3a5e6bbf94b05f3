"""Metrics collectors and the command-trial process, on real processes and files (no Ray):
what Katib's collectors read, what a trial reports, and that its processes end with it."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from raytune_k8s.collectors.stdout import StdOutCollector
from raytune_k8s.spec import MetricsCollectorSpec
from raytune_k8s.trials.command import CommandTrial, MetricsUnavailable, TrialTimeout, run_trial_process


def _collector_spec(**spec) -> MetricsCollectorSpec:
    return MetricsCollectorSpec.model_validate(spec)


def _run(tmp_path: Path, script: str, metrics=("loss",), collector=None, timeout=None, config=None, name="t1", **kw):
    program = tmp_path / f"{name}.py"
    program.write_text(textwrap.dedent(script))
    trial = CommandTrial(argv=(sys.executable, str(program), *kw.pop("args", ())), metric_names=tuple(metrics),
                         collector=collector or MetricsCollectorSpec(), timeout_s=timeout, **kw)
    reports: list[dict] = []
    trial_dir = tmp_path / name
    trial_dir.mkdir(exist_ok=True)
    run_trial_process(trial, config or {}, trial_dir, name, reports.append)
    return reports


def test_stdout_default_filter_reads_katib_log_lines():
    c = StdOutCollector(["loss", "Validation-accuracy"])
    assert c.on_line("2024-01-01T00:00:00Z INFO     Train Epoch: 1 [0/60000 (0%)]\tloss=2.3020") == [("loss", 2.302)]
    assert c.on_line("Validation-accuracy=0.91 loss=1e-3 other=5") == [("Validation-accuracy", 0.91), ("loss", 0.001)]
    assert c.on_line("loss=nan") == [] and c.rejected == ["loss=nan"]


def test_custom_metrics_format_filter():
    c = StdOutCollector(["accuracy", "loss"], [r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"])
    line = "2024-01-01T00:00:00Z INFO {metricName: accuracy, metricValue: 0.9512};{metricName: loss, metricValue: 0.1667}"
    assert c.on_line(line) == [("accuracy", 0.9512), ("loss", 0.1667)]


def test_every_objective_line_is_one_report_with_the_latest_other_metrics(tmp_path):
    reports = _run(tmp_path, """
        for step in range(3):
            print(f"accuracy={0.5 + step / 10}", flush=True)
            print(f"step {step}: loss={1.0 / (step + 1):.3f}", flush=True)
        print("loss=inf")
    """, metrics=("loss", "accuracy"))
    assert reports == [{"accuracy": 0.5, "loss": 1.0}, {"accuracy": 0.6, "loss": 0.5}, {"accuracy": 0.7, "loss": 0.333}]


def test_file_collector_text_and_json_are_per_trial(tmp_path):
    text = _collector_spec(source={"fileSystemPath": {"path": "/katib/m.log", "kind": "File"}}, collector={"kind": "File"})
    script = """
        import sys, time
        path = sys.argv[1].split("=", 1)[1]
        for step in range(3):
            with open(path, "a") as f:
                f.write(f"epoch {step} loss={float(sys.argv[2]) + step}\\n")
            time.sleep(0.3)
    """
    a = _run(tmp_path, script, collector=text, name="a", args=("--log=/katib/m.log", "1"))
    b = _run(tmp_path, script, collector=text, name="b", args=("--log=/katib/m.log", "10"))
    # Each program got its own path (its argv had Katib's path rewritten), so neither saw the other's lines.
    assert [r["loss"] for r in a] == [1.0, 2.0, 3.0] and [r["loss"] for r in b] == [10.0, 11.0, 12.0]
    assert (tmp_path / "a" / "collector" / "katib" / "m.log").exists()
    jsonl = _collector_spec(source={"fileSystemPath": {"path": "/katib/m.json", "kind": "File", "format": "JSON"}},
                            collector={"kind": "File"})
    reports = _run(tmp_path, """
        import json, sys
        with open(sys.argv[1].split("=", 1)[1], "w") as f:
            for step in range(2):
                f.write(json.dumps({"loss": str(0.5 / (step + 1)), "accuracy": "0.9", "timestamp": "2024-01-01T00:00:00Z"}) + "\\n")
            f.write('{"loss": "NaN"}')
    """, metrics=("loss", "accuracy"), collector=jsonl, name="j", args=("--log-path=/katib/m.json",))
    assert reports == [{"loss": 0.5, "accuracy": 0.9}, {"loss": 0.25, "accuracy": 0.9}]


def test_tensorflow_event_collector_reads_scalars(tmp_path):
    spec = _collector_spec(source={"fileSystemPath": {"path": "/logs/train", "kind": "Directory"}},
                           collector={"kind": "TensorFlowEvent"})
    reports = _run(tmp_path, """
        import sys
        from tensorboardX import SummaryWriter
        w = SummaryWriter(sys.argv[1])
        for step in range(3):
            w.add_scalar("train/loss", 1.0 / (step + 1), step)
            w.add_scalar("accuracy", 0.8 + step / 100, step)
        w.close()
    """, metrics=("loss", "accuracy"), collector=spec, args=("/logs/train",))
    assert [round(r["loss"], 4) for r in reports] == [1.0, 0.5, 0.3333]
    assert reports[-1]["accuracy"] == pytest.approx(0.82)


def test_push_collector_gets_what_report_metrics_sends(tmp_path):
    spec = _collector_spec(collector={"kind": "Push"})
    reports = _run(tmp_path, """
        from raytune_k8s import report_metrics
        for step in range(2):
            report_metrics({"loss": 0.5 / (step + 1), "accuracy": 0.9})
        print("loss=123")  # Push reads no stdout
    """, metrics=("loss", "accuracy"), collector=spec)
    assert reports == [{"loss": 0.5, "accuracy": 0.9}, {"loss": 0.25, "accuracy": 0.9}]


def test_no_objective_is_metrics_unavailable_and_bad_exit_is_failed(tmp_path):
    with pytest.raises(MetricsUnavailable, match="MetricsUnavailable: the trial reported no 'loss'.*accuracy=0.5"):
        _run(tmp_path, 'print("accuracy=0.5")', metrics=("loss", "accuracy"))
    with pytest.raises(RuntimeError, match="exited with status 3; last output: loss=1.0 | dying"):
        _run(tmp_path, 'import sys\nprint("loss=1.0"); print("dying"); sys.exit(3)', name="t2")


def test_placeholders_and_metadata_references(tmp_path):
    reports = _run(tmp_path, """
        import os, sys
        print(f"loss={sys.argv[1]}", os.environ["TRIAL"], os.environ["NS"], flush=True)
    """, args=("${trialParameters.rate}",), config={"lr": 0.25},
        references={"rate": "lr", "me": "${trialSpec.Name}", "ns": "${trialSpec.Namespace}"},
        env={"TRIAL": "${trialParameters.me}", "NS": "${trialParameters.ns}"}, namespace="user1")
    assert reports == [{"loss": 0.25}]


def _descendants_alive(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def test_timeout_ends_the_trial_and_its_grandchildren(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("loss=1.0", flush=True)
        time.sleep(600)
    """
    started = time.monotonic()
    with pytest.raises(TrialTimeout, match="Timeout: the trial ran longer than 2 s"):
        _run(tmp_path, script, timeout=2)
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 10
    while _descendants_alive(pid_file) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _descendants_alive(pid_file), "the trial's grandchild outlived it"


def test_huge_output_keeps_only_the_tail(tmp_path, capfd):
    with pytest.raises(RuntimeError) as info:
        _run(tmp_path, """
            import sys
            line = "x" * 1000
            for i in range(20000):
                print(line, i)
            print("last words")
            sys.exit(1)
        """)
    capfd.readouterr()
    message = str(info.value)
    assert "last words" in message and len(message) < 20 * 600


def test_missing_program_names_the_image_and_path(tmp_path):
    trial = CommandTrial(argv=("python3", "/opt/their-image/train.py"), metric_names=("loss",), image="example.com/team/trainer:1")
    with pytest.raises(FileNotFoundError, match=r"/opt/their-image/train.py \(from image 'example.com/team/trainer:1'\) is not on this Ray worker"):
        run_trial_process(trial, {}, tmp_path, "t", lambda r: None)


def test_katib_program_path_runs_our_stand_in(tmp_path):
    trial = CommandTrial(argv=("python3", "/opt/pytorch-mnist/mnist.py", "--epochs=1", "--batch-size=500", "--log-interval=2",
                               "--lr=0.05", "--momentum=0.5"), metric_names=("loss",))
    reports: list[dict] = []
    run_trial_process(trial, {}, tmp_path, "t", reports.append)
    losses = [r["loss"] for r in reports]
    assert len(losses) == 4 and losses[-1] < losses[0], losses  # 8 batches, one line every 2: it learns


def test_killed_runner_process_takes_the_trial_tree_with_it(tmp_path):
    """The trial actor's process SIGKILLed (nothing in it runs: no finally, no thread): the
    trial's process and its grandchild still die within seconds. A threaded parent running the
    trial off its main thread stands in for the Ray worker."""
    import os
    import signal
    import subprocess

    import raytune_k8s

    pid_file = tmp_path / "grandchild.pid"
    program = tmp_path / "train.py"
    program.write_text(textwrap.dedent(f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pid_file)!r} + ".tmp", "w").write(f"{{os.getpid()}} {{child.pid}}")
        os.rename({str(pid_file)!r} + ".tmp", {str(pid_file)!r})
        while True:
            print("loss=1.0", flush=True)
            time.sleep(0.2)
    """))
    runner = textwrap.dedent(f"""
        import sys, threading, time
        from pathlib import Path
        from raytune_k8s.trials.command import CommandTrial, run_trial_process
        trial = CommandTrial(argv=(sys.executable, {str(program)!r}), metric_names=("loss",))
        threading.Thread(target=run_trial_process, args=(trial, {{}}, Path({str(tmp_path)!r}), "t", lambda r: None),
                         daemon=True).start()
        time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(raytune_k8s.__file__).parents[1])}
    parent = subprocess.Popen([sys.executable, "-c", runner], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        trial_pid, grandchild_pid = map(int, pid_file.read_text().split())
        trial, grandchild = psutil.Process(trial_pid), psutil.Process(grandchild_pid)
        assert trial.ppid() == parent.pid and grandchild.ppid() == trial_pid
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while (alive := [p for p in (trial, grandchild) if _running(p)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alive == [], f"outlived their killed runner: {alive}"
    finally:
        parent.kill()
        parent.wait()
        for pid in map(int, pid_file.read_text().split()) if pid_file.exists() else ():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_no_preexec_fn_in_the_package():
    """Python code between fork and exec is unsafe in a threaded process (a Ray worker is one)."""
    import raytune_k8s

    package = Path(raytune_k8s.__file__).parent
    assert [p.name for p in package.rglob("*.py") if "preexec_fn" in p.read_text()] == []
