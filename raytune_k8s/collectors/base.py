"""What every collector shares: observations, the per-trial path it rewrites, and number checks."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, NamedTuple


#: An absolute path in a command's argument or env value (up to a space, quote, comma, ...).
_PATH = re.compile(r"(?<![\w.~-])/[^\s'\",;:=]*")


class Observation(NamedTuple):
    name: str
    value: float | str  # text, as Katib keeps it, when a filter captured a value that is no number


class Collector:
    """Reads a trial's metrics. ``on_line`` sees each stdout line; ``poll`` reads files the trial
    writes (called often while it runs, and ``flush`` once after it exits). Observations come in
    groups, one per line or record: each group with the objective is one report."""

    #: The path Katib's pod used, and this trial's own copy of it (None: nothing to rewrite).
    katib_path: str | None = None
    local_path: Path | None = None
    #: A folder Katib reads (TensorFlow events): a folder above it in a command moves too.
    moves_parents: bool = False

    def __init__(self, metric_names: Iterable[str]):
        self.metric_names = list(metric_names)
        self.rejected: list[str] = []

    def env(self) -> dict[str, str]:
        """Environment variables the trial process needs."""
        return {}

    def prepare(self) -> None:
        if self.local_path is not None:
            target = self.local_path if self.katib_path and self.katib_path.endswith("/") else self.local_path.parent
            target.mkdir(parents=True, exist_ok=True)

    def on_line(self, line: str) -> list[Observation]:
        """What one stdout line reports (one group of observations)."""
        return []

    def poll(self) -> list[list[Observation]]:
        """New groups of observations (one per line or record) in the files the trial writes."""
        return []

    def flush(self) -> list[list[Observation]]:
        """After the trial's process has exited: whatever is left to read."""
        return self.poll()

    def close(self) -> None:
        """Release what :meth:`prepare` started (called once the trial's process has ended)."""

    def rewrite(self, text: str) -> str:
        """``text`` (an argument or env value) with Katib's path replaced by this trial's: the
        path itself, a path under it, or (``moves_parents``) a folder above it (a program told
        ``--log-path=/logs`` that writes ``/logs/test``, Katib's folder), each moved to the
        trial's copy of the tree."""
        if not self.katib_path or self.local_path is None:
            return text
        katib = self.katib_path.rstrip("/")
        root = str(self.local_path)[: -len(katib)] if str(self.local_path).endswith(katib) else None

        def moved(match: re.Match[str]) -> str:
            path = match.group(0)
            bare = path.rstrip("/")
            if bare == katib or path.startswith(katib + "/"):
                return str(self.local_path) + path[len(katib):]
            if self.moves_parents and root is not None and bare and katib.startswith(bare + "/"):
                return root + path
            return path

        return _PATH.sub(moved, text)

    def accept(self, name: str, raw: str) -> Observation | None:
        """An observation if ``name`` is wanted: a finite number, or text that is no number at all
        (DARTS' ``Best-Genotype=Genotype(...)``); NaN and infinities are remembered instead (the
        runner warns once per trial)."""
        if name not in self.metric_names:
            return None
        try:
            value = float(raw)
        except (TypeError, ValueError):
            text = str(raw).strip() if raw is not None else ""
            if not text:
                self.rejected.append(f"{name}={raw!r}")
                return None
            return Observation(name, text)
        if not math.isfinite(value):
            self.rejected.append(f"{name}={raw}")
            return None
        return Observation(name, value)
