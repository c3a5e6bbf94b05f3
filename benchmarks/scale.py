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


def spec(trials: int, parallel: int) -> dict[str, Any]:
    from .overhead import experiment_spec

    return experiment_spec("scale", trials, parallel, seed=0)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "raytune_k8s", *args]


def _rss_mb(driver: Any) -> tuple[float, float, float]:
    """(driver, head, workers) resident MB: the driver process; its other descendants, split
    into trial/actor workers (``ray::`` processes, ``default_worker.py``) and the rest (the head)."""
    import psutil

    head = workers = 0.0
    try:
        own = driver.memory_info().rss
        children = driver.children(recursive=True)
    except psutil.Error:
        return 0.0, 0.0, 0.0
    for child in children:
        try:
            rss = child.memory_info().rss
            line = " ".join(child.cmdline()[:3])
        except psutil.Error:
            continue
        if "ray::" in line or "default_worker.py" in line or child.name().startswith("ray::"):
            workers += rss
        else:
            head += rss
    return own / 2**20, head / 2**20, workers / 2**20


def run_experiment(trials: int, parallel: int, storage: Path) -> tuple[list[dict[str, float]], float, int]:
    """Run the CLI; return the samples (t, done, MB), its wall seconds and exit code."""
    import psutil
    import yaml

    spec_file = storage / "scale.yaml"
    spec_file.write_text(yaml.safe_dump(spec(trials, parallel)))
    samples: list[dict[str, float]] = []
    start = time.monotonic()
    child = subprocess.Popen(_cli("run", str(spec_file), "--storage-path", str(storage), "--no-report"),
                             env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    driver = psutil.Process(child.pid)
    tail: list[str] = []
    assert child.stderr is not None
    for line in child.stderr:
        match = PROGRESS.match(line)
        if match:
            driver_mb, head_mb, workers_mb = _rss_mb(driver)
            samples.append({"t": float(match.group(1)), "done": int(match.group(2)), "driver_mb": driver_mb,
                            "head_mb": head_mb, "workers_mb": workers_mb})
        else:
            tail = (tail + [line])[-40:]
    code = child.wait()
    wall = time.monotonic() - start
    if code not in (0, 1):  # 1: the experiment ran but did not succeed (the caller checks)
        sys.stderr.write("".join(tail))
        raise RuntimeError(f"raytune-k8s run exited with {code}")
    return samples, wall, code


def block_costs(samples: list[dict[str, float]], trials: int, block: int) -> list[float]:
    """ms per trial of each block of ``block`` trials: the time the done count crossed each
    block boundary, interpolated linearly between progress lines."""
    points = [(0.0, 0)] + [(s["t"], int(s["done"])) for s in samples]

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
import sys, time
from pathlib import Path
from raytune_k8s.spec import load_document
from raytune_k8s.results.summary import build_summary, trial_rows, write_summary
d = Path(sys.argv[1])
spec = load_document(d / "experiment.yaml").spec
t, c = time.monotonic(), time.process_time()
write_summary(d, build_summary(spec, trial_rows(d, spec), wall_s=0.0, experiment_dir=d))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--block", type=int, default=1000, help="trials per block (default 1000)")
    parser.add_argument("--keep", type=Path, help="run in this storage folder and keep the experiment")
    parser.add_argument("--retime", type=Path, metavar="JSON",
                        help="time the commands again on the experiment kept with --keep (its folder) and rewrite "
                             "that run's JSON, md and png into --out")
    args = parser.parse_args(argv)
    if args.retime:
        data = json.loads(args.retime.read_text())
        if args.keep is None:
            parser.error("--retime needs --keep (the storage folder of that run)")
        data.update(time_commands(args.keep / "scale", data["trials"]))
        data["retimed"] = True
        paths = write_outputs(args.out, NAME, data, markdown(data), figure(data))
        print(text_table(["figure", "value"], figure_rows(data)))
        print(f"wrote {', '.join(map(str, paths))}")
        return 0
    if args.smoke:
        args.trials, args.block = 60, 20
    start = time.monotonic()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="rtk8s-scale-") as tmp:
        storage = args.keep or Path(tmp)
        storage.mkdir(parents=True, exist_ok=True)
        samples, wall, code = run_experiment(args.trials, args.parallel, storage)
        experiment_dir = storage / "scale"
        summary = json.loads((experiment_dir / "summary.json").read_text())
        if summary["trials"] != args.trials:
            raise RuntimeError(f"the experiment ended with {summary['trials']} of {args.trials} trials (exit {code})")
        load_run = [round(x, 2) for x in os.getloadavg()]
        timings = time_commands(experiment_dir, args.trials)
    blocks = block_costs(samples, args.trials, args.block)
    data: dict[str, Any] = {
        "benchmark": NAME, "smoke": args.smoke, "trials": args.trials, "parallel": args.parallel, "block": args.block,
        "run_wall_s": wall, "in_run_s": samples[-1]["t"] if samples else None,
        "first_trial_done_s": next((s["t"] for s in samples if s["done"] >= 1), None),
        "block_ms_per_trial": blocks,
        "first_block_ms_per_trial": blocks[0], "last_block_ms_per_trial": blocks[-1],
        "last_over_first": blocks[-1] / blocks[0],
        "kb_per_trial": slope_kb(samples, "driver_mb"),
        "head_kb_per_trial": slope_kb(samples, "head_mb"),
        "driver_peak_mb": max(s["driver_mb"] for s in samples),
        "head_peak_mb": max(s["head_mb"] for s in samples),
        **timings,
        "loadavg_before": load_before, "loadavg_after_run": load_run,
        "samples": samples,
    }
    rows = [[f"trials {i * args.block + 1}-{(i + 1) * args.block}", ms] for i, ms in enumerate(blocks)]
    text = (f"\nScale: {args.trials} trivial trials, P={args.parallel}\n{text_table(['block', 'ms/trial'], rows)}\n\n"
            + text_table(["figure", "value"], figure_rows(data)))
    publish(args.out, NAME, data, start, argv, ["raytune_k8s", "ray"], text, markdown, figure)
    return 0


def figure_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [
        ["last block / first block (goal <= 1.2)", data["last_over_first"]],
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
        ["`raytune-k8s report DIR`, wall s (goal <= 10)", data["report_s"]],
        ["`raytune-k8s report DIR`, CPU s", data["report_cpu_s"]],
        ["report.html, MB", data["report_mb"]],
        ["first trial done, s after the run's Tuner started", data["first_trial_done_s"]],
        ["`raytune-k8s run` wall time, s (cold start, embedded Ray)", data["run_wall_s"]],
    ]


def markdown(data: dict[str, Any]) -> str:
    env = data["environment"]
    blocks = [[f"{i * data['block'] + 1}-{(i + 1) * data['block']}", ms] for i, ms in enumerate(data["block_ms_per_trial"])]
    return "\n".join([
        "# Scale",
        "",
        f"`raytune-k8s run` of {data['trials']} trivial Branin trials (random search, P={data['parallel']}, 1 CPU each) "
        "in a child process with its embedded local Ray, run to the end. Memory is sampled at each progress line.",
        "",
        *([data["note"], ""] if data.get("note") else []),
        "## Cost per trial, by block",
        "",
        markdown_table(["trials", "ms/trial"], blocks),
        "",
        "## Memory, directory and the commands on it",
        "",
        markdown_table(["figure", "value"], figure_rows(data)),
        "",
        f"Load average (1/5/15 min) before the run {'/'.join(map(str, data['loadavg_before']))}, after it "
        f"{'/'.join(map(str, data['loadavg_after_run']))}, while the commands were timed "
        f"{'/'.join(map(str, data['loadavg_at_timings']))}: "
        f"on a {env['cpus']}-CPU machine (the run's own processes count too; anything above that is other "
        "work, which inflates every time here). "
        f"{env['date_utc']}; `{env['command']}`. Chart: `{NAME}.png`; samples: `{NAME}.json`.",
    ])


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
    done = [s["done"] for s in data["samples"]]
    for key, label in (("driver_mb", "driver"), ("head_mb", "Ray head"), ("workers_mb", "workers")):
        ax2.plot(done, [s[key] for s in data["samples"]], label=label)
    ax2.set_xlabel("trials done")
    ax2.set_ylabel("RSS, MB")
    ax2.legend(fontsize=8)
    ax2.set_title(f"memory; driver +{fmt(data['kb_per_trial'])} KB/trial", fontsize=9)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
