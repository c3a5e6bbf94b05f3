"""The trials on each worker node over time (the one plot no library draws), with plotly.

A node is the ``hostname`` and ``node_ip`` that Ray Tune records with every result: on KubeRay
the hostname is the worker pod's name, which is unique while the pod lives, and the IP tells
apart two machines that happen to share a hostname. (On the simulated cluster every fake node
runs on this machine, so they all share one hostname and IP and show as one node; their trial
processes still show as separate lanes.) Within a node, trials are packed into lanes: a trial
goes to the lane its worker process (``pid``) used last if that lane is free, else to the first
free lane, so a node shows as many lanes as it ran trials at once. The panel above counts the
trials running at each moment, which shows the ramp-up as the autoscaler adds workers and the
ceiling that parallelTrialCount or the tenant quota sets.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .experiment_dir import TrialRecord

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Colours per Katib status (unknown statuses are grey).
STATUS_COLOURS = {
    "Succeeded": "#2ca02c",
    "EarlyStopped": "#ff7f0e",
    "Failed": "#d62728",
    "MetricsUnavailable": "#9467bd",
    "Running": "#1f77b4",
}


def lanes(trials: Sequence[TrialRecord]) -> list[tuple[TrialRecord, str]]:
    """Each timed trial with its lane label ``node · lane k``, in start order."""
    timed = sorted((t for t in trials if t.start is not None and t.end is not None), key=lambda t: t.start or 0.0)
    free_at: dict[str, list[float]] = defaultdict(list)  # node -> lane -> end of its last trial
    pid_lane: dict[tuple[str, int | None], int] = {}
    out = []
    for t in timed:
        ends = free_at[t.node]
        start, end = float(t.start or 0.0), float(t.end or 0.0)
        lane = pid_lane.get((t.node, t.pid))
        if lane is None or ends[lane] > start:
            lane = next((i for i, e in enumerate(ends) if e <= start), len(ends))
            if lane == len(ends):
                ends.append(end)
        ends[lane] = max(end, start)
        pid_lane[(t.node, t.pid)] = lane
        out.append((t, f"{t.node} · lane {lane + 1}"))
    return out


def running_counts(trials: Sequence[TrialRecord]) -> tuple[list[float], list[int]]:
    """A step function: the number of trials running after each start or end."""
    events = sorted(
        [(float(t.start), 1) for t in trials if t.start is not None and t.end is not None]
        + [(float(t.end), -1) for t in trials if t.start is not None and t.end is not None]
    )
    times, counts, running = [], [], 0
    for when, delta in events:
        running += delta
        times.append(when)
        counts.append(running)
    return times, counts


#: The most trials drawn as bars, and points of the running count: beyond it every k-th trial
#: (by start) is drawn and the count keeps each stretch's peak (100,000 trials drawn whole made
#: 46 MB of the page).
TIMELINE_POINTS = 5000


def thinned_counts(times: Sequence[float], counts: Sequence[int], most: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The running count at no more than ``most`` points (default :data:`TIMELINE_POINTS`, read
    at the call, as the bars read it): each point starts a stretch of equal time and holds the
    highest count within it, so no peak is lost."""
    most = TIMELINE_POINTS if most is None else most
    t, c = np.asarray(times, dtype=float), np.asarray(counts)
    if len(t) <= most:
        return t, c
    starts = np.unique(np.searchsorted(t, np.linspace(t[0], t[-1], most), side="left"))
    return t[starts], np.maximum.reduceat(c, starts)


def timeline_figure(trials: Sequence[TrialRecord]) -> "go.Figure":
    """Trials per node lane as horizontal bars coloured by status, under the running count."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    placed = lanes(trials)
    labels = sorted({lane for _, lane in placed}, key=_lane_key)
    every = -(-len(placed) // TIMELINE_POINTS)  # lanes are placed with every trial, drawn for a sample
    drawn = placed[::every] if every > 1 else placed
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.25, 0.75], vertical_spacing=0.04)
    times, counts = thinned_counts(*running_counts(trials))
    fig.add_trace(
        go.Scatter(x=np.asarray(times) * 1000, y=np.asarray(counts), mode="lines", line={"shape": "hv", "color": "#444"},
                   name="trials running", hovertemplate="%{y} running at %{x}<extra></extra>"),
        row=1, col=1,
    )
    by_status: dict[str, list[tuple[TrialRecord, str]]] = defaultdict(list)
    for trial, lane in drawn:
        by_status[trial.status].append((trial, lane))
    for status, items in sorted(by_status.items()):
        # One trace per status: each trial a thick segment from start to end, then a NaN gap,
        # all in numpy arrays (plotly sends those as typed arrays: fast for 10,000 trials).
        xs = np.full(3 * len(items), np.nan)
        xs[0::3] = [1000 * (t.start or 0.0) for t, _ in items]  # ms since the epoch: a date axis
        xs[1::3] = [1000 * (t.end or 0.0) for t, _ in items]
        ys = np.repeat(np.array([lane for _, lane in items], dtype=object), 3)
        hover = np.repeat(np.array([
            f"trial {t.trial_id} ({status})<br>{t.node}, pid {t.pid}<br>"
            f"{(t.end or 0) - (t.start or 0):.1f} s, {t.iterations} iterations" for t, _ in items
        ], dtype=object), 3)
        fig.add_trace(
            go.Scatter(x=xs, y=ys, text=hover, mode="lines", name=status, connectgaps=False,
                       line={"width": 10 if len(labels) < 30 else 4, "color": STATUS_COLOURS.get(status, "#7f7f7f")},
                       hovertemplate="%{text}<extra></extra>"),
            row=2, col=1,
        )
    nodes = len({t.node for t, _ in placed})
    fig.update_yaxes(title_text="running", row=1, col=1)
    fig.update_xaxes(type="date", row=1, col=1)
    fig.update_xaxes(type="date", title_text="time (UTC)", row=2, col=1)
    fig.update_yaxes(categoryorder="array", categoryarray=labels[::-1], type="category", row=2, col=1)
    shown = f"1 in {every} of {len(placed):,} trials drawn" if every > 1 else f"{len(placed):,} trials"
    fig.update_layout(
        title=f"Trials per worker node over time ({shown} on {_count(nodes, 'node')}, {_count(len(labels), 'lane')})",
        height=min(260 + 22 * len(labels), 1400),
        legend_title_text="status",
        margin={"l": 10, "r": 10},
    )
    return fig


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _lane_key(label: str) -> tuple[str, int]:
    node, _, lane = label.rpartition(" · lane ")
    return node, int(lane)
