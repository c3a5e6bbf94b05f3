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
efficiency = ideal / measured, and a Gantt chart like Fig. 5.

``--mode real``: real MXNet trainings with the quotas scaled to this machine's cores at the same
1:3 ratio (trial CPU scaled alike), on one local Ray with that many CPUs. On a 2-core machine the
trials share two cores whatever the quota, so the comparison is CPU-bound there; it says so.

    python -m benchmarks.quota                       # replay, --time-scale 0.25 (about 4 minutes)
    python -m benchmarks.quota --mode real
    python -m benchmarks.quota --smoke --out /tmp/q
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "token")  # before Ray is imported: token auth is on

import heapq  # noqa: E402
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


def ideal_makespan(durations: Sequence[float], slots: int) -> float:
    """List scheduling in order on ``slots`` slots with zero overhead."""
    free = [0.0] * slots
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
        self.max_workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            count = self.cluster.worker_count()
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


def run_replay(user: str, time_scale: float, storage: Path, idle_timeout_s: float, shrink: int = 1) -> dict[str, Any]:
    """One tenant's replay; ``shrink`` > 1 divides its quota and trial count (smoke runs)."""
    import ray

    import raytune_k8s
    from raytune_k8s.localcluster import AutoscalingLocalCluster

    minutes = start_order(PAPER_LANES[user])
    durations_s = [m * 60 * time_scale for m in minutes[: len(minutes) // shrink]]
    quota_vcpu = QUOTAS[user] // shrink
    slots = quota_vcpu // TRIAL_VCPU
    # The cluster may grow further than the quota; the quota is what caps the tenant.
    with AutoscalingLocalCluster(worker_cpus=TRIAL_VCPU, max_workers=slots, idle_timeout_s=idle_timeout_s) as cluster:
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
    wall = summary["wall_s"]
    return {
        "quota_vcpu": quota_vcpu,
        "slots": slots,
        "parallel": max_overlap(intervals),
        "trials": summary["trials"],
        "wall_s": wall,
        "wall_min": wall / time_scale / 60,
        "ideal_min": ideal / time_scale / 60,
        "efficiency": ideal / wall,
        "workers_all_up_s": watch.all_up_s,
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["replay", "real"], default="replay")
    parser.add_argument("--time-scale", type=float, default=0.25, help="replay: seconds of ours per second of the paper's")
    parser.add_argument("--idle-timeout", type=float, default=10.0, help="replay: worker idle timeout (s)")
    parser.add_argument("--epochs", type=int, default=3, help="real: epochs per MXNet trial")
    args = parser.parse_args(argv)
    shrink = 3 if args.smoke else 1  # smoke: quotas 6 and 2 vCPU, 4 trials each
    if args.smoke:
        args.time_scale, args.epochs = 0.02, 1

    users: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as storage:
        if args.mode == "replay":
            for user in QUOTAS:
                users[user] = run_replay(user, args.time_scale, Path(storage), args.idle_timeout, shrink)
        else:
            import ray

            from raytune_k8s.localcluster import LocalRayHead

            cores = os.cpu_count() or 2
            with LocalRayHead(num_cpus=cores) as head:
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
    data = {
        "benchmark": NAME,
        "mode": args.mode,
        "time_scale": args.time_scale if args.mode == "replay" else None,
        "users": users,
        "speedup_user1_over_user2": speedup,
        "katib": {u: {**PAPER[u], "quota_vcpu": QUOTAS[u]} for u in QUOTAS},
        "katib_speedup": PAPER["user2"]["wall_min"] / PAPER["user1"]["wall_min"],
        "notes": notes,
        "environment": environment(f"benchmarks.{NAME}", list(argv or []), ["ray"]),
    }
    headers = ["tenant", "quota vCPU", "Katib: at once", "Katib: min", "ours: at once", "ours: min", "ideal min", "efficiency", "workers up (s)"]
    rows = [
        [u, users[u]["quota_vcpu"], PAPER[u]["parallel"], PAPER[u]["wall_min"], users[u]["parallel"], users[u]["wall_min"],
         users[u]["ideal_min"], users[u]["efficiency"], users[u].get("workers_all_up_s")]
        for u in QUOTAS
    ]
    rows.append(["speedup user1 vs user2", "", "", data["katib_speedup"], "", speedup, "", "", ""])
    print(text_table(headers, rows))
    for note in notes:
        print("note:", note)
    scale = f", time scale {args.time_scale} (minutes rescaled to the paper's)" if args.mode == "replay" else f", {args.epochs} epochs per trial"
    md = (
        f"# Katib quota comparison ({args.mode} mode{scale})\n\n{markdown_table(headers, rows)}\n\n"
        + "".join(f"Note: {n}\n\n" for n in notes)
        + f"Command: `{data['environment']['command']}`\n"
    )
    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for ax, user in zip(axes, QUOTAS):
        intervals = users[user].get("intervals_min") or []
        for lane, (a, b) in zip(lanes_of(intervals), intervals):
            ax.barh(lane, b - a, left=a, height=0.7, color="tab:orange" if user == "user2" else "tab:blue", edgecolor="black")
        ax.set_ylabel(f"{user} lane")
        ax.set_title(f"{user}: quota {users[user]['quota_vcpu']} vCPU, {users[user]['parallel']} at once, {users[user]['wall_min']:.1f} min "
                     f"(Katib: {PAPER[user]['parallel']} at once, {PAPER[user]['wall_min']} min)")
    axes[-1].set_xlabel("minutes (paper scale)" if args.mode == "replay" else "minutes")
    for path in write_outputs(args.out, NAME, data, md, fig):
        print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
