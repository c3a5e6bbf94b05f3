"""The Katib paper's multi-tenancy experiment (George et al. 2020, arXiv 2006.02085, Fig. 5).

One 12-trial random-search experiment (examples/mnist-mxnet-random.yaml, 2 vCPU per trial) for
two tenants: user1 with an 18 vCPU quota, user2 with 6 vCPU. Each tenant gets its own cluster
sized by its quota.

``--mode replay`` (default): the paper's trial durations, read off its Fig. 5 and taken in the
order the trials started there, compressed by ``--time-scale``, run as trials through
raytune_k8s (the real Tune scheduler, the quota cap and the real Ray autoscaler) on each
tenant's simulated autoscaling cluster (fake multi-node provider, 2-CPU workers, starting at 0).
Per tenant: trials at once, measured wall time (and rescaled to paper minutes), the ideal
makespan of those durations on those slots (list scheduling in start order, zero overhead),
efficiency = ideal / measured, and a Gantt chart of both tenants like Fig. 5. The two tenants
run at the same time, each in its own process with its own cluster (as two namespaces would).
``--pod-start-s`` adds a fixed start time to every worker pod. ``--head-in-quota`` takes the
head pod (``HEAD_VCPU``) out of each tenant's one quota, as Katib's controller and suggestion
pods count against the tenant's namespace: user2 then has 2 trial slots, like Katib's run.
Results go to ``quota.json`` for time scale 1.0 without pod start time, else to
``quota_<variant>.json``; ``quota.md`` gathers every variant found in the output folder.

``--mode real``: real MXNet trainings with the quotas scaled to this machine's cores at the same
1:3 ratio (trial CPU scaled alike), on one local Ray with that many CPUs. On a 2-core machine the
trials share two cores whatever the quota, so the comparison is CPU-bound there; it says so.

    python -m benchmarks.quota --time-scale 1.0      # replay in the paper's real time (about 8 minutes)
    python -m benchmarks.quota                       # replay, --time-scale 0.25 (about 2 minutes)
    python -m benchmarks.quota --time-scale 1.0 --pod-start-s 15
    python -m benchmarks.quota --head-in-quota
    python -m benchmarks.quota --mode real
    python -m benchmarks.quota --smoke --out /tmp/q
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "token")  # before Ray is imported: token auth is on

import heapq  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

import yaml  # noqa: E402

from benchmarks._report import arg_parser, environment, markdown_table, pyplot, text_table, write_outputs  # noqa: E402

NAME = "quota"
REPO = Path(__file__).resolve().parents[1]
TRIAL_VCPU = 2
QUOTAS = {"user1": 18, "user2": 6}
#: The head pod's vCPU (cluster/base/raycluster.yaml requests 1 and limits 2): with --head-in-quota
#: it is taken from the tenant's quota.
HEAD_VCPU = 2

# Fig. 5, lane by lane (minutes): user1 ran 8 lanes, user2 2 lanes.
PAPER_LANES = {
    "user1": [[1.8, 2.4], [2.1], [2.2], [1.8, 2.3], [2.1, 1.6], [2.4], [2.1], [1.7, 2.6]],
    "user2": [[1.6, 2.1, 1.6, 1.6, 1.9, 1.8], [1.4, 2.2, 1.9, 1.5, 1.7, 1.6]],
}
PAPER = {"user1": {"parallel": 8, "wall_min": 4.3}, "user2": {"parallel": 2, "wall_min": 10.6}}


def start_order(lanes: list[list[float]]) -> list[float]:
    """The trials' durations in the order they started in the paper's run."""
    starts = []
    for lane_no, lane in enumerate(lanes):
        t = 0.0
        for d in lane:
            starts.append((t, lane_no, d))
            t += d
    return [d for _, _, d in sorted(starts)]


def ideal_makespan(durations: Sequence[float], slots: int, ready_at: Sequence[float] = ()) -> float:
    """List scheduling in order on ``slots`` slots with zero overhead; slot k is free from
    ``ready_at[k]`` (default 0: every worker there from the start)."""
    ready = list(ready_at)[:slots]
    free = sorted(ready + [0.0] * (slots - len(ready)))  # a sorted list is a heap
    end = 0.0
    for d in durations:
        t = heapq.heappop(free)
        heapq.heappush(free, t + d)
        end = max(end, t + d)
    return end


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def lanes_of(intervals: Sequence[tuple[float, float]]) -> list[int]:
    """Assign each interval (sorted by start) to the first lane free at its start."""
    lane_free: list[float] = []
    out = []
    for s, e in intervals:
        for i, free in enumerate(lane_free):
            if free <= s + 1e-6:
                lane_free[i] = e
                out.append(i)
                break
        else:
            lane_free.append(e)
            out.append(len(lane_free) - 1)
    return out


class WorkerWatch:
    """Polls a simulated cluster's worker count on a thread: when all were first up, when 0."""

    def __init__(self, cluster: Any, target: int, poll_s: float = 0.25):
        import threading

        self.cluster, self.target, self.poll_s = cluster, target, poll_s
        self.t0 = time.monotonic()
        self.all_up_s: float | None = None
        self.up_at: list[float] = []  # up_at[k]: seconds until k + 1 workers were first alive
        self.max_workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            count = self.cluster.worker_count()
            now = time.monotonic() - self.t0
            self.up_at.extend([now] * (min(count, self.target) - len(self.up_at)))
            self.max_workers = max(self.max_workers, count)
            if self.all_up_s is None and count >= self.target:
                self.all_up_s = time.monotonic() - self.t0
            time.sleep(self.poll_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def replay_spec(user: str, durations_s: Sequence[float]) -> dict[str, Any]:
    return {
        "name": f"quota-replay-{user}",
        "objective": {"type": "minimize", "objectiveMetricName": "duration_s", "additionalMetricNames": ["t_start", "t_end"]},
        "algorithm": {"algorithmName": "grid"},
        "parameters": [{"name": "trial_index", "parameterType": "int", "feasibleSpace": {"min": 0, "max": len(durations_s) - 1}}],
        # Ask for all 12 at once, as an experiment may; the tenant quota caps it.
        "parallelTrialCount": len(durations_s),
        "maxTrialCount": len(durations_s),
        "trial": {
            "trainable": "replay",
            "fixedParameters": {"durations": ",".join(f"{d:.3f}" for d in durations_s)},
            "resources": {"cpu": TRIAL_VCPU},
        },
    }


def _intervals(summary: dict[str, Any], origin: float) -> list[tuple[float, float]]:
    return sorted((r["metrics"]["t_start"] - origin, r["metrics"]["t_end"] - origin) for r in summary["trial_table"])


def run_replay(user: str, time_scale: float, storage: Path, idle_timeout_s: float, shrink: int = 1,
               pod_start_s: float = 0.0, head_in_quota: bool = False, max_starting: int | None = None) -> dict[str, Any]:
    """One tenant's replay; ``shrink`` > 1 divides its quota and trial count (smoke runs)."""
    import ray

    import raytune_k8s
    from raytune_k8s.sim.cluster import AutoscalingLocalCluster

    minutes = start_order(PAPER_LANES[user])
    durations_s = [m * 60 * time_scale for m in minutes[: len(minutes) // shrink]]
    quota_vcpu = QUOTAS[user] // shrink - (HEAD_VCPU if head_in_quota else 0)
    slots = quota_vcpu // TRIAL_VCPU
    # The cluster may grow further than the quota; the quota is what caps the tenant.
    with AutoscalingLocalCluster(worker_cpus=TRIAL_VCPU, max_workers=slots, idle_timeout_s=idle_timeout_s,
                                 pod_start_s=pod_start_s, max_starting=max_starting) as cluster:
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            origin = time.time()
            watch = WorkerWatch(cluster, slots)
            summary = raytune_k8s.run(replay_spec(user, durations_s), storage_path=storage, quota={"cpu": quota_vcpu})
            watch.stop()
        finally:
            ray.shutdown()
    intervals = _intervals(summary, origin)
    ideal = ideal_makespan(durations_s, slots)
    # The same schedule with each worker free only from when it came up: what is left between
    # that and the last trial's end is ours (scheduling, trial start), not the nodes' start.
    ideal_nodes = ideal_makespan(durations_s, slots, watch.up_at)
    wall = summary["wall_s"]
    return {
        "quota_vcpu": QUOTAS[user] // shrink,
        "trial_quota_vcpu": quota_vcpu,
        "slots": slots,
        "parallel": max_overlap(intervals),
        "trials": summary["trials"],
        "wall_s": wall,
        "wall_min": wall / time_scale / 60,
        "ideal_min": ideal / time_scale / 60,
        "efficiency": ideal / wall,
        "workers_all_up_s": watch.all_up_s,
        "workers_up_at_s": watch.up_at,
        "first_trial_s": intervals[0][0] if intervals else None,
        "ideal_given_workers_min": ideal_nodes / time_scale / 60,
        # Against the last trial's end, timed from the same origin as the workers.
        "efficiency_given_workers": ideal_nodes / max(b for _, b in intervals) if intervals else None,
        "intervals_min": [(a / time_scale / 60, b / time_scale / 60) for a, b in intervals],
    }


def run_real(user: str, cores: int, epochs: int, storage: Path, head_address: str) -> dict[str, Any]:
    import raytune_k8s

    quota = cores * QUOTAS[user] / QUOTAS["user1"]  # user1 gets all cores, user2 a third
    trial_cpu = cores * TRIAL_VCPU / QUOTAS["user1"]
    spec = yaml.safe_load((REPO / "examples" / "mnist-mxnet-random.yaml").read_text())
    spec["name"] = f"quota-real-{user}"
    spec["parallelTrialCount"] = 12
    spec["objective"]["additionalMetricNames"] = ["Train-accuracy"]
    spec["trial"]["resources"] = {"cpu": round(trial_cpu, 4)}
    spec["trial"]["fixedParameters"]["num-epochs"] = epochs
    summary = raytune_k8s.run(spec, storage_path=storage, address=head_address, quota={"cpu": round(quota, 4)})
    slots = int(round(quota / trial_cpu))
    return {
        "quota_vcpu": round(quota, 3),
        "quota_vcpu_paper_scale": QUOTAS[user],
        "trial_vcpu": round(trial_cpu, 3),
        "slots": slots,
        "parallel": slots,
        "trials": summary["trials"],
        "wall_s": summary["wall_s"],
        "wall_min": summary["wall_s"] / 60,
        "ideal_min": None,
        "efficiency": None,
        "best_validation_accuracy": (summary["best"] or {}).get("metrics", {}).get("Validation-accuracy"),
    }


def variant_name(time_scale: float, pod_start_s: float, head_in_quota: bool, smoke: bool) -> str:
    """``quota`` for the headline run (time scale 1.0, no pod start time), else ``quota_<variant>``."""
    if smoke or (time_scale == 1.0 and pod_start_s == 0 and not head_in_quota):
        return NAME
    return f"{NAME}_ts{time_scale:g}_pod{pod_start_s:g}" + ("_headinquota" if head_in_quota else "")


def replay_tenants(args: Any, argv: Sequence[str], shrink: int) -> dict[str, dict[str, Any]]:
    """Both tenants at once, each in a process of its own (one Ray driver per process)."""
    procs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for user in QUOTAS:
            out = Path(tmp) / f"{user}.json"
            cmd = [sys.executable, "-m", "benchmarks.quota", *argv, "--only", user, "--partial-out", str(out)]
            procs[user] = (subprocess.Popen(cmd, cwd=REPO), out)
        for user, (proc, _) in procs.items():
            if proc.wait() != 0:
                raise RuntimeError(f"the {user} replay failed (exit {proc.returncode})")
        return {user: json.loads(out.read_text()) for user, (_, out) in procs.items()}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["replay", "real"], default="replay")
    parser.add_argument("--time-scale", type=float, default=0.25, help="replay: seconds of ours per second of the paper's")
    parser.add_argument("--idle-timeout", type=float, default=10.0, help="replay: worker idle timeout (s)")
    parser.add_argument("--pod-start-s", type=float, default=0.0, help="replay: seconds each worker pod takes to start")
    parser.add_argument("--head-in-quota", action="store_true", help=f"replay: the head pod ({HEAD_VCPU} vCPU) counts against the tenant quota")
    parser.add_argument("--max-starting", type=int, default=2,
                        help="replay: most worker nodes of one cluster starting Ray at once (default 2; 0: no limit, as "
                             "KubeRay creates a scale-up's pods together). With no limit, the two tenants' 12 nodes "
                             "starting together on this 2-core machine had their raylets die in start-up, 70 times in 6 "
                             "minutes, and no trial ran (idle machine, this session); with 2, both tenants finish")
    parser.add_argument("--epochs", type=int, default=3, help="real: epochs per MXNet trial")
    parser.add_argument("--only", choices=sorted(QUOTAS), help=argparse_suppress())
    parser.add_argument("--partial-out", type=Path, help=argparse_suppress())
    args = parser.parse_args(argv)
    shrink = 3 if args.smoke else 1  # smoke: quotas 6 and 2 vCPU, 4 trials each
    if args.smoke:
        args.time_scale, args.epochs = 0.02, 1

    if args.only:  # one tenant, for replay_tenants
        with tempfile.TemporaryDirectory() as storage:
            result = run_replay(args.only, args.time_scale, Path(storage), args.idle_timeout, shrink,
                                pod_start_s=args.pod_start_s, head_in_quota=args.head_in_quota,
                                max_starting=args.max_starting or None)
        args.partial_out.write_text(json.dumps(result))
        return 0

    users: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if args.mode == "replay":
        users = replay_tenants(args, argv, shrink)
    else:
        import ray

        from raytune_k8s.sim.cluster import LocalRayHead

        cores = os.cpu_count() or 2
        with tempfile.TemporaryDirectory() as storage, LocalRayHead(num_cpus=cores) as head:
            for user in QUOTAS:
                users[user] = run_real(user, cores, args.epochs, Path(storage), head.address)
                ray.shutdown()
        if cores < 6:
            notes.append(
                f"CPU-bound: this machine has {cores} cores, so user1's {users['user1']['slots']} and user2's "
                f"{users['user2']['slots']} concurrent trials share the same {cores} cores; the quotas change how "
                "many trials run at once, not how much compute the experiment gets."
            )
    for user in users:
        users[user]["mode"] = args.mode
    speedup = users["user2"]["wall_s"] / users["user1"]["wall_s"]
    replay = args.mode == "replay"
    ideal_speedup = users["user2"]["ideal_min"] / users["user1"]["ideal_min"] if replay else None
    if replay:
        notes.append(
            f"Speedup of user1 over user2: {speedup:.2f} here, {PAPER['user2']['wall_min'] / PAPER['user1']['wall_min']:.2f} "
            f"in Katib's run. Ours is bounded by the ideal ratio {users['user2']['ideal_min']:.1f} / "
            f"{users['user1']['ideal_min']:.1f} = {ideal_speedup:.2f}, because our {QUOTAS['user2']} vCPU tenant runs "
            f"{users['user2']['slots']} trials at once where Katib's ran {PAPER['user2']['parallel']} (Katib's controller "
            "and suggestion pods took part of its quota): a smaller speedup means the small tenant is served better, "
            "not that the big one is worse."
        )
    data = {
        "benchmark": NAME,
        "mode": args.mode,
        "time_scale": args.time_scale if replay else None,
        "pod_start_s": args.pod_start_s if replay else None,
        "max_starting": args.max_starting if replay else None,
        "head_in_quota": args.head_in_quota if replay else None,
        "users": users,
        "speedup_user1_over_user2": speedup,
        "ideal_speedup_user1_over_user2": ideal_speedup,
        "katib": {u: {**PAPER[u], "quota_vcpu": QUOTAS[u]} for u in QUOTAS},
        "katib_speedup": PAPER["user2"]["wall_min"] / PAPER["user1"]["wall_min"],
        "notes": notes,
        "environment": environment(f"benchmarks.{NAME}", argv, ["ray"]),
    }
    headers = ["tenant", "quota vCPU", "Katib: at once", "Katib: min", "ours: at once", "ours: min", "ideal min", "efficiency",
               "workers up (s)", "first trial (s)", "efficiency given workers"]
    rows = [
        [u, users[u]["quota_vcpu"], PAPER[u]["parallel"], PAPER[u]["wall_min"], users[u]["parallel"], users[u]["wall_min"],
         users[u]["ideal_min"], users[u]["efficiency"], users[u].get("workers_all_up_s"), users[u].get("first_trial_s"),
         users[u].get("efficiency_given_workers")]
        for u in QUOTAS
    ]
    rows.append(["speedup user1 vs user2", "", "", data["katib_speedup"], "", speedup, ideal_speedup or "", "", "", "", ""])
    print(text_table(headers, rows))
    for note in notes:
        print("note:", note)
    name = variant_name(args.time_scale, args.pod_start_s, args.head_in_quota, args.smoke) if replay else f"{NAME}_real"
    if replay:
        scale = (f", time scale {args.time_scale:g} (minutes rescaled to the paper's), pod start {args.pod_start_s:g} s"
                 + (f", head ({HEAD_VCPU} vCPU) inside the tenant quota" if args.head_in_quota else ""))
    else:
        scale = f", {args.epochs} epochs per trial"
    md = (
        f"# Katib quota comparison ({args.mode} mode{scale})\n\n{markdown_table(headers, rows)}\n\n"
        + "".join(f"Note: {n}\n\n" for n in notes)
        + "Both tenants ran at the same time on this 2-core machine, each on a simulated cluster of its own "
        + f"(load average at the end {'/'.join(f'{x:.1f}' for x in os.getloadavg())} over 1/5/15 min; the run's own "
        + "processes count too, anything well above 2 is other work).\n\n"
        + ("Efficiency given workers: the ideal schedule with each worker free only from when it came up, over the "
           "last trial's end (both timed from `run()`): what it loses is ours (scheduling, trial start), the rest of the "
           "gap to 1 is the worker nodes' start on this machine.\n\n" if replay else "")
        + f"Command: `{data['environment']['command']}`\n"
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 6))
    base = 0
    for user, color in zip(QUOTAS, ("tab:blue", "tab:orange")):
        intervals = users[user].get("intervals_min") or []
        lanes = lanes_of(intervals)
        for i, (lane, (a, b)) in enumerate(zip(lanes, intervals)):
            ax.barh(base + lane, b - a, left=a, height=0.7, color=color, edgecolor="black",
                    label=f"{user}: quota {users[user]['quota_vcpu']} vCPU, {users[user]['parallel']} at once, "
                          f"{users[user]['wall_min']:.2f} min (Katib: {PAPER[user]['parallel']} at once, {PAPER[user]['wall_min']} min)"
                    if i == 0 else None)
        base += max(lanes, default=-1) + 2
    ax.set_yticks([])
    ax.set_ylabel("trial lanes: user1 (bottom), user2 (top)")
    ax.legend(loc="lower right", fontsize=8)  # under user2's lanes, right of user1's
    ax.set_xlim(left=0)
    ax.set_title(f"Both tenants' trials, as in Katib's Fig. 5 ({name})")
    ax.set_xlabel("minutes (paper scale)" if replay else "minutes")
    paths = write_outputs(args.out, name, data, md, fig)
    if not args.smoke and replay:
        paths.append(write_all_variants(args.out))
    for path in paths:
        print("wrote", path)
    return 0


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


def write_all_variants(out: Path) -> Path:
    """``quota_all.md``: one table of every replay variant whose JSON is in ``out``."""
    headers = ["time scale", "pod start s", "head in quota", "user1 slots", "user1 min", "user1 eff.", "user2 slots",
               "user2 min", "user2 eff.", "speedup (ideal)", "user1 workers up s", "user1 eff. given workers",
               "user2 eff. given workers"]
    rows = []
    for path in sorted(out.glob(f"{NAME}*.json")):
        d = json.loads(path.read_text())
        if d.get("mode") != "replay" or "pod_start_s" not in d:
            continue
        u1, u2 = d["users"]["user1"], d["users"]["user2"]
        rows.append([d["time_scale"], d["pod_start_s"], d.get("head_in_quota", False), u1["slots"], u1["wall_min"],
                     u1["efficiency"], u2["slots"], u2["wall_min"], u2["efficiency"],
                     f"{d['speedup_user1_over_user2']:.2f} ({d['ideal_speedup_user1_over_user2']:.2f})", u1["workers_all_up_s"],
                     u1.get("efficiency_given_workers"), u2.get("efficiency_given_workers")])
    path = out / f"{NAME}_all.md"
    path.write_text(
        "# Katib quota comparison: every replay variant\n\nKatib: user1 (8 at once) 4.3 min, user2 (2 at once) 10.6 min, "
        f"speedup 2.47.\n\n{markdown_table(headers, rows)}\n"
    )
    return path


if __name__ == "__main__":
    raise SystemExit(main())
