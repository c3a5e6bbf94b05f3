"""Katib's TensorFlowEvent collector: scalars from the tfevents files under a directory,
read with tbparse (TensorBoard's own reader underneath)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .base import Collector, Observation


class TensorFlowEventCollector(Collector):
    local_path: Path  # always set here (the base's None is for collectors without a file)
    moves_parents = True  # Katib reads a folder; programs are often told the folder above it

    def __init__(self, metric_names: Iterable[str], katib_path: str, local_path: Path):
        super().__init__(metric_names)
        self.katib_path, self.local_path = katib_path, local_path
        self._seen = 0

    def prepare(self) -> None:
        self.local_path.mkdir(parents=True, exist_ok=True)

    def poll(self) -> list[list[Observation]]:
        return []  # event files are read once the trial has written them all (flush)

    def flush(self) -> list[list[Observation]]:
        if not any(self.local_path.rglob("*tfevents*")):
            return []
        from tbparse import SummaryReader

        frame = SummaryReader(str(self.local_path), pivot=False, extra_columns={"wall_time"}).scalars
        if frame.empty:
            return []
        # Katib matches a tag by its last path element too ("train/loss" is "loss").
        frame = frame.assign(name=frame["tag"].str.rsplit("/", n=1).str[-1]).sort_values(["step", "wall_time"])
        groups: dict[int, list[Observation]] = {}  # one report per step, as the trial logged them
        for step, tag, name, value in zip(frame["step"], frame["tag"], frame["name"], frame["value"]):
            key = tag if tag in self.metric_names else name
            obs = self.accept(key, value)
            if obs is not None:
                groups.setdefault(int(step), []).append(obs)
        return [groups[step] for step in sorted(groups)]
