"""Katib's StdOut collector: ``name=value`` pairs (or the user's ``metricsFormat`` regexes) in
the lines a trial prints. Timestamped log lines parse too: the filter finds the pairs anywhere."""

from __future__ import annotations

import re
from typing import Iterable

from .base import Collector, Observation

#: Katib's default filter: a name of word characters, '|' and '-', '=', a number.
DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
# The same matches, in linear time: a name starts only where no name character precedes it, and
# is never re-read (Python's backtracking made a 1,000-character word cost a million steps).
_DEFAULT_FAST = r"(?<![\w|-])([\w|-]++)\s*+=\s*+([+-]?\d*(?:\.\d+)?(?:[Ee][+-]?\d+)?)"
#: The pair with a value that is not a number, so such values can be warned about.
_ANY_VALUE = r"(?<![\w|-])([\w|-]++)\s*+=\s*+(nan|NaN|inf|-inf|\+inf|Infinity|-Infinity)\b"


def compile_filters(filters: Iterable[str]) -> list[re.Pattern[str]]:
    return [re.compile(f) for f in (list(filters) or [_DEFAULT_FAST, _ANY_VALUE])]


def find_pairs(line: str, patterns: list[re.Pattern[str]]) -> list[tuple[str, str]]:
    """Every ``(name, value)`` the filters find in ``line``, left to right."""
    found: list[tuple[int, str, str]] = []
    taken: set[int] = set()
    for pattern in patterns:
        for m in pattern.finditer(line):
            if m.start() in taken or not m.group(2):
                continue
            taken.add(m.start())
            found.append((m.start(), m.group(1).strip(), m.group(2).strip()))
    return [(name, value) for _, name, value in sorted(found)]


class StdOutCollector(Collector):
    def __init__(self, metric_names: Iterable[str], filters: Iterable[str] = ()):
        super().__init__(metric_names)
        self.patterns = compile_filters(filters)

    def on_line(self, line: str) -> list[Observation]:
        out = []
        for name, raw in find_pairs(line, self.patterns):
            obs = self.accept(name, raw)
            if obs is not None:
                out.append(obs)
        return out
