"""Command trials: run a program with ``${trialParameters.NAME}`` filled in and read its metrics
from stdout lines ``name=value``, as Katib's StdOut metrics collector does."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections import deque
from typing import Any, Callable, Iterable

_PLACEHOLDER = re.compile(r"\$\{trialParameters\.([\w-]+)\}")
_METRIC = re.compile(r"([\w-]+)\s*=\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


def placeholders(command: str | list[str] | None) -> list[str]:
    """The parameter names a command refers to."""
    parts = [command] if isinstance(command, str) else list(command or [])
    return [m.group(1) for part in parts for m in _PLACEHOLDER.finditer(part)]


def render(command: str | list[str], values: dict[str, Any]) -> list[str]:
    """The argument vector with every placeholder replaced."""
    parts = shlex.split(command) if isinstance(command, str) else list(command)
    return [_PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), part) for part in parts]


def parse_metrics(line: str, names: Iterable[str]) -> dict[str, float]:
    """``name=value`` pairs on one line, for the metric names asked for."""
    wanted = set(names)
    return {m.group(1): float(m.group(2)) for m in _METRIC.finditer(line) if m.group(1) in wanted}


def command_trainable(command: str | list[str], metric_names: list[str], fixed: dict[str, Any]) -> Callable[[dict], None]:
    """A Tune trainable that runs ``command`` and reports each time the objective is printed.

    ``metric_names[0]`` is the objective; the others are reported alongside when seen.
    """
    objective = metric_names[0]

    def run_command(config: dict[str, Any]) -> None:
        from ray import tune

        argv = render(command, {**fixed, **config})
        cwd = os.environ.get("TUNE_ORIG_WORKING_DIR", os.getcwd())
        tail: deque[str] = deque(maxlen=20)
        seen: dict[str, float] = {}
        reported = 0
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            tail.append(line.rstrip())
            found = parse_metrics(line, metric_names)
            seen.update(found)
            if objective in found:
                tune.report(dict(seen))
                reported += 1
        status = proc.wait()
        if status != 0:
            raise RuntimeError(f"command {argv!r} exited with status {status}; last output: " + " | ".join(tail))
        if not reported:
            raise RuntimeError(f"command {argv!r} printed no '{objective}=<value>' line")

    run_command.__name__ = run_command.__qualname__ = "command"
    return run_command
