"""Shared helpers for the benchmarks: command line, environment facts, md/json/png output."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def arg_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes; a benchmark adds its own sizes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"output folder (default {RESULTS_DIR})")
    return parser


def map_tasks(run: Callable[[Any], Any], tasks: Sequence[Any], jobs: int,
              initializer: Callable[[], None] | None = None) -> Iterator[Any]:
    """``run`` over ``tasks`` in order: in ``jobs`` spawned processes (a clean interpreter each:
    no inherited Ray connection or threads), or here when ``jobs`` is 1. Yields each result."""
    if jobs <= 1:
        for task in tasks:
            yield run(task)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=initializer) as pool:
        yield from pool.map(run, tasks)


def environment(module: str, argv: Sequence[str], packages: Sequence[str] = ()) -> dict[str, Any]:
    """Where the figures were measured: machine, Python and package versions, date."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        # Other work on the machine skews timings: the load average when the figures were written.
        "loadavg_1_5_15m": [round(x, 2) for x in os.getloadavg()],
        "packages": versions,
        "command": " ".join(["python", "-m", module, *argv]),
    }


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: ``digits`` significant digits, ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 10 ** digits:  # 2090, not 2.09e+03
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are formatted with :func:`fmt`."""
    cells = [[fmt(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table aligned for a terminal."""
    cells = [list(headers)] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def write_outputs(out: Path, name: str, data: dict[str, Any], markdown: str, figure: Any) -> list[Path]:
    """Write ``name``.json, .md and .png into ``out``; return the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.json", out / f"{name}.md", out / f"{name}.png"]
    paths[0].write_text(json.dumps(_clean(data), indent=2, allow_nan=False) + "\n")
    paths[1].write_text(markdown.rstrip() + "\n")
    figure.savefig(paths[2], dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return paths


def publish(
    out: Path, name: str, data: dict[str, Any], started: float, argv: Sequence[str] | None, packages: Sequence[str],
    text: str, markdown: Callable[[dict[str, Any]], str], figure: Callable[[dict[str, Any]], Any],
    module: str | None = None,
) -> None:
    """Stamp a finished run (runtime since ``started``, environment), print ``text``, write the
    json/md/png and say where. ``module``: the benchmark's module when the files are named
    otherwise (``scale_100k`` by ``benchmarks.scale``)."""
    data["runtime_s"] = time.monotonic() - started
    data["environment"] = environment(f"benchmarks.{module or name}", list(argv if argv is not None else sys.argv[1:]), packages)
    print(text)
    paths = write_outputs(out, name, data, markdown(data), figure(data))
    print(f"\n{data['runtime_s']:.0f} s; wrote {', '.join(map(str, paths))}")


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panel_grid(count: int, width: float, height: float = 4.2) -> tuple[Any, Any, Any]:
    """pyplot, a figure and its axes (flat) for ``count`` panels, two to a row."""
    plt = pyplot()
    cols = 2 if count > 1 else 1
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    return plt, fig, list(axes.flat)
