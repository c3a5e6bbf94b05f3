"""Command trials: a process per trial, as Katib's pod ran its primary container.

``${trialParameters.NAME}`` placeholders are filled in (a parameter's value, or Katib's trial
metadata), the metrics collector reads what the process prints or writes, and every observation
of the objective is reported to Ray Tune. The process (and everything it started) ends with the
trial: on success, failure, early stopping, timeout or error, and when its trial actor's process
is killed (:class:`_Watchdog`).

Under ``pbt`` a command trial runs in segments, Katib's way (:class:`Segments`): each run of the
process is one of Katib's PBT trials, given a checkpoint directory that starts as a copy of the
checkpoint the trial resumes from.
"""

from __future__ import annotations

import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..spec import MetricsCollectorSpec
from ..spec.trial_kinds import Gang, PodProcesses
from ..spec.katib import METADATA_REFERENCE as _METADATA
from ..spec.katib import PLACEHOLDER as _PLACEHOLDER
from .katib_programs import entrypoint_for, stand_in

TAIL_LINES = 20
_KILL_GRACE_S = 3.0
#: Result key of a command trial under pbt: segments its model has trained (PBT's clock for it).
SEGMENTS = "pbt_segments"
_FILES = "files"  # the process's checkpoint directory, inside a Tune checkpoint


class TrialTimeout(RuntimeError):
    """The trial ran longer than its timeout (Katib: the trial failed, reason Timeout)."""


class MetricsUnavailable(RuntimeError):
    """The trial ended without reporting its objective metric (Katib: MetricsUnavailable)."""


@dataclass(frozen=True)
class CommandTrial:
    """Everything a command trial needs, picklable for the trial actor."""

    argv: tuple[str, ...] | str
    metric_names: tuple[str, ...]
    collector: MetricsCollectorSpec = field(default_factory=MetricsCollectorSpec)
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    #: trialParameter name -> parameter name or ${trialSpec.*} reference (None: the name itself)
    references: Mapping[str, str] | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    namespace: str | None = None
    kind: str = "Job"
    api_version: str = "batch/v1"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    timeout_s: float | None = None
    segments: "Segments | None" = None
    #: Katib's pod: init containers, volumes, env from the Kubernetes API (None: a plain command)
    pod: PodProcesses | None = None
    #: a trial of several replicas (or one replica of a Kubeflow job, for its environment)
    gang: Gang | None = None
    #: Secret and ConfigMap values read before the run (source's field path -> values)
    resolved_sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def distributed(self) -> bool:
        """Whether the trial is a gang of several replica processes."""
        return self.gang is not None and len(self.gang.replicas) > 1


@dataclass(frozen=True)
class Segments:
    """PBT for command trials, as Katib runs it: a trial is a series of process runs (Katib's PBT
    trials, one segment each). The path ``katib_dir`` (Katib's ``suggestion_trial_dir``, which
    Katib mounts as the trial's own checkpoint directory) is replaced in the command and its
    environment by a scratch directory on the trial's node; a run starts with it holding a copy of the Tune
    checkpoint the trial resumes from (after an exploit, a better trial's), and after the run its
    contents are reported as a checkpoint with the run's last result."""

    katib_dir: str
    #: segments each population member trains, counted on its model (None: until the experiment ends)
    each: int | None

    def rewrite(self, text: str, local: Path) -> str:
        return text.replace(self.katib_dir.rstrip("/"), str(local)) if self.katib_dir.rstrip("/") in text else text

    def mentioned_in(self, trial: CommandTrial) -> bool:
        texts = [trial.argv] if isinstance(trial.argv, str) else list(trial.argv)
        return any(self.katib_dir.rstrip("/") in t for t in [*texts, *trial.env.values()])


def placeholders(command: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """The trialParameter names a command refers to."""
    parts = [command] if isinstance(command, str) else list(command or [])
    return [m.group(1) for part in parts for m in _PLACEHOLDER.finditer(part)]


def render(text: str, values: Mapping[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def argv_of(command: str | tuple[str, ...] | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def trial_values(trial: CommandTrial, config: Mapping[str, Any], trial_name: str) -> dict[str, Any]:
    """Each trialParameter's value for one trial."""
    params = {**trial.fixed, **config}
    if trial.references is None:
        return params
    out: dict[str, Any] = {}
    for name, ref in trial.references.items():
        m = _METADATA.match(ref)
        if m is None:
            out[name] = params[ref]
        elif m.group(1) == "Name":
            out[name] = trial_name
        elif m.group(1) == "Namespace":
            out[name] = trial.namespace or "default"
        elif m.group(1) == "Kind":
            out[name] = trial.kind
        elif m.group(1) == "APIVersion":
            out[name] = trial.api_version
        elif m.group(2) is not None:
            out[name] = trial.labels.get(m.group(2), "")
        else:
            out[name] = trial.annotations.get(m.group(3), "")
    return out


def trial_files_dir() -> Path:
    """Where a trial keeps its files (collector copies, logs): Ray's working directory of the
    trial, on the node it runs on, which Ray copies to the experiment directory in storage
    (``SyncConfig(sync_artifacts=True)``; the last copy is made, and waited for, when the trial
    ends). Tune's ``get_trial_dir()`` is the driver's staging folder instead: a path on the
    driver's node, which a trial on another node cannot reach, copied to storage only with the
    experiment's state (a file written just before the end could miss the last copy)."""
    from ray import tune

    try:
        return Path(tune.get_context().get_storage().trial_working_directory)
    except Exception:  # not in a Tune trial
        return Path(os.getcwd())


def run_segments(trial: CommandTrial, config: Mapping[str, Any], trial_dir: Path, trial_name: str) -> None:
    """Run ``trial.segments``' process runs from the trial's checkpoint; each run's last result
    carries the checkpoint directory's contents (see :class:`Segments`)."""
    from ray import tune

    from .checkpoints import latest_checkpoint, report_with_checkpoint

    assert trial.segments is not None
    # Outside the trial's working directory: Ray copies that directory to storage from the actor
    # that ran the trial's last run, and may do so while the next run starts on another actor; a
    # file removed or renamed there mid-copy failed the copy (FileNotFoundError from pyarrow).
    with tempfile.TemporaryDirectory(prefix="pbt-checkpoint-") as scratch:
        local = Path(scratch)
        with latest_checkpoint() as (path, state):
            if path is not None and (path / _FILES).is_dir():
                shutil.copytree(path / _FILES, local, dirs_exist_ok=True)
        done = int(state.get("segments", 0))
        while trial.segments.each is None or done < trial.segments.each:
            held = _HoldLast(tune.report, {SEGMENTS: done})
            run_trial_process(trial, config, trial_dir, trial_name, held, checkpoint_dir=local)
            done += 1
            report_with_checkpoint({**held.last, SEGMENTS: done}, {"segments": done},
                                   lambda directory: shutil.copytree(local, directory / _FILES))


class _HoldLast:
    """Reports each result when the next one comes; the last stays in ``last`` (it goes out with
    the run's checkpoint)."""

    def __init__(self, report: Callable[[dict], None], extra: dict[str, Any]):
        self.report, self.extra = report, extra
        self.last: dict[str, Any] = {}

    def __call__(self, metrics: dict[str, Any]) -> None:
        if self.last:
            self.report({**self.last, **self.extra})
        self.last = metrics


def run_trial_process(
    trial: CommandTrial, config: Mapping[str, Any], trial_dir: Path, trial_name: str, report: Callable[[dict], None],
    checkpoint_dir: Path | None = None,
) -> int:
    """Run the trial's process to the end, reporting metrics; returns how many reports it made.
    ``checkpoint_dir``: under pbt, the directory that stands for ``trial.segments.katib_dir``."""
    from ..collectors import create_collector, trial_env
    from .operator_env import Endpoint, replica_env
    from .pod_setup import PodIdentity, prepare_pod, run_init_containers

    values = trial_values(trial, config, trial_name)
    collector = create_collector(trial.collector, list(trial.metric_names), trial_dir, trainer_status=trial.kind == "TrainJob")
    collector.prepare()
    ip = node_ip()
    prepared = (prepare_pod(trial.pod, trial_dir, PodIdentity(trial_name, trial.namespace or "default", ip), trial.resolved_sources)
                if trial.pod is not None else None)

    def local(text: str) -> str:
        text = collector.rewrite(render(text, values))
        if prepared is not None:
            text = prepared.local(text)
        if trial.segments is not None and checkpoint_dir is not None:
            text = trial.segments.rewrite(text, checkpoint_dir)
        return text

    if prepared is not None:
        run_init_containers(prepared, local, lambda line: print(line, flush=True), os.environ)
    argv = program_argv([local(a) for a in argv_of(trial.argv)], trial.image,
                        trial.pod.main.has_command if trial.pod is not None else True)
    env = trial_env({**os.environ, **{k: local(v) for k, v in trial.env.items()}}, collector.env())
    env.update(KATIB_TRIAL_NAME=trial_name, RAYTUNE_K8S_NAMESPACE=trial.namespace or "default")
    if prepared is not None:
        env.update(prepared.env_of(prepared.pod.main))
    if trial.gang is not None:  # one replica of a Kubeflow job: its operator's variables still
        env.update(replica_env(trial.gang, trial.gang.replicas[0], [Endpoint(ip, free_port())]))
    cwd = os.environ.get("TUNE_ORIG_WORKING_DIR", os.getcwd())
    if trial.working_dir:
        cwd = local(trial.working_dir)
        if not os.path.isdir(cwd):
            raise RuntimeError(f"workingDir {cwd!r} of image {trial.image or '?'} does not exist on this Ray worker")
    # The trial's output, as its primary container's log (Katib's get_job_logs reads it): a
    # Kubeflow job's one replica keeps it where a gang's replicas keep theirs.
    log_path = trial_dir / (f"replicas/{trial.gang.replicas[0].name}.log" if trial.gang is not None else OUTPUT_LOG)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as log:
        def echo(line: str) -> None:
            print(line, end="", flush=True)
            log.write(line)

        return _Runner(trial, collector, report, echo=echo).run(argv, env, cwd)


#: A single-process command trial's output, in its folder.
OUTPUT_LOG = "output.log"


def program_argv(argv: list[str], image: str | None, has_command: bool = True) -> list[str]:
    """What runs: a container with only args runs its image's entrypoint (known for Katib's
    example images); a Katib program missing here runs our stand-in; a program named by path
    must be on this worker."""
    if not has_command:
        entrypoint = entrypoint_for(image)
        if entrypoint is None:
            raise RuntimeError(f"the container gives only args, and the entrypoint of image {image or '?'} is not known "
                               "here: give its command")
        argv = entrypoint + argv
    argv = stand_in(argv) or argv
    _check_program(argv, image)
    return argv


def node_ip() -> str:
    """This Ray node's address (127.0.0.1 outside Ray)."""
    try:
        import ray

        return str(ray.util.get_node_ip_address())
    except Exception:
        return "127.0.0.1"


def free_port() -> int:
    """A TCP port free on this machine now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _check_program(argv: list[str], image: str | None) -> None:
    """A program the trial names by path must be on this worker (in its image or working dir)."""
    script = argv[1] if len(argv) > 1 and Path(argv[0]).name.startswith("python") else argv[0]
    if script.startswith("/") and not os.path.exists(script):
        where = f"image {image!r}" if image else "the trial's image"
        raise FileNotFoundError(
            f"{script} (from {where}) is not on this Ray worker: build the worker image with the trial's program "
            "(cluster/README.md: 'Your own trial code'), or ship it in the job's working directory"
        )


class _Runner:
    """One trial process: its output lines, its collector, its reports and its end."""

    def __init__(self, trial: CommandTrial, collector: Any, report: Callable[[dict], None],
                 echo: Callable[[str], None] | None = None, require_metrics: bool = True):
        self.trial, self.collector, self.report = trial, collector, report
        self.echo = echo or (lambda line: print(line, end="", flush=True))
        self.require_metrics = require_metrics
        self.proc: subprocess.Popen[str] | None = None
        #: the process's exit status once it ended
        self.exit_status: int | None = None
        self.objective = trial.metric_names[0]
        self.seen: dict[str, float] = {}
        self.reports = 0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.warned = False

    def run(self, argv: list[str], env: Mapping[str, str], cwd: str) -> int:
        with _Watchdog() as watchdog:
            # A session (and process group) of its own, which _end_process_group and the watchdog
            # end whole. Nothing of ours runs in the child before exec: Python code there is
            # unsafe in a threaded process such as a Ray worker.
            proc = subprocess.Popen(
                argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                errors="replace", bufsize=1, start_new_session=True,
            )
            self.proc = proc
            try:
                watchdog.watch(proc.pid)
            except BaseException:
                _end_process_group(proc)
                raise
            return self._follow(proc, argv)

    def _follow(self, proc: subprocess.Popen[str], argv: list[str]) -> int:
        """Read ``proc`` to its end, reporting; its process group ends however this returns."""
        started = time.monotonic()
        lines: queue.Queue[str | None] = queue.Queue(maxsize=10_000)
        reader = threading.Thread(target=_read_lines, args=(proc, lines), daemon=True)
        reader.start()
        try:
            done = False
            while not done:
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    line = ""
                if line is None:
                    done = True
                elif line:
                    self.tail.append(line.rstrip()[:500])
                    self.echo(line)
                    self.observe(self.collector.on_line(line))
                for group in self.collector.poll():
                    self.observe(group)
                if self.trial.timeout_s is not None and time.monotonic() - started > self.trial.timeout_s:
                    raise TrialTimeout(f"Timeout: the trial ran longer than {self.trial.timeout_s:g} s")
            status = self.exit_status = proc.wait()
            for group in self.collector.flush():
                self.observe(group)
        finally:
            _end_process_group(proc)
            self.collector.close()
        self.warn_rejected()
        if status != 0:
            raise RuntimeError(f"command {argv!r} exited with status {status}; last output: " + " | ".join(self.tail))
        if not self.reports and self.require_metrics:
            raise MetricsUnavailable(
                f"MetricsUnavailable: the trial reported no '{self.objective}' "
                f"(collector {self.trial.collector.collector.kind}); last output: " + " | ".join(self.tail)
            )
        return self.reports

    def observe(self, observations: list[Any]) -> None:
        if not observations:
            return
        has_objective = False
        for name, value in observations:
            self.seen[name] = value
            has_objective |= name == self.objective
        if has_objective:
            self.report(dict(self.seen))
            self.reports += 1
        self.warn_rejected()

    def warn_rejected(self) -> None:
        if self.collector.rejected and not self.warned:
            self.warned = True
            print(f"raytune-k8s: warning: ignored metric values that are not finite numbers: "
                  f"{', '.join(self.collector.rejected[:3])} (warned once per trial)", file=sys.stderr, flush=True)


def _read_lines(proc: subprocess.Popen[str], lines: "queue.Queue[str | None]") -> None:
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if len(line) > 65_536:
                line = line[:65_536] + "\n"
            lines.put(line)
    finally:
        lines.put(None)


#: The watchdog's program (see :class:`_Watchdog`): the first line on stdin is the process group
#: to watch; stdin then closing without "done" means the trial's runner is gone.
_WATCHDOG = """
import os, signal, sys
if os.fork():  # the watchdog is the child: no longer the Ray worker's child (see _Watchdog)
    os._exit(0)
line = sys.stdin.readline().strip()
if line.isdigit() and sys.stdin.read() != "done":
    try:
        os.killpg(int(line), signal.SIGKILL)
    except OSError:
        pass
"""


class _Watchdog:
    """Ends a trial's process group when the process running the trial dies, however it dies:
    ``ray.kill`` of the trial actor, an out-of-memory kill, a crashed worker; nothing in that
    process runs then (no ``finally``, no thread), so this is a separate small process.

    It runs in a session of its own (outside the group it watches, so ending the group spares
    it), and blocks reading a pipe whose only writer is the trial's runner: the kernel closes
    the runner's end when its process dies, and the watchdog SIGKILLs the group unless the
    runner wrote "done" first (it does on every way out of :meth:`_Runner.run`, after ending
    the group itself). Nothing is polled and no pid is guessed, and unlike PR_SET_PDEATHSIG it
    follows the whole process (not the thread that started the child) and reaches the
    grandchildren too. Only the instants between starting the trial's process and handing its
    group to the watchdog are unguarded.

    The watchdog forks away from the process that starts it (the started one exits at once):
    when a Ray worker dies, Ray SIGKILLs the worker's direct children, which would take the
    watchdog too and leave the trial's grandchildren running (seen: a driver stopped with
    SIGTERM left a gang's grandchildren behind)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            text=True, start_new_session=True,
        )

    def watch(self, pgid: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{pgid}\n")
        self.proc.stdin.flush()

    def __enter__(self) -> "_Watchdog":
        return self

    def __exit__(self, *exc: Any) -> None:
        """The group is ended: let the watchdog go without killing anything."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("done")
            self.proc.stdin.close()
        except OSError:  # it is gone already
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _end_process_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the trial's whole process group, then SIGKILL what is left after a grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + _KILL_GRACE_S
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader, so the group check below sees only live members
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        pass
    if proc.stdout is not None:
        proc.stdout.close()
