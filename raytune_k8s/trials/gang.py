"""A distributed trial: its replicas run as a gang of Ray actors, one per bundle of the trial's
placement group (Tune reserves the whole group before the trial starts, so every replica starts
or none does), each running its pod's init containers and main container as a process.

The trial's function (holding no resources of the gang: the group's head bundle is empty) picks
each replica's endpoint, records how long the gang took to start (``replicas/gang.json``), gives each the environment its operator would (:mod:`.operator_env`),
starts them all, and then follows them: every replica's output goes to its own log file in the
trial's directory; the primary replicas' metrics (each read by its own collector, on its own
node, at its own per-replica paths) are reported to Tune in the order they arrive, so the
trial's observation is every primary's values together and the metric strategy (min, max,
latest) runs over all of them, as over the observation logs Katib's collectors push per pod.

The trial succeeds as the job would (:meth:`~raytune_k8s.spec.trial_kinds.Gang.succeeded`); it
fails as soon as any replica exits non-zero or is lost (its actor or node gone), naming it with
its last lines. However the trial ends, every replica is ended: the actors are stopped (their
process groups get SIGTERM, then SIGKILL) and killed; a trial actor killed outright takes its
replica actors with it (Ray ends the actors a dead owner created), and each replica's watchdog
ends its process group.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..spec.trial_kinds import Replica
from .command import (TAIL_LINES, CommandTrial, MetricsUnavailable, TrialTimeout, _Runner, argv_of, free_port, node_ip,
                      program_argv, render, trial_values)
from .operator_env import Endpoint, replica_env

_POLL_S = 0.2
_STOP_WAIT_S = 10.0


class ReplicaFailed(RuntimeError):
    """A replica exited non-zero or was lost: the trial failed (Katib: the job's Failed)."""


@dataclass(frozen=True)
class ReplicaLaunch:
    """What a replica actor runs."""

    trial: CommandTrial
    replica: Replica
    values: Mapping[str, Any]
    operator_env: Mapping[str, str]
    #: the replica's own folder (collector copies, emptyDir volumes)
    replica_dir: str
    pod_name: str
    trial_name: str


@dataclass
class ReplicaState:
    """What a replica did since the last poll."""

    lines: list[str] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    #: exit status once its main process ended (None: running)
    status: int | None = None
    error: str | None = None


class ReplicaProcess:
    """A Ray actor running one replica's processes (see :func:`run_gang`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = ReplicaState()
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._runner: _Runner | None = None

    def endpoint(self) -> Endpoint:
        return Endpoint(node_ip(), free_port())

    def start(self, launch: ReplicaLaunch) -> None:
        threading.Thread(target=self._run, args=(launch,), daemon=True, name="replica").start()

    def poll(self) -> ReplicaState:
        with self._lock:
            state, self._state = self._state, ReplicaState(status=self._state.status, error=self._state.error)
        return state

    def stop(self) -> None:
        """End the replica's processes (SIGTERM, then SIGKILL after a grace period)."""
        proc = getattr(self._runner, "proc", None)
        if proc is not None and proc.poll() is None:
            from .command import _end_process_group

            _end_process_group(proc)

    def _line(self, line: str) -> None:
        with self._lock:
            self._state.lines.append(line.rstrip("\n"))
        self._tail.append(line.rstrip()[:500])

    def _observe(self, metrics: dict[str, Any]) -> None:
        with self._lock:
            self._state.observations.append(dict(metrics))

    def _run(self, launch: ReplicaLaunch) -> None:
        try:
            status = self._run_processes(launch)
        except Exception as exc:  # reported through poll: the trial's function names the replica
            with self._lock:
                self._state.error, self._state.status = f"{type(exc).__name__}: {exc}", -1
            return
        with self._lock:
            self._state.status = status

    def _run_processes(self, launch: ReplicaLaunch) -> int:
        from ..collectors import create_collector, trial_env
        from ..collectors.base import Collector
        from .pod_setup import PodIdentity, prepare_pod, run_init_containers

        trial, replica = launch.trial, launch.replica
        base = Path(launch.replica_dir)
        base.mkdir(parents=True, exist_ok=True)
        collector = (create_collector(trial.collector, list(trial.metric_names), base, trainer_status=trial.kind == "TrainJob")
                     if replica.primary
                     else Collector([]))
        collector.prepare()
        identity = PodIdentity(launch.pod_name, trial.namespace or "default", node_ip())
        prepared = prepare_pod(replica.pod, base, identity, trial.resolved_sources)

        def local(text: str) -> str:
            return prepared.local(collector.rewrite(render(text, launch.values)))

        run_init_containers(prepared, local, self._line, os.environ)
        main = replica.pod.main
        argv = program_argv([local(a) for a in argv_of(main.argv)], main.image, main.has_command)
        env = trial_env({**os.environ, **{k: local(v) for k, v in main.env.items()}, **prepared.env_of(main),
                         **launch.operator_env}, collector.env())
        env.update(KATIB_TRIAL_NAME=launch.trial_name, RAYTUNE_K8S_NAMESPACE=trial.namespace or "default")
        cwd = local(main.working_dir) if main.working_dir else str(base)
        self._runner = runner = _Runner(trial, collector, self._observe, echo=self._line, require_metrics=False)
        try:
            runner.run(argv, env, cwd)
        except RuntimeError:
            if not runner.exit_status:  # not the process's own failure (its status says that)
                raise
        return runner.exit_status if runner.exit_status is not None else -1


def run_gang(trial: CommandTrial, config: Mapping[str, Any], trial_dir: Path, trial_name: str,
             report: Callable[[dict], None]) -> int:
    """Run a distributed trial's replicas to the job's end; returns how many reports it made."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    gang = trial.gang
    assert gang is not None
    group = ray.util.get_current_placement_group()
    if group is None:
        raise RuntimeError("a distributed trial runs in a placement group of one bundle per replica")
    actor_class = ray.remote(ReplicaProcess)
    actors: list[Any] = []
    for i, bundle in enumerate(gang.bundles()):
        actors.append(actor_class.options(
            num_cpus=bundle.get("CPU", 0), num_gpus=bundle.get("GPU", 0), memory=bundle.get("memory"),
            scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i),
            name=None, max_restarts=0,
        ).remote())
    logs = trial_dir / "replicas"
    logs.mkdir(parents=True, exist_ok=True)
    files = {r.rank: open(logs / f"{r.name}.log", "a", buffering=1) for r in gang.replicas}
    try:
        started = time.monotonic()
        endpoints = ray.get([a.endpoint.remote() for a in actors])
        values = trial_values(trial, config, trial_name)
        ray.get([actor.start.remote(ReplicaLaunch(
            trial, r, values, replica_env(gang, r, endpoints), str(trial_dir / "replicas" / r.name), f"{trial_name}-{r.name}",
            trial_name))
            for r, actor in zip(gang.replicas, actors)])
        ready_s = time.monotonic() - started
        print(f"[raytune-k8s] gang of {len(actors)} replicas running after {ready_s:.2f} s: "
              + ", ".join(f"{r.name}@{endpoints[r.rank]}" for r in gang.replicas), flush=True)
        (logs / "gang.json").write_text(json.dumps({
            "started_in_s": round(ready_s, 3), "framework": gang.framework,
            "replicas": [{"name": r.name, "endpoint": str(endpoints[r.rank]), "primary": r.primary} for r in gang.replicas],
        }, indent=1))
        return _follow(trial, actors, files, report, started)
    finally:
        for f in files.values():
            f.close()
        _end(actors)


def _follow(trial: CommandTrial, actors: list[Any], files: Mapping[int, Any], report: Callable[[dict], None],
            started: float) -> int:
    import ray
    from ray.exceptions import RayActorError

    gang = trial.gang
    assert gang is not None
    tails: dict[int, deque[str]] = {r.rank: deque(maxlen=TAIL_LINES) for r in gang.replicas}
    exited_ok: set[int] = set()
    reports = 0
    objective = trial.metric_names[0]
    while True:
        for r, actor in zip(gang.replicas, actors):
            try:
                state: ReplicaState = ray.get(actor.poll.remote())
            except RayActorError as exc:
                raise ReplicaFailed(f"replica {r.name} was lost (its process or node ended: {type(exc).__name__}); "
                                    "last output: " + " | ".join(tails[r.rank])) from None
            for line in state.lines:
                files[r.rank].write(line + "\n")
                tails[r.rank].append(line[:500])
                if r.primary:
                    print(f"[{r.name}] {line}", flush=True)
            for metrics in state.observations:
                if objective in metrics:
                    report(dict(metrics))
                    reports += 1
            if state.status is not None and r.rank not in exited_ok:
                if state.status != 0:
                    reason = state.error or f"exited with status {state.status}"
                    raise ReplicaFailed(f"replica {r.name} {reason}; last output: " + " | ".join(tails[r.rank]))
                exited_ok.add(r.rank)
        if gang.succeeded(exited_ok):
            if not reports:
                raise MetricsUnavailable(f"MetricsUnavailable: no primary replica reported '{objective}' "
                                         f"({', '.join(r.name for r in gang.primaries)})")
            return reports
        if trial.timeout_s is not None and time.monotonic() - started > trial.timeout_s:
            raise TrialTimeout(f"Timeout: the trial ran longer than {trial.timeout_s:g} s")
        time.sleep(_POLL_S)


def _end(actors: list[Any]) -> None:
    """Stop every replica's processes, then the actors themselves."""
    import ray

    try:
        ray.wait([a.stop.remote() for a in actors], num_returns=len(actors), timeout=_STOP_WAIT_S)
    finally:
        for actor in actors:
            ray.kill(actor)
