"""Chaos: an experiment under sustained, mixed faults loses nothing (the Katib paper's Fig. 7).

George et al. 2020 (arXiv 2006.02085) ran 150 trials while pods were killed: Katib lost 0,
Optuna and NNI about 11 each. Here, on the simulated autoscaling cluster (real Ray head and
autoscaler, fake worker nodes of 1 vCPU, up to P of them): 150 trials, P = 6, random search with
a fixed seed, ``trial.retries`` set, trials that are the synthetic learning curve with a
checkpoint every step and log what they reported to their own files
(``raytune_k8s.trials.witness``). The driver runs as ``raytune-k8s run --address`` in its own
process, as in a RayJob. A seeded chaos loop, logged fault by fault:

* kills a random worker node (its whole process tree, SIGKILL) every ~``--node-every`` s;
* kills a random running trial's process (SIGKILL) every ~``--trial-every`` s;
* kills the searcher actor twice (at 25% and 75% of the trials done);
* SIGKILLs the driver once, at 50%, and runs ``raytune-k8s resume`` as a restarted RayJob would.

Then the trials' logs are compared with the experiment directory: ``lost_results`` (a step a
trial reported that is missing from its ``result.json``), ``duplicate_results`` (a step there
twice), ``completed_trials_rerun`` (a trial started again after its function returned). The
same experiment without faults, on a fresh cluster, gives the wall-time baseline.

Head loss (issue 15): a shorter experiment whose whole head (driver, GCS, raylets, every worker
node) is killed halfway; a new head starts on the same storage and the same command is
resubmitted with ``--resume-if-exists``, as KubeRay's HTTPMode resubmission would.

Head loss, repeated (issue 25): ``--head-loss-repeats N`` runs the head-loss scenario N times in
a row, each on fresh heads and a fresh experiment, and records per run the final status, the
trials in the summary, lost results, duplicates and finished trials re-run; ``--only head-loss``
skips the other scenarios and keeps their sections of ``chaos.json``/``chaos.md`` as they were.

    python -m benchmarks.chaos             # about 30 min on 2 shared cores
    python -m benchmarks.chaos --only head-loss --head-loss-repeats 20
    python -m benchmarks.chaos --smoke --out /tmp/chaos
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "token")  # before Ray is imported: token auth is on
# Replacement nodes start while the machine is busy (2 shared cores, load average 40-70 in our
# runs): with Ray's default wait for a node's dashboard agent, their raylets aborted ("Timed out
# waiting for file ... ports") and the cluster never got its workers back. A pod has its own CPU.
os.environ.setdefault("RAY_agent_register_timeout_ms", "300000")

import json  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any, Iterator, Sequence  # noqa: E402

import yaml  # noqa: E402

from benchmarks._report import arg_parser, markdown_table, publish, pyplot, text_table  # noqa: E402

NAME = "chaos"
CLI = [sys.executable, "-m", "raytune_k8s"]
#: Katib paper, Fig. 7: trials lost of 150 while pods were killed.
PAPER = {"Katib": 0, "Optuna": 11, "NNI": 11}


def witness_spec(name: str, trials: int, parallel: int, seed: int, steps: int, sleep: float, log_dir: Path) -> dict[str, Any]:
    return {
        "name": name,
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": seed}]},
        "parameters": [{"name": "lr", "parameterType": "double",
                        "feasibleSpace": {"min": "1e-4", "max": "1", "distribution": "logUniform"}}],
        "parallelTrialCount": parallel,
        "maxTrialCount": trials,
        "trial": {"function": "raytune_k8s.trials.witness:witness", "resources": {"cpu": 1}, "retries": 20,
                  "fixedParameters": {"steps": steps, "sleep": sleep, "log_dir": str(log_dir)}},
    }


def _done(log_dir: Path) -> int:
    from raytune_k8s.trials.witness import read_log

    return sum(any(e["event"] == "done" for e in events) for events in read_log(log_dir).values())


def _running_trial_pids(log_dir: Path) -> list[tuple[str, int]]:
    """(trial id, pid) of trials running now: their log's last event is recent and not ``done``."""
    from raytune_k8s.trials.witness import read_log

    now = time.time()
    return [(tid, events[-1]["pid"]) for tid, events in read_log(log_dir).items()
            if events and events[-1]["event"] != "done" and now - events[-1]["t"] < 3.0]


def _is_ray_worker(pid: int) -> bool:
    import psutil

    try:
        return "ray::" in " ".join(psutil.Process(pid).cmdline()) or psutil.Process(pid).name().startswith("ray::")
    except psutil.Error:
        return False


def _searcher_pid(cluster: Any) -> int | None:
    from ray.util.state import list_actors

    actors = list_actors(address=cluster.address, filters=[("class_name", "=", "SearcherHost"), ("state", "=", "ALIVE")],
                         raise_on_missing_output=False)
    return actors[0].pid if actors else None


class Driver:
    """``raytune-k8s`` as a RayJob runs it: a process of its own, output to a file."""

    def __init__(self, args: Sequence[str], cluster: Any, log: Path):
        self.log = log
        with open(log, "a") as out:
            out.write(f"$ raytune-k8s {' '.join(args)}\n")
            out.flush()
            self.proc = subprocess.Popen([*CLI, *args], env=cluster.client_env(), stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(60)


class Chaos:
    """The seeded fault loop; every fault goes into ``faults`` (time, kind, target)."""

    def __init__(self, cluster: Any, log_dir: Path, trials: int, seed: int, node_every: float, trial_every: float,
                 on_driver_kill: Any, t0: float):
        self.cluster, self.log_dir, self.trials = cluster, log_dir, trials
        self.rng = random.Random(seed)
        self.node_every, self.trial_every = node_every, trial_every
        self.on_driver_kill = on_driver_kill
        self.t0 = t0
        self.faults: list[dict[str, Any]] = []
        self.searcher_kills_at = [round(trials * 0.25), round(trials * 0.75)]
        self.driver_kill_at = round(trials * 0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _next(self, every: float) -> float:
        return time.monotonic() + every * self.rng.uniform(0.75, 1.25)

    def _record(self, kind: str, target: str, **detail: Any) -> None:
        fault = {"t_s": round(time.monotonic() - self.t0, 2), "kind": kind, "target": target, **detail}
        self.faults.append(fault)
        print(f"chaos: {json.dumps(fault)}", flush=True)

    def _run(self) -> None:
        next_node, next_trial = self._next(self.node_every), self._next(self.trial_every)
        while not self._stop.wait(0.25):
            try:
                self._tick(next_node, next_trial)
            except Exception as exc:  # a target that vanished meanwhile: try again next time
                print(f"chaos: skipped ({type(exc).__name__}: {exc})", flush=True)
            now = time.monotonic()
            if now >= next_node:
                next_node = self._next(self.node_every)
            if now >= next_trial:
                next_trial = self._next(self.trial_every)

    def _tick(self, next_node: float, next_trial: float) -> None:
        import psutil

        now, done = time.monotonic(), _done(self.log_dir)
        if self.driver_kill_at is not None and done >= self.driver_kill_at:
            self.driver_kill_at = None
            self._record("driver", "raytune-k8s run (SIGKILL)", trials_done=done)
            self.on_driver_kill()
        if self.searcher_kills_at and done >= self.searcher_kills_at[0]:
            pid = _searcher_pid(self.cluster)
            if pid is not None:
                self.searcher_kills_at.pop(0)
                psutil.Process(pid).kill()
                self._record("searcher_actor", f"pid {pid}", trials_done=done)
        if now >= next_node:
            nodes = sorted(w["node_id"] for w in self.cluster.worker_nodes())
            self.rng.shuffle(nodes)
            for node in nodes:  # the GCS lists a node killed a moment ago as alive for a while: skip it
                try:
                    self.cluster.kill_worker(node)
                except RuntimeError:
                    continue
                self._record("worker_node", node[-8:], trials_done=done)
                break
        if now >= next_trial:
            running = sorted(_running_trial_pids(self.log_dir))
            if running:
                trial_id, pid = self.rng.choice(running)
                if _is_ray_worker(pid):
                    psutil.Process(pid).kill()
                    self._record("trial_process", trial_id, pid=pid, trials_done=done)

    def __enter__(self) -> "Chaos":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _start_cluster(parallel: int, attempts: int = 6) -> Any:
    """A fresh simulated cluster; on this busy machine a head sometimes misses Ray's own 30-s
    start-up wait, so it is tried again."""
    from raytune_k8s.sim.cluster import AutoscalingLocalCluster

    for attempt in range(attempts):
        try:
            return AutoscalingLocalCluster(worker_cpus=1, max_workers=parallel, idle_timeout_s=60).start(timeout=300)
        except (RuntimeError, TimeoutError) as exc:
            if attempt == attempts - 1:
                raise
            print(f"cluster start failed, again: {str(exc).splitlines()[0]}", flush=True)
    raise AssertionError("unreachable")


@contextmanager
def _cluster(parallel: int) -> Iterator[Any]:
    cluster = _start_cluster(parallel)
    try:
        yield cluster
    finally:
        cluster.stop()


def _outcome(experiment_dir: Path, log_dir: Path) -> dict[str, Any]:
    from raytune_k8s.trials.witness import audit

    summary_path = experiment_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    found = audit(log_dir, experiment_dir)
    return {"status": summary.get("status"), "reason": summary.get("reason"), "trials_completed": summary.get("trials"),
            "trials_total": summary.get("trials_total"), "trials_failed": summary.get("failed"), **found}


def run_plain(spec: dict[str, Any], work: Path, parallel: int) -> dict[str, Any]:
    """The experiment without faults, on a fresh cluster: the wall-time baseline."""
    log_dir, storage = Path(spec["trial"]["fixedParameters"]["log_dir"]), work / "storage"
    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    with _cluster(parallel) as cluster:
        start = time.monotonic()
        driver = Driver(["run", str(spec_path), "--address", cluster.address, "--storage-path", str(storage), "--no-report"],
                        cluster, work / "driver.log")
        code = driver.proc.wait()
        wall = time.monotonic() - start
    return {"exit_code": code, "wall_s": round(wall, 1), **_outcome(storage / spec["name"], log_dir)}


def run_chaos(spec: dict[str, Any], work: Path, parallel: int, seed: int, node_every: float, trial_every: float) -> dict[str, Any]:
    log_dir, storage = Path(spec["trial"]["fixedParameters"]["log_dir"]), work / "storage"
    experiment_dir = storage / spec["name"]
    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    with _cluster(parallel) as cluster:
        start = time.monotonic()
        drivers = [Driver(["run", str(spec_path), "--address", cluster.address, "--storage-path", str(storage), "--no-report"],
                          cluster, work / "driver.log")]

        restarting = threading.Lock()

        def restart_as_rayjob() -> None:  # the driver dies; the RayJob's retry runs `resume`
            with restarting:
                drivers[-1].kill()
                drivers.append(Driver(["resume", str(experiment_dir), "--address", cluster.address], cluster, work / "driver.log"))

        with Chaos(cluster, log_dir, spec["maxTrialCount"], seed, node_every, trial_every, restart_as_rayjob, start) as chaos:
            while True:
                driver = drivers[-1]
                code = driver.proc.wait()
                with restarting:
                    if driver is drivers[-1]:  # not the one the chaos loop killed and replaced
                        break
        wall = time.monotonic() - start
    kinds: dict[str, int] = {}
    for fault in chaos.faults:
        kinds[fault["kind"]] = kinds.get(fault["kind"], 0) + 1
    return {"exit_code": code, "wall_s": round(wall, 1), "faults_by_kind": kinds, "faults": chaos.faults,
            "drivers": len(drivers), **_outcome(experiment_dir, log_dir)}


def run_head_loss(spec: dict[str, Any], work: Path, parallel: int) -> dict[str, Any]:
    """Kill the whole head (driver included) halfway, start a new head on the same storage and
    resubmit the same command with --resume-if-exists."""
    from raytune_k8s.sim.cluster import _cluster_processes, _kill_trees

    log_dir, storage = Path(spec["trial"]["fixedParameters"]["log_dir"]), work / "storage"
    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    command = ["run", str(spec_path), "--storage-path", str(storage), "--no-report", "--resume-if-exists"]
    start = time.monotonic()
    first = _start_cluster(parallel)
    try:
        driver = Driver([*command, "--address", first.address], first, work / "driver.log")
        while _done(log_dir) < spec["maxTrialCount"] // 2:
            if driver.proc.poll() is not None:
                raise RuntimeError(f"the driver ended before the head was killed: {(work / 'driver.log').read_text()[-2000:]}")
            time.sleep(0.2)
        done_at_loss = _done(log_dir)
        lost_at = time.monotonic()
        driver.kill()
        _kill_trees([p for p in _cluster_processes(first.temp_dir)], graceful_s=0)  # GCS, raylets, workers: all at once
        first._proc.wait(30)
    finally:
        first.stop()
    with _cluster(parallel) as second:
        back_at = time.monotonic()
        code = Driver([*command, "--address", second.address], second, work / "driver.log").proc.wait()
        wall = time.monotonic() - start
    return {"exit_code": code, "wall_s": round(wall, 1), "trials_done_when_head_lost": done_at_loss,
            "new_head_up_s": round(back_at - lost_at, 1), **_outcome(storage / spec["name"], log_dir)}


def head_loss_clean(run: dict[str, Any], trials: int) -> bool:
    """Succeeded with every trial in the summary, nothing lost, duplicated or re-run."""
    return (run.get("status") == "Succeeded" and run.get("trials_completed") == trials and run.get("trials_total") == trials
            and run.get("lost_results") == 0 and run.get("duplicate_results") == 0 and run.get("completed_trials_rerun") == 0)


def run_head_loss_repeats(spec: dict[str, Any], work: Path, parallel: int, repeats: int,
                          keep_failed: Path | None = None) -> dict[str, Any]:
    """The head-loss scenario ``repeats`` times in a row, each with fresh heads, storage and logs."""
    import shutil

    runs = []
    for i in range(1, repeats + 1):
        run_work = work / f"run{i:02d}"
        (run_work / "logs").mkdir(parents=True)
        run_spec = {**spec, "trial": {**spec["trial"], "fixedParameters": {**spec["trial"]["fixedParameters"],
                                                                          "log_dir": str(run_work / "logs")}}}
        try:
            result = run_head_loss(run_spec, run_work, parallel)
        except Exception as exc:  # recorded as a run that did not finish, not hidden
            result = {"status": None, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        result = {"run": i, **result, "clean": head_loss_clean(result, spec["maxTrialCount"])}
        if not result["clean"]:
            log = run_work / "driver.log"
            result["driver_log_tail"] = log.read_text()[-6000:] if log.exists() else ""
            if keep_failed is not None:
                shutil.copytree(run_work, keep_failed / run_work.name, dirs_exist_ok=True)
        runs.append(result)
        print(f"head loss {i}/{repeats}: " + json.dumps({k: result.get(k) for k in (
            "status", "reason", "trials_completed", "trials_total", "lost_results", "duplicate_results",
            "completed_trials_rerun", "trials_done_when_head_lost", "wall_s", "clean", "error")}), flush=True)
        shutil.rmtree(run_work, ignore_errors=True)
    clean = sum(r["clean"] for r in runs)
    return {"repeats": repeats, "trials": spec["maxTrialCount"], "parallel": parallel, "clean": clean,
            "all_clean": clean == repeats, "runs": runs}


def _head_loss_repeats_markdown(r: dict[str, Any]) -> list[str]:
    rows = [[x["run"], x.get("status"), x.get("reason"), f"{x.get('trials_completed')}/{x.get('trials_total')}",
             x.get("lost_results"), x.get("duplicate_results"), x.get("completed_trials_rerun"),
             x.get("trials_done_when_head_lost"), x.get("wall_s"), "yes" if x["clean"] else "**no**"] for x in r["runs"]]
    env = r.get("environment", {})
    return [
        "## Head loss, repeated",
        "",
        f"The head-loss scenario {r['repeats']} times in a row ({r['trials']} trials at P = {r['parallel']} each; driver "
        "and whole head SIGKILLed once half the trials were done, a new head, `run --resume-if-exists`), each run on "
        f"fresh heads and a fresh experiment directory. Clean (Succeeded, all {r['trials']} trials in the summary, 0 lost, "
        f"0 duplicates, 0 finished trials re-run): **{r['clean']} of {r['repeats']}**. Load average when written: "
        f"{env.get('loadavg_1_5_15m')}; command: `{r.get('command')}`.",
        "",
        markdown_table(["run", "status", "reason", "trials in summary", "lost results", "duplicates",
                        "finished trials re-run", "done at head loss", "wall s", "clean"], rows),
        *[f"\nRun {x['run']} did not finish: {x['error'][:400]}" for x in r["runs"] if x.get("error")],
        *([f"\n{r['note']}"] if r.get("note") else []),
    ]


def _markdown(data: dict[str, Any]) -> str:
    repeats = _head_loss_repeats_markdown(data["head_loss_repeats"]) if data.get("head_loss_repeats") else []
    c, p, h = data["chaos"], data["fault_free"], data["head_loss"]
    rows = [
        ["raytune_k8s (this run)", c["trials_completed"], c["trials_failed"], c["lost_results"], c["duplicate_results"],
         c["completed_trials_rerun"], sum(c["faults_by_kind"].values()), c["wall_s"], p["wall_s"], data["wall_ratio"]],
        *[[f"{name} (Katib paper, Fig. 7)", 150 - lost, "-", f"{lost} trials", "-", "-", "pods killed", "-", "-", "-"]
          for name, lost in PAPER.items()],
    ]
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(c["faults_by_kind"].items()))
    return "\n".join([
        f"# Chaos: {data['trials']} trials under mixed faults",
        "",
        f"Simulated autoscaling cluster (1-vCPU fake worker nodes, up to {data['parallel']}), {data['trials']} trials at "
        f"P = {data['parallel']}, random search (seed {data['seed']}), witness trials ({data['steps']} steps of "
        f"{data['sleep_s']} s, a checkpoint each). Faults (seed {data['seed']}): {kinds}. The driver was SIGKILLed at "
        "50% and `raytune-k8s resume` continued it. Measured on a 2-core machine (load average "
        f"{data.get('chaos_environment', data['environment'])['loadavg_1_5_15m']} over 1/5/15 min when written, this benchmark's own load included; "
        "other work on the machine makes the wall times noisy).",
        "",
        markdown_table(["run", "completed", "failed", "lost results", "duplicate results", "completed trials re-run",
                        "faults", "wall s", "fault-free wall s", "ratio"], rows),
        "",
        f"Goal: {data['trials']} completed, 0 failed, 0 lost, 0 re-run, wall <= 1.5x fault-free: "
        f"**{'met' if data['goal_met'] else 'not met'}** ({'; '.join(data['goal_misses']) or 'every part'}).",
        f"Reports logged by the trials: {c['reports_logged']}; results in the experiment directory: {c['results_recorded']}.",
        "",
        "## Head loss",
        "",
        f"{h['trials_total']} trials at P = {data['parallel']}: after {h['trials_done_when_head_lost']} were done, the whole "
        "head (driver, GCS, raylets, every worker node) was SIGKILLed; a new head started on the same storage "
        f"{h['new_head_up_s']} s later and `raytune-k8s run --resume-if-exists` was submitted again. Result: "
        f"{h['status']}, {h['trials_completed']} completed, {h['trials_failed']} failed, {h['lost_results']} lost results, "
        f"{h['duplicate_results']} duplicate results, {h['completed_trials_rerun']} completed trials re-run "
        f"({h['wall_s']} s in all).",
        "",
        *repeats,
        *([""] if repeats else []),
        "Fault log (seconds since the start):",
        "",
        markdown_table(["t s", "kind", "target", "trials done"],
                       [[f["t_s"], f["kind"], f["target"], f.get("trials_done")] for f in c["faults"]]),
    ])


def _figure(data: dict[str, Any]) -> Any:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    colors = {"worker_node": "tab:red", "trial_process": "tab:orange", "searcher_actor": "tab:purple", "driver": "black"}
    for i, kind in enumerate(colors):
        ts = [f["t_s"] for f in data["chaos"]["faults"] if f["kind"] == kind]
        ax.scatter(ts, [i] * len(ts), color=colors[kind], label=kind, marker="|", s=300)
    ax.set_yticks(range(len(colors)), list(colors))
    ax.set_xlabel("seconds since the experiment started")
    ax.set_title(f"faults injected: {data['chaos']['trials_completed']} of {data['trials']} trials completed, "
                 f"{data['chaos']['lost_results']} results lost")
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--parallel", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--sleep", type=float, default=0.3, help="seconds per step")
    parser.add_argument("--node-every", type=float, default=20.0)
    parser.add_argument("--trial-every", type=float, default=15.0)
    parser.add_argument("--head-loss-trials", type=int, default=18)
    parser.add_argument("--head-loss-repeats", type=int, default=0,
                        help="run the head-loss scenario this many times in a row and tabulate each run")
    parser.add_argument("--only", choices=["head-loss"], default=None,
                        help="run only the head-loss repeats; the other sections of chaos.json/.md are kept")
    parser.add_argument("--keep-failed", type=Path, default=None, help="copy the work folder of a run that is not clean here")
    args = parser.parse_args(argv)
    if args.only == "head-loss":
        return _main_head_loss_only(args, argv)
    if args.smoke:
        args.trials, args.parallel, args.node_every, args.trial_every, args.head_loss_trials = 12, 3, 15.0, 10.0, 6
    started = time.monotonic()
    data: dict[str, Any] = {"smoke": args.smoke, "trials": args.trials, "parallel": args.parallel, "seed": args.seed,
                            "steps": args.steps, "sleep_s": args.sleep, "node_every_s": args.node_every,
                            "trial_every_s": args.trial_every, "paper_lost_of_150": PAPER}
    with tempfile.TemporaryDirectory(prefix="rtk8s-chaos-") as tmp:
        work = Path(tmp)
        for name in ("fault_free", "chaos", "head_loss"):
            (work / name / "logs").mkdir(parents=True)
        trials = {"head_loss": args.head_loss_trials}.get
        specs = {name: witness_spec(f"chaos-{name.replace('_', '-')}", trials(name, args.trials), args.parallel, args.seed,
                                    args.steps, args.sleep, work / name / "logs") for name in ("fault_free", "chaos", "head_loss")}
        data["fault_free"] = run_plain(specs["fault_free"], work / "fault_free", args.parallel)
        print(f"fault-free: {json.dumps({k: v for k, v in data['fault_free'].items() if not isinstance(v, list)})}", flush=True)
        data["chaos"] = run_chaos(specs["chaos"], work / "chaos", args.parallel, args.seed, args.node_every, args.trial_every)
        data["head_loss"] = run_head_loss(specs["head_loss"], work / "head_loss", args.parallel)
        if args.head_loss_repeats:
            data["head_loss_repeats"] = run_head_loss_repeats(specs["head_loss"], work / "head_loss_repeats", args.parallel,
                                                              args.head_loss_repeats, args.keep_failed)
            data["head_loss_repeats"]["command"] = "python -m benchmarks.chaos " + " ".join(argv if argv is not None else sys.argv[1:])
        data["driver_logs_tail"] = {name: (work / name / "driver.log").read_text()[-3000:] for name in specs}
    c = data["chaos"]
    data["wall_ratio"] = round(c["wall_s"] / data["fault_free"]["wall_s"], 2)
    misses = [m for m, bad in [
        (f"{c['trials_completed']} completed", c["trials_completed"] != args.trials),
        (f"{c['trials_failed']} failed", c["trials_failed"] != 0),
        (f"{c['lost_results']} lost", c["lost_results"] != 0),
        (f"{c['completed_trials_rerun']} re-run", c["completed_trials_rerun"] != 0),
        (f"wall {data['wall_ratio']}x", data["wall_ratio"] > 1.5)] if bad]
    data["goal_met"], data["goal_misses"] = not misses, misses
    rows = [[name, r["status"], r["trials_completed"], r["trials_failed"], r["lost_results"], r["duplicate_results"],
             r["completed_trials_rerun"], r["wall_s"]] for name, r in (("fault-free", data["fault_free"]), ("chaos", c),
                                                                      ("head loss", data["head_loss"]))]
    text = text_table(["run", "status", "completed", "failed", "lost", "duplicates", "re-run", "wall s"], rows)
    text += f"\nfaults: {c['faults_by_kind']}; wall ratio {data['wall_ratio']}; goal {'met' if not misses else 'missed: ' + ', '.join(misses)}"
    publish(args.out, NAME, data, started, argv, ["ray"], text, _markdown, _figure)
    return 0


def _main_head_loss_only(args: Any, argv: Sequence[str] | None) -> int:
    """``--only head-loss``: the repeats alone, written into the existing results (whose other
    sections, and the environment they were measured in, are kept)."""
    from benchmarks._report import environment

    started = time.monotonic()
    previous = Path(args.out) / f"{NAME}.json"
    if not previous.exists():
        raise SystemExit(f"--only head-loss adds to {previous}, which does not exist: run the full benchmark first")
    data = json.loads(previous.read_text())
    data.setdefault("chaos_environment", data.get("environment"))
    data.setdefault("chaos_runtime_s", data.get("runtime_s"))
    repeats = args.head_loss_repeats or 1
    with tempfile.TemporaryDirectory(prefix="rtk8s-chaos-") as tmp:
        work = Path(tmp)
        spec = witness_spec("chaos-head-loss", args.head_loss_trials, args.parallel, args.seed, args.steps, args.sleep,
                            work / "logs")
        result = run_head_loss_repeats(spec, work, args.parallel, repeats, args.keep_failed)
    command = "python -m benchmarks.chaos " + " ".join(argv if argv is not None else sys.argv[1:])
    result.update(command=command, runtime_s=round(time.monotonic() - started, 1),
                  environment=environment(f"benchmarks.{NAME}", list(argv if argv is not None else sys.argv[1:]), ["ray"]))
    data["head_loss_repeats"] = result
    rows = [[x["run"], x.get("status"), x.get("trials_completed"), x.get("lost_results"), x.get("duplicate_results"),
             x.get("completed_trials_rerun"), x.get("wall_s"), x["clean"]] for x in result["runs"]]
    text = text_table(["run", "status", "trials", "lost", "duplicates", "re-run", "wall s", "clean"], rows)
    text += f"\nclean: {result['clean']} of {repeats}"
    publish(args.out, NAME, data, started, argv, ["ray"], text, _markdown, _figure)
    return 0 if result["all_clean"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
