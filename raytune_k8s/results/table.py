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
    for column in ["trial", "status", *params, objective, "iter"]:
        table.add_column(column)
    for row in shown:
        value = "-" if row["objective"] is None else f"{row['objective']:.4g}"
        cells = [_fmt(row["params"].get(p)) for p in params]
        table.add_row(row["trial_id"], row["status"], *cells, value, str(row["iterations"]))
    console.print(table)
    for failed in summary["failed_trials"]:
        kind = "" if failed.get("status", "Failed") == "Failed" else f" ({failed['status']})"
        console.print(f"[red]trial {failed['trial_id']} failed{kind}:[/red] {failed['error']}", highlight=False, soft_wrap=True)
    best = summary["best"]
    best_value = best["metrics"].get(objective, float("nan")) if best else None
    best_text = f"best {objective}={_fmt(best_value)} with {best['params']}" if best else "no result"
    counts = ", ".join(f"{summary.get(k, 0)} {label}" for k, label in (
        ("succeeded", "succeeded"), ("early_stopped", "early stopped"), ("failed", "failed")))
    console.print(
        f"{summary['status']} ({summary['reason']}): {summary.get('trials_total', summary['trials'])} trials ({counts}), "
        f"{summary['wall_s']:.1f} s; {best_text}\nsummary: {Path(summary['experiment_dir']) / SUMMARY_FILE}",
        highlight=False, soft_wrap=True,
    )


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)  # text metrics (a genotype) as they are
