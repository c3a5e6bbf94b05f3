"""Katib's File collector: a TEXT file read line by line with the StdOut filters, or a JSON
file of one object per line (``{"loss": "0.12", "timestamp": ...}``). Each trial writes its own
copy of the file; the collector reads what was appended since the last poll."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from .base import Collector, Observation
from .stdout import compile_filters, find_pairs

_NOT_METRICS = {"timestamp", "global_step", "trial", "step", "epoch"}


class _TailedFile(Collector):
    local_path: Path  # always set here (the base's None is for collectors without a file)

    def __init__(self, metric_names: Iterable[str], katib_path: str | None, local_path: Path):
        super().__init__(metric_names)
        self.katib_path, self.local_path = katib_path, local_path
        self._offset = 0
        self._partial = ""

    def poll(self) -> list[list[Observation]]:
        try:
            with open(self.local_path, "r", errors="replace") as f:
                f.seek(self._offset)
                chunk = f.read()
                self._offset = f.tell()
        except FileNotFoundError:
            return []
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()  # an unfinished last line waits for the next poll
        return [group for line in lines if (group := self.parse(line))]

    def flush(self) -> list[list[Observation]]:
        """After the trial exits: the last line, even without a newline."""
        out = self.poll()
        if self._partial:
            group = self.parse(self._partial)
            self._partial = ""
            if group:
                out.append(group)
        return out

    def parse(self, line: str) -> list[Observation]:
        raise NotImplementedError


class TextFileCollector(_TailedFile):
    def __init__(self, metric_names: Iterable[str], katib_path: str, local_path: Path, filters: Iterable[str] = ()):
        super().__init__(metric_names, katib_path, local_path)
        self.patterns = compile_filters(filters)

    def parse(self, line: str) -> list[Observation]:
        return [o for name, raw in find_pairs(line, self.patterns) if (o := self.accept(name, raw)) is not None]


class JsonFileCollector(_TailedFile):
    def parse(self, line: str) -> list[Observation]:
        line = line.strip()
        if not line:
            return []
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            self.rejected.append(f"a line that is not JSON: {line[:80]!r}")
            return []
        if not isinstance(record, dict):
            return []
        return [o for name, raw in record.items() if name not in _NOT_METRICS and (o := self.accept(name, raw)) is not None]
