"""The summary for people: a rich table of the trials, best first, and the outcome line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .summary import SUMMARY_FILE


#: The table shows the best trials; the rest are in summary.json (``results --json``).
MAX_ROWS = 25


def print_table(summary: dict[str, Any], max_rows: int = MAX_ROWS) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    objective = summary["objective"]["metric"]
    rows = summary["trial_table"]
    shown = rows[:max_rows]
    more = len(rows) - len(shown)
    title = f"{summary['name']}: trials, best first" + (f" (the best {len(shown)} of {len(rows)})" if more else "")
    table = Table(title=title, caption=f"{more} more in {SUMMARY_FILE} (raytune-k8s results --json)" if more else None)
    params = list(rows[0]["params"]) if rows else []
    others = [o["metric"] for o in summary.get("objectives", [])[1:]] + [c["metric"] for c in summary.get("constraints", [])]
    others = [m for m in dict.fromkeys(others) if m != objective]
    feasibility = ["feasible"] if summary.get("constraints") else []
    for column in ["trial", "status", *params, objective, *others, *feasibility, "iter"]:
        table.add_column(column)
    for row in shown:
        value = "-" if row["objective"] is None else _fmt(row["objective"])
        cells = [_fmt(row["params"].get(p)) for p in params]
        extra = [_fmt(row["metrics"].get(m, "-")) for m in others]
        extra += ["yes" if row.get("feasible") else "no" for _ in feasibility]
        table.add_row(row["trial_id"], row["status"], *cells, value, *extra, str(row["iterations"]))
    console.print(table)
    if "pareto_front" in summary:
        print_front(summary, console)
    for failed in summary["failed_trials"]:
        kind = "" if failed.get("status", "Failed") == "Failed" else f" ({failed['status']})"
        console.print(f"[red]trial {failed['trial_id']} failed{kind}:[/red] {failed['error']}", highlight=False, soft_wrap=True)
    best = summary["best"]
    best_value = best["metrics"].get(objective, float("nan")) if best else None
    best_text = f"best {objective}={_fmt(best_value)} with {best['params']}" if best else "no result"
    if len(summary.get("objectives", [])) > 1:
        volume = summary.get("hypervolume") or {}
        best_text = (f"Pareto front of {len(summary['pareto_front'])} trials, hypervolume {_fmt(volume.get('value'))}"
                     if summary["pareto_front"] else "no feasible trial")
    counts = ", ".join(f"{summary.get(k, 0)} {label}" for k, label in (
        ("succeeded", "succeeded"), ("early_stopped", "early stopped"), ("failed", "failed")))
    console.print(
        f"{summary['status']} ({summary['reason']}): {summary.get('trials_total', summary['trials'])} trials ({counts}), "
        f"{summary['wall_s']:.1f} s; {best_text}\nsummary: {Path(summary['experiment_dir']) / SUMMARY_FILE}",
        highlight=False, soft_wrap=True,
    )


def print_front(summary: dict[str, Any], console: Any) -> None:
    """The Pareto front: each trial on it, its parameters and every objective's value."""
    from rich.table import Table

    objectives = [f"{o['metric']} ({'max' if o['direction'] == 'maximize' else 'min'})" for o in summary["objectives"]]
    limits = "; ".join(_bound(c) for c in summary.get("constraints", []))
    front = summary["pareto_front"]
    title = f"{summary['name']}: Pareto front, {len(front)} of {summary.get('feasible', 0)} feasible trials"
    caption = (f"constraints: {limits}; {summary.get('infeasible', 0)} trials infeasible" if limits else None)
    table = Table(title=title, caption=caption)
    params = list(front[0]["params"]) if front else []
    for column in ["trial", *params, *objectives]:
        table.add_column(column)
    first = summary["objectives"][0]
    for row in sorted(front, key=lambda r: r["values"][first["metric"]], reverse=first["direction"] == "maximize"):
        table.add_row(row["trial_id"], *[_fmt(row["params"].get(p)) for p in params],
                      *[_fmt(row["values"][o["metric"]]) for o in summary["objectives"]])
    console.print(table)


def _bound(constraint: dict[str, Any]) -> str:
    low, high, metric = constraint.get("min"), constraint.get("max"), constraint["metric"]
    if low is not None and high is not None:
        return f"{_fmt(low)} <= {metric} <= {_fmt(high)}"
    return f"{metric} <= {_fmt(high)}" if high is not None else f"{metric} >= {_fmt(low)}"


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # a count reported as a number (a network's weights)
    return f"{value:.4g}" if isinstance(value, float) else str(value)  # text metrics (a genotype) as they are
