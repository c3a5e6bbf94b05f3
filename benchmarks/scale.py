"""Scale: one experiment of 10,000 trivial trials run to the end, as a user runs it.

``raytune-k8s run`` (the CLI, in a child process with its embedded local Ray: the driver) runs
N trivial Branin trials (random search, P=2, 1 CPU each). This benchmark reads the CLI's
progress lines (at most one a second: elapsed seconds and trials done) and at each one samples
the resident memory (RSS) of the driver, of the Ray head's processes (GCS, raylet and the other
non-worker processes the driver started) and of the trial workers. Afterwards it measures the
experiment directory (bytes, files), times ``raytune-k8s results DIR``, the summary
(``summary.json`` rebuilt from the directory, as ``run`` does at its end) and
``raytune-k8s report DIR`` on it.

Figures: the cost per trial of each block of 1,000 trials (block wall time / 1,000, the block's
ends interpolated between progress lines), memory against trials done with its slope in KB
per trial (least squares over the second half of the run, after start-up), the directory's KB
per trial, and the three timings.

    python -m benchmarks.scale                      # 10,000 trials (minutes)
    python -m benchmarks.scale --trials 2000 --block 200 --out /tmp/scale
    python -m benchmarks.scale --smoke --out /tmp/scale
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from ._report import arg_parser, fmt, markdown_table, publish, pyplot, text_table, write_outputs

NAME = "scale"
REPO = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"^\[\s*([\d.]+)s\].*?(\d+)/\d+ done")


def spec(trials: int, parallel: int, algorithm: str = "random", early_stopping: str | None = None) -> dict[str, Any]:
    from .overhead import experiment_spec

    out = experiment_spec("scale", trials, parallel, seed=0)
    out["algorithm"]["algorithmName"] = algorithm
    if early_stopping:  # a rule needs steps to compare: the trial reports CURVE_STEPS of them
        out["earlyStopping"] = {"algorithmName": early_stopping,
                                "algorithmSettings": [{"name": "start_step", "value": 2}] if early_stopping == "medianstop" else []}
        out["trial"]["function"] = "benchmarks.scale:branin_curve"
        out["trial"].pop("trainable", None)
    return out


CURVE_STEPS = 5


def branin_curve(config: dict[str, Any]) -> None:
    """A trivial trial of :data:`CURVE_STEPS` reports (for early-stopping runs): Branin's value
    approached from above, ``value * (1 + 1/step)``."""
    from ray import tune

    from raytune_k8s.trials.synthetic import branin_value

    value = branin_value(float(config["x"]), float(config["y"]))
    for step in range(1, CURVE_STEPS + 1):
        tune.report({"value": value * (1 + 1 / step)})


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "raytune_k8s", *args]


MEMORY_KEYS = (("driver_mb", "driver"), ("head_mb", "Ray head"), ("searcher_mb", "searcher actor"), ("workers_mb", "trial workers"))


def _rss_mb(driver: Any) -> dict[str, float]:
    """Resident MB of the driver process and of its descendants: the searcher actor's worker
    (``ray::SearcherHost``), the other Ray workers (trial actors, idle workers) and the rest (the
    head: GCS, raylet, dashboard and their helpers)."""
    import psutil

    out = {"driver_mb": 0.0, "head_mb": 0.0, "searcher_mb": 0.0, "workers_mb": 0.0}
    try:
        out["driver_mb"] = driver.memory_info().rss / 2**20
        children = driver.children(recursive=True)
    except psutil.Error:
        return out
    for child in children:
        try:
            rss = child.memory_info().rss / 2**20
            line = " ".join(child.cmdline()[:3])
            name = child.name()
        except psutil.Error:
            continue
        if "SearcherHost" in line or "SearcherHost" in name:
            out["searcher_mb"] += rss
        elif "ray::" in line or "default_worker.py" in line or name.startswith("ray::"):
            out["workers_mb"] += rss
        else:
            out["head_mb"] += rss
    return out


TRACE_S, TRACE_EVERY_S = 120.0, 0.5
LOG_LINES = 5000


def _memory_trace(driver: Any, out: list[dict[str, float]], stop: Any) -> None:
    """Every ``TRACE_EVERY_S`` until the driver ends: its resident MB and how much of it is shared
    pages (files and shared memory such as Ray's object store) rather than its own heap. Kept in
    full for the first ``TRACE_S`` seconds (where in a resume the memory grows, and of which
    kind); after that only each new peak (what progress lines miss: a resume's preparation, the
    summary built at the end)."""
    import psutil

    start = time.monotonic()
    peak = 0.0
    while not stop.wait(TRACE_EVERY_S):
        try:
            info = driver.memory_info()
        except psutil.Error:
            return
        t, rss = round(time.monotonic() - start, 2), info.rss / 2**20
        if t < TRACE_S or rss > peak:
            out.append({"t": t, "rss_mb": rss, "shared_mb": info.shared / 2**20})
        peak = max(peak, rss)


def sampled_run(argv: list[str], kill_at: int | None = None, t0: float | None = None,
                trace: list[dict[str, float]] | None = None,
                log: list[str] | None = None) -> tuple[list[dict[str, float]], float, int]:
    """Run ``argv`` (a driver printing progress lines), sampling memory at each line; return the
    samples (t, done, MB by process kind), its wall seconds and exit code. ``t`` is the line's
    own elapsed time, or with ``t0`` (a resume, whose progress line counts from the experiment's
    first start) ``t0`` + the seconds since this command started. ``kill_at``:
    once that many trials are done, SIGKILL the driver and every process under it (a lost pod:
    no clean shutdown of anything), and return (exit code -9). ``trace``: filled with the
    driver's memory from its start on (:func:`_memory_trace`). ``log``: filled with its other
    stderr lines (the last :data:`LOG_LINES`), to be kept when a run ends short."""
    import threading

    import psutil

    samples: list[dict[str, float]] = []
    start = time.monotonic()
    child = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    driver = psutil.Process(child.pid)
    tracing = threading.Event()
    if trace is not None:
        threading.Thread(target=_memory_trace, args=(driver, trace, tracing), daemon=True).start()
    tail: list[str] = []
    assert child.stderr is not None
    for line in child.stderr:
        match = PROGRESS.match(line)
        if match:
            t = float(match.group(1)) if t0 is None else t0 + (time.monotonic() - start)
            samples.append({"t": t, "done": int(match.group(2)), **_rss_mb(driver)})
            if kill_at is not None and samples[-1]["done"] >= kill_at:
                _kill_tree(driver)
                break
        else:
            tail = (tail + [line])[-40:]
            if log is not None:
                log.append(line)
                del log[:-LOG_LINES]
    code = child.wait()
    tracing.set()
    wall = time.monotonic() - start
    if code not in (0, 1, -9):  # 1: the experiment ran but did not succeed (the caller checks)
        sys.stderr.write("".join(tail))
        raise RuntimeError(f"{' '.join(argv[:4])} exited with {code}")
    return samples, wall, code


def _kill_tree(process: Any) -> None:
    from raytune_k8s.sim.cluster import _kill_trees

    _kill_trees([process], graceful_s=0)


def run_experiment(trials: int, parallel: int, storage: Path, kill_at: int | None = None,
                   algorithm: str = "random", early_stopping: str | None = None) -> dict[str, Any]:
    """Run the CLI to the end (``kill_at``: SIGKILL it there, then ``raytune-k8s resume`` it to
    the end); the samples, wall seconds, exit code and, when killed, the resume's figures."""
    import yaml

    spec_file = storage / "scale.yaml"
    spec_file.write_text(yaml.safe_dump(spec(trials, parallel, algorithm, early_stopping)))
    run_trace: list[dict[str, float]] = []
    log: list[str] = []  # the drivers' stderr (progress lines aside): kept with a run that ends short
    samples, wall, code = sampled_run(_cli("run", str(spec_file), "--storage-path", str(storage), "--no-report"), kill_at,
                                      trace=run_trace, log=log)
    out: dict[str, Any] = {"samples": samples, "wall": wall, "code": code, "log": log,
                           "driver_traced_peak_mb": max((x["rss_mb"] for x in run_trace), default=None)}
    if kill_at is None:
        return out
    experiment_dir = storage / "scale"
    before = _journal_ends(experiment_dir)
    t_kill = samples[-1]["t"]
    gap_start = time.monotonic()
    trace: list[dict[str, float]] = []
    log.append(f"--- SIGKILL at {samples[-1]['done'] if samples else 0} trials; raytune-k8s resume ---\n")
    resumed, resume_wall, code = sampled_run(_cli("resume", str(experiment_dir), "--no-report"), t0=t_kill, trace=trace,
                                             log=log)
    first_new = next((s for s in resumed if s["done"] > samples[-1]["done"]), None)
    out.update(
        samples=samples + resumed, wall=wall + (time.monotonic() - gap_start), code=code, killed_at=samples[-1]["done"],
        resume_s=(first_new["t"] - t_kill) if first_new else None, resume_wall_s=resume_wall,
        resume_check=_resume_check(experiment_dir, before, trials),
        resume_memory_trace=[x for x in trace if x["t"] < TRACE_S],
        driver_traced_peak_mb=max([x["rss_mb"] for x in run_trace + trace] or [0.0]) or None,
    )
    return out


def _journal_ends(experiment_dir: Path) -> dict[str, Any]:
    """Each trial the journal saw end: id -> its last result's value (what a resume must keep)."""
    from raytune_k8s.recovery.journal import read_journal

    return {e["trial_id"]: (e.get("result") or {}).get("value") for e in read_journal(experiment_dir)
            if e.get("event") == "complete"}


def _resume_check(experiment_dir: Path, before: dict[str, Any], trials: int) -> dict[str, Any]:
    """Nothing lost, nothing run twice: every trial that had ended before the kill is in the
    summary with the same value, no trial ended twice in the journal, no trial twice in the summary."""
    from collections import Counter

    from raytune_k8s.recovery.journal import read_journal

    summary = json.loads((experiment_dir / "summary.json").read_text())
    rows = {r["trial_id"]: r for r in summary["trial_table"]}
    ends = Counter(e["trial_id"] for e in read_journal(experiment_dir) if e.get("event") in ("complete", "error"))
    lost = [t for t, value in before.items() if t not in rows or rows[t]["metrics"].get("value") != value]
    return {"ended_before_kill": len(before), "lost": len(lost), "lost_examples": lost[:5],
            "ended_twice": sum(1 for n in ends.values() if n > 1),
            "summary_trials": summary["trials"], "summary_rows_unique": len(rows) == len(summary["trial_table"]),
            "ok": not lost and all(n == 1 for n in ends.values()) and summary["trials"] == trials
            and len(rows) == len(summary["trial_table"])}


PLAIN_TUNE_LIMIT_MB = 3072


def plain_tune_child(trials: int, parallel: int, storage: Path) -> int:
    """Plain Ray Tune on the same trivial trial (random search, ``reuse_actors=True``, the same
    CPU per trial), printing progress lines as ``raytune-k8s run`` does; it stops itself once its
    driver's memory passes :data:`PLAIN_TUNE_LIMIT_MB`."""
    import psutil
    import ray
    from ray import tune

    from .overhead import stamped_branin, trial_cpu

    class Progress(tune.Callback, tune.Stopper):
        """Progress lines and the memory stop (picklable: Tune saves its callbacks)."""

        def __init__(self, wanted: int) -> None:
            self.wanted, self.start = wanted, time.monotonic()
            self.done, self.last, self.full = 0, float("-inf"), False

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.done += 1
            if time.monotonic() - self.last >= 1.0 or self.done == self.wanted:
                self.last = time.monotonic()
                self.full = psutil.Process().memory_info().rss / 2**20 > PLAIN_TUNE_LIMIT_MB
                print(f"[{self.last - self.start:7.1f}s] {self.done}/{self.wanted} done", file=sys.stderr, flush=True)

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return self.full

    progress = Progress(trials)
    ray.init(address="local", include_dashboard=False, log_to_driver=False)  # as raytune-k8s' embedded Ray
    tuner = tune.Tuner(
        tune.with_resources(stamped_branin, {"cpu": trial_cpu(parallel)}),
        param_space={"x": tune.uniform(-5, 10), "y": tune.uniform(0, 15)},
        tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=parallel, metric="value", mode="min",
                                    reuse_actors=True),
        run_config=tune.RunConfig(name="plain", storage_path=str(storage), callbacks=[progress], stop=progress, verbose=0),
    )
    tuner.fit()
    print(f"plain Tune stopped at {progress.done} trials{' (memory limit)' if progress.full else ''}", file=sys.stderr, flush=True)
    return 0


def block_costs(samples: list[dict[str, float]], trials: int, block: int,
                gap: tuple[int | None, float | None] = (None, None)) -> list[float]:
    """ms per trial of each block of ``block`` trials: the time the done count crossed each
    block boundary, interpolated linearly between progress lines. ``gap`` (killed at N trials
    done, the resume's seconds to its first trial done): that pause is left out of the block it
    falls in (it is reported as ``resume_s``)."""
    killed_at, pause = gap
    points = [(0.0, 0)] + [(s["t"] - (pause if killed_at is not None and pause and s["done"] > killed_at else 0.0),
                            int(s["done"])) for s in samples]

    def time_at(done: int) -> float:
        for (t0, d0), (t1, d1) in zip(points, points[1:]):
            if d1 >= done:
                return t0 + (t1 - t0) * (done - d0) / max(1, d1 - d0)
        return points[-1][0]

    # Block 1 starts at the first trial done, so it measures trials, not start-up.
    first = next((t for t, d in points if d >= 1), 0.0)
    edges = [first] + [time_at(b) for b in range(block, trials + 1, block)]
    return [1000 * (b - a) / block for a, b in zip(edges, edges[1:])]


def slope_kb(samples: list[dict[str, float]], key: str) -> float | None:
    """KB of ``key`` per trial done: least squares over the second half of the run."""
    half = [s for s in samples if s["done"] >= samples[-1]["done"] / 2] if samples else []
    if len(half) < 3:
        return None
    xs = [s["done"] for s in half]
    ys = [s[key] * 1024 for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else None


def _timed(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of a command run to its end (CPU: its user + system time, children
    included, which a loaded machine inflates much less than the wall time)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(argv, env=_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


SUMMARY_CODE = """
import json, sys, time
from pathlib import Path
from raytune_k8s.spec import load_document
from raytune_k8s.results.summary import build_summary, trial_rows, write_summary
d = Path(sys.argv[1])
spec = load_document(d / "experiment.yaml").spec
wall = json.loads((d / "summary.json").read_text()).get("wall_s", 0.0)  # the run's, kept
t, c = time.monotonic(), time.process_time()
write_summary(d, build_summary(spec, trial_rows(d, spec), wall_s=wall, experiment_dir=d))
print(time.monotonic() - t, time.process_time() - c)
"""


def directory_size(path: Path) -> tuple[int, int]:
    size = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                size += os.stat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                pass
    return size, files


def time_commands(experiment_dir: Path, trials: int) -> dict[str, Any]:
    """The directory's size, and the wall and CPU seconds of ``results``, the summary and ``report`` on it."""
    size, files = directory_size(experiment_dir)
    results_s, results_cpu_s = _timed(_cli("results", str(experiment_dir)))
    summary_out = subprocess.run([sys.executable, "-c", SUMMARY_CODE, str(experiment_dir)], env=_env(), check=True,
                                 capture_output=True, text=True).stdout
    summary_s, summary_cpu_s = map(float, summary_out.strip().splitlines()[-1].split())
    report_s, report_cpu_s = _timed(_cli("report", str(experiment_dir)))
    return {
        "dir_mb": size / 1e6, "dir_files": files, "dir_kb_per_trial": size / 1024 / trials,
        "results_s": results_s, "results_cpu_s": results_cpu_s, "summary_s": summary_s, "summary_cpu_s": summary_cpu_s,
        "report_s": report_s, "report_cpu_s": report_cpu_s,
        "report_mb": (experiment_dir / "report.html").stat().st_size / 1e6,
        "loadavg_at_timings": [round(x, 2) for x in os.getloadavg()],
    }


def output_name(trials: int, algorithm: str, early_stopping: str | None) -> str:
    """``scale`` for the default run; ``scale_100k``, ``scale_20k_tpe``, ``scale_20k_median``... else."""
    if trials == 10_000 and algorithm == "random" and not early_stopping:
        return NAME
    size = f"{trials // 1000}k" if trials % 1000 == 0 else str(trials)
    return "_".join([NAME, size] + ([algorithm] if algorithm != "random" else []) + ([early_stopping] if early_stopping else []))


def by_block(samples: list[dict[str, float]], trials: int, block: int, key: str) -> list[float | None]:
    """The mean of ``key`` over the samples taken while each block's trials were done."""
    out: list[float | None] = []
    for lo in range(0, trials, block):
        values = [s[key] for s in samples if lo < s["done"] <= lo + block]
        out.append(sum(values) / len(values) if values else None)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--block", type=int, help="trials per block (default: a tenth of --trials)")
    parser.add_argument("--algorithm", default="random", help="the experiment's algorithm (default random)")
    parser.add_argument("--early-stopping", help="an early-stopping rule (medianstop, asha): trials of 5 steps, measured, no goal")
    parser.add_argument("--kill-at", type=int, help="SIGKILL the driver and its Ray once this many trials are done, "
                                                     "then `raytune-k8s resume` to the end (default: 60%% of --trials "
                                                     "from 50,000 trials on)")
    parser.add_argument("--plain-tune", type=int, help="also run plain Ray Tune (reuse_actors=True) on the same trial up to "
                                                        f"this many trials or {PLAIN_TUNE_LIMIT_MB} MB of driver memory "
                                                        "(default: min(--trials, 20,000); 0: none)")
    parser.add_argument("--plain-tune-child", action="store_true", help=argparse_hidden())
    parser.add_argument("--keep", type=Path, help="run in this storage folder and keep the experiment")
    parser.add_argument("--retime", type=Path, metavar="JSON",
                        help="time the commands again on the experiment kept with --keep (its folder) and rewrite "
                             "that run's JSON, md and png into --out")
    args = parser.parse_args(argv)
    if args.plain_tune_child:
        assert args.keep is not None
        return plain_tune_child(args.trials, args.parallel, args.keep)
    name = output_name(args.trials, args.algorithm, args.early_stopping)
    if args.retime:
        data = json.loads(args.retime.read_text())
        if args.keep is None:
            parser.error("--retime needs --keep (the storage folder of that run)")
        data.update(time_commands(args.keep / "scale", data["trials"]))
        data["retimed"] = True
        paths = write_outputs(args.out, name, data, markdown(data), figure(data))
        print(text_table(["figure", "value"], figure_rows(data)))
        print(f"wrote {', '.join(map(str, paths))}")
        return 0
    if args.smoke:
        # enough trials that the kill lands mid-run though progress lines come once a second
        args.trials, args.block = 400, 100
        args.kill_at = 200 if args.kill_at is None else args.kill_at
        args.plain_tune = 200 if args.plain_tune is None else args.plain_tune
    block = args.block or max(1, args.trials // 10)
    kill_at = args.kill_at if args.kill_at is not None else (int(args.trials * 0.6) if args.trials >= 50_000 else None)
    plain_n = min(args.trials, 20_000) if args.plain_tune is None else args.plain_tune
    start = time.monotonic()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="rtk8s-scale-") as tmp:
        storage = args.keep or Path(tmp)
        storage.mkdir(parents=True, exist_ok=True)
        run = run_experiment(args.trials, args.parallel, storage, kill_at, args.algorithm, args.early_stopping)
        samples = run["samples"]
        experiment_dir = storage / "scale"
        summary_file = experiment_dir / "summary.json"  # missing when the driver died before its summary
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {"trials": None}
        if summary["trials"] != args.trials:
            kept = args.keep or Path(tempfile.gettempdir()) / f"rtk8s-{name}-failed"
            if args.keep is None:  # kept for a look, out of the temporary folder removed on the way out
                shutil.rmtree(kept, ignore_errors=True)
                if experiment_dir.exists():
                    shutil.move(str(experiment_dir), kept)
                else:
                    kept.mkdir(parents=True)
            (kept / "benchmark-driver-stderr.txt").write_text("".join(run["log"]))
            sys.stderr.write("".join(run["log"][-60:]))
            counts = {k: summary.get(k) for k in ("status", "reason", "trials_total", "succeeded", "early_stopped",
                                                   "failed", "killed", "metrics_unavailable")}
            raise RuntimeError(f"the experiment ended with {summary['trials']} of {args.trials} trials (exit {run['code']}): "
                               f"{counts}; failed trials {(summary.get('failed_trials') or [])[:3]}; its directory is "
                               f"kept in {kept}")
        load_run = [round(x, 2) for x in os.getloadavg()]
        timings = time_commands(experiment_dir, args.trials)
        plain: dict[str, Any] | None = None
        if plain_n:
            plain_dir = Path(tmp) / "plain"
            plain_dir.mkdir()
            plain_samples, plain_wall, plain_code = sampled_run([sys.executable, "-m", "benchmarks.scale", "--plain-tune-child",
                                                        "--trials", str(plain_n), "--parallel", str(args.parallel),
                                                        "--keep", str(plain_dir)])
            if plain_code != 0:
                raise RuntimeError(f"plain Ray Tune's run exited with {plain_code}")
            plain_done = plain_samples[-1]["done"] if plain_samples else 0
            plain = {"trials_asked": plain_n, "trials_done": plain_done, "wall_s": plain_wall,
                     "stopped_by_memory": plain_done < plain_n, "samples": plain_samples,
                     "blocks_ms_per_trial": block_costs(plain_samples, plain_done - plain_done % block, block)
                     if plain_done >= block else [],
                     **{f"{key}_by_block": by_block(plain_samples, plain_done - plain_done % block, block, key)
                        for key, _ in MEMORY_KEYS},
                     "driver_peak_mb": max((p["driver_mb"] for p in plain_samples), default=None)}
    blocks = block_costs(samples, args.trials, block, gap=(run.get("killed_at"), run.get("resume_s")))
    data: dict[str, Any] = {
        "benchmark": name, "smoke": args.smoke, "trials": args.trials, "parallel": args.parallel, "block": block,
        "algorithm": args.algorithm, "early_stopping": args.early_stopping,
        "early_stopped": summary.get("early_stopped"), "succeeded": summary.get("succeeded"),
        "wall_s": run["wall"], "run_wall_s": run["wall"], "in_run_s": samples[-1]["t"] if samples else None,
        "first_trial_done_s": next((s["t"] for s in samples if s["done"] >= 1), None),
        "blocks_ms_per_trial": blocks, "block_ms_per_trial": blocks,
        "first_block_ms_per_trial": blocks[0], "last_block_ms_per_trial": blocks[-1],
        "last_over_first": blocks[-1] / blocks[0],
        **{f"{key}_by_block": by_block(samples, args.trials, block, key) for key, _ in MEMORY_KEYS},
        "kb_per_trial": slope_kb(samples, "driver_mb"),
        "head_kb_per_trial": slope_kb(samples, "head_mb"),
        "searcher_kb_per_trial": slope_kb(samples, "searcher_mb"),
        **{f"{key.removesuffix('_mb')}_peak_mb": max(s[key] for s in samples) for key, _ in MEMORY_KEYS},
        "killed_at": run.get("killed_at"), "resume_s": run.get("resume_s"), "resume_wall_s": run.get("resume_wall_s"),
        "resume_check": run.get("resume_check"), "resume_memory_trace": run.get("resume_memory_trace"),
        # every 0.5 s, start to end (also the resume's preparation and the summary at the end)
        "driver_traced_peak_mb": run.get("driver_traced_peak_mb"),
        **timings,
        "plain_tune": plain,
        "loadavg_before": load_before, "loadavg_after_run": load_run,
        "samples": samples,
    }
    data["driver_rss_mb"] = {"peak": data["driver_peak_mb"], "by_block": data["driver_mb_by_block"]}
    data["head_rss_mb"] = {"peak": data["head_peak_mb"], "by_block": data["head_mb_by_block"]}
    data["searcher_rss_mb"] = {"peak": data["searcher_peak_mb"], "by_block": data["searcher_mb_by_block"]}
    data["checks"] = checks(data)
    rows = [[f"trials {i * block + 1}-{(i + 1) * block}", ms] for i, ms in enumerate(blocks)]
    text = (f"\nScale: {args.trials} trivial trials, P={args.parallel}, {args.algorithm}"
            f"{', ' + args.early_stopping if args.early_stopping else ''}\n{text_table(['block', 'ms/trial'], rows)}\n\n"
            + text_table(["figure", "value"], figure_rows(data)))
    publish(args.out, name, data, start, argv, ["raytune_k8s", "ray"], text, markdown, figure, module=NAME)
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def checks(data: dict[str, Any]) -> dict[str, Any]:
    """The issue's bounds, each with its measured figure (random search, no early stopping)."""
    def ratio(values: list[Any]) -> float | None:
        known = [v for v in values if v is not None]
        return known[-1] / known[0] if len(known) >= 2 and known[0] else None

    out: dict[str, Any] = {
        "every_block_le_16_ms": max(data["blocks_ms_per_trial"]) <= 16,
        "last_block_le_1.2x_first": data["last_over_first"] <= 1.2,
        "results_le_5_s": data["results_s"] <= 5,
        "report_le_30_s": data["report_s"] <= 30,
    }
    for key, _ in MEMORY_KEYS[:3]:
        name = key.removesuffix("_mb")
        peak = max(data[f"{name}_peak_mb"], (data.get("driver_traced_peak_mb") or 0) if name == "driver" else 0)
        out[f"{name}_peak_le_1500_mb"] = peak <= 1500
        r = ratio(data[f"{key}_by_block"])
        out[f"{name}_last_block_mean_over_first"] = r
        out[f"{name}_last_block_le_1.2x_first"] = r is not None and r <= 1.2
    if data.get("resume_check") is not None:
        out["resume_nothing_lost_or_rerun"] = data["resume_check"]["ok"]
    return out


def figure_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [
        ["last block / first block (goal <= 1.2)", data["last_over_first"]],
        ["searcher actor RSS growth, KB per trial", data.get("searcher_kb_per_trial")],
        ["searcher actor RSS peak, MB", data.get("searcher_peak_mb")],
        ["SIGKILLed at (trials done)", data.get("killed_at")],
        ["resume: seconds from `resume` to its first trial done", data.get("resume_s")],
        ["resume: nothing lost or run twice", (data.get("resume_check") or {}).get("ok")],
        ["resume: driver MB (shared pages) at 5, 15, 30, 60 s", _trace_points(data.get("resume_memory_trace"))],
        ["driver peak MB, sampled every 0.5 s (also between progress lines)", data.get("driver_traced_peak_mb")],
        ["driver RSS growth, KB per trial", data["kb_per_trial"]],
        ["head RSS growth, KB per trial", data["head_kb_per_trial"]],
        ["driver RSS peak, MB", data["driver_peak_mb"]],
        ["head RSS peak, MB", data["head_peak_mb"]],
        ["experiment directory, MB", data["dir_mb"]],
        ["experiment directory, files", data["dir_files"]],
        ["experiment directory, KB per trial", data["dir_kb_per_trial"]],
        ["`raytune-k8s results DIR`, wall s (goal <= 5)", data["results_s"]],
        ["`raytune-k8s results DIR`, CPU s", data["results_cpu_s"]],
        ["summary.json rebuilt from the directory, wall s", data["summary_s"]],
        ["summary.json rebuilt from the directory, CPU s", data["summary_cpu_s"]],
        ["`raytune-k8s report DIR`, wall s (goal <= 30)", data["report_s"]],
        ["`raytune-k8s report DIR`, CPU s", data["report_cpu_s"]],
        ["report.html, MB", data["report_mb"]],
        ["first trial done, s after the run's Tuner started", data["first_trial_done_s"]],
        ["`raytune-k8s run` wall time, s (cold start, embedded Ray)", data["run_wall_s"]],
    ]


def _trace_points(trace: list[dict[str, float]] | None) -> str | None:
    if not trace:
        return None
    points = []
    for t in (5, 15, 30, 60):
        sample = next((x for x in trace if x["t"] >= t), None)
        if sample is not None:
            points.append(f"{sample['rss_mb']:.0f} ({sample['shared_mb']:.0f})")
    return ", ".join(points)


def markdown(data: dict[str, Any]) -> str:
    env = data["environment"]
    blocks = [[f"{i * data['block'] + 1}-{(i + 1) * data['block']}", ms] for i, ms in enumerate(data["block_ms_per_trial"])]
    return "\n".join([
        "# Scale",
        "",
        f"`raytune-k8s run` of {data['trials']} trivial Branin trials ({_search_words(data)}, P={data['parallel']}, 1 CPU "
        "each) in a child process with its embedded local Ray, run to the end. Memory is sampled at each progress line, "
        "the driver's also every 0.5 s.",
        "",
        *([data["note"], ""] if data.get("note") else []),
        "## Cost per trial, by block",
        "",
        markdown_table(["trials", "ms/trial"], blocks),
        "",
        "## Memory by block (mean RSS, MB, of the samples taken while the block ran)",
        "",
        markdown_table(["trials", *[label for _, label in MEMORY_KEYS]],
                       [[f"{i * data['block'] + 1}-{(i + 1) * data['block']}",
                         *[(data.get(f"{key}_by_block") or [None] * len(blocks))[i] for key, _ in MEMORY_KEYS]]
                        for i in range(len(blocks))]),
        "",
        "## Memory, directory and the commands on it",
        "",
        markdown_table(["figure", "value"], figure_rows(data)),
        "",
        *(_plain_tune_lines(data) if data.get("plain_tune") else []),
        *(["## Checks", "", *_measured_only_lines(data),
           markdown_table(["check", "measured"], [[k, v] for k, v in data["checks"].items()]), ""]
          if data.get("checks") else []),
        f"Load average (1/5/15 min) before the run {'/'.join(map(str, data['loadavg_before']))}, after it "
        f"{'/'.join(map(str, data['loadavg_after_run']))}, while the commands were timed "
        f"{'/'.join(map(str, data['loadavg_at_timings']))}: "
        f"on a {env['cpus']}-CPU machine (the run's own processes count too; anything above that is other "
        "work, which inflates every time here). "
        f"{env['date_utc']}; `{env['command']}`. Chart: `{data['benchmark']}.png`; samples: `{data['benchmark']}.json`.",
    ])


def _search_words(data: dict[str, Any]) -> str:
    words = "random search" if data.get("algorithm", "random") == "random" else f"{data['algorithm']} search"
    return words + (f", {data['early_stopping']} early stopping" if data.get("early_stopping") else "")


def _measured_only_lines(data: dict[str, Any]) -> list[str]:
    """The bounds are issue 30's for random search without early stopping; with a searcher or a
    rule whose cost grows with the history by nature they are measured, not goals."""
    if data.get("algorithm", "random") == "random" and not data.get("early_stopping"):
        return []
    return [f"The bounds below are the goals for random search without early stopping; with {_search_words(data)}, "
            "whose cost grows with the trials already done by nature, they are measured here, not goals.", ""]


def _plain_tune_lines(data: dict[str, Any]) -> list[str]:
    plain = data["plain_tune"]
    rows = [[f"{i * data['block'] + 1}-{(i + 1) * data['block']}", ms,
             (data["block_ms_per_trial"] + [None] * len(plain["blocks_ms_per_trial"]))[i],
             plain["driver_mb_by_block"][i], (data["driver_mb_by_block"] + [None] * len(plain["blocks_ms_per_trial"]))[i]]
            for i, ms in enumerate(plain["blocks_ms_per_trial"])]
    stopped = (f"stopped by its driver passing {PLAIN_TUNE_LIMIT_MB} MB at {plain['trials_done']} trials"
               if plain["stopped_by_memory"] else f"ran its {plain['trials_done']} trials")
    return [
        "## Plain Ray Tune beside it",
        "",
        f"The same trivial trial with plain `tune.Tuner` (random search, `reuse_actors=True`, the same CPU per trial, "
        f"embedded local Ray), in the same run, up to {plain['trials_asked']} trials or {PLAIN_TUNE_LIMIT_MB} MB of "
        f"driver memory: {stopped}, {fmt(plain['wall_s'])} s; driver peak {fmt(plain['driver_peak_mb'])} MB.",
        "",
        markdown_table(["trials", "plain Tune ms/trial", "ours ms/trial", "plain Tune driver MB", "our driver MB"], rows),
        "",
    ]


def figure(data: dict[str, Any]) -> Any:
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    blocks = data["block_ms_per_trial"]
    ax.bar(range(1, len(blocks) + 1), blocks, color="tab:blue")
    ax.axhline(1.2 * blocks[0], color="tab:red", ls="--", lw=1, label="1.2 x first block")
    ax.set_xlabel(f"block of {data['block']} trials")
    ax.set_ylabel("ms per trial")
    ax.legend(fontsize=8)
    ax.set_title("cost per trial by block", fontsize=9)
    plain = data.get("plain_tune")
    if plain and plain.get("blocks_ms_per_trial"):
        n = len(plain["blocks_ms_per_trial"])
        ax.plot(range(1, n + 1), plain["blocks_ms_per_trial"], "o-", color="tab:orange", label="plain Ray Tune")
        ax.legend(fontsize=8)
    done = [s["done"] for s in data["samples"]]
    for key, label in MEMORY_KEYS:
        ax2.plot(done, [s.get(key, 0.0) for s in data["samples"]], label=label)
    if plain and plain.get("samples"):
        ax2.plot([s["done"] for s in plain["samples"]], [s["driver_mb"] for s in plain["samples"]], "--",
                 color="tab:orange", label="plain Ray Tune driver")
    if data.get("killed_at"):
        ax2.axvline(data["killed_at"], color="black", lw=0.8, ls=":", label="SIGKILL, resume")
    ax2.set_xlabel("trials done")
    ax2.set_ylabel("RSS, MB")
    ax2.legend(fontsize=8)
    ax2.set_title(f"memory; driver +{fmt(data['kb_per_trial'])} KB/trial", fontsize=9)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
