"""``raytune-k8s``: argument parsing only; the work is done by the package's functions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from .experiment import ExperimentExistsError, load_spec, resume, run
from .spec import SpecError
from .summary import SUCCEEDED, SUMMARY_FILE

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (SpecError, ExperimentExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raytune-k8s", description="Katib-style tuning experiments on Ray Tune.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run an experiment file")
    p.add_argument("spec", help="experiment YAML file")
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else an embedded local Ray)")
    p.add_argument("--storage-path", help="where experiments are stored (default: $RAYTUNE_K8S_STORAGE or ~/ray_results)")
    p.add_argument("--resume-if-exists", action="store_true", help="continue the experiment if its directory already exists")
    p.set_defaults(func=_run)

    p = sub.add_parser("validate", help="check an experiment file and exit")
    p.add_argument("spec")
    p.set_defaults(func=_validate)

    p = sub.add_parser("resume", help="continue an interrupted experiment")
    p.add_argument("experiment_dir")
    p.add_argument("--address")
    p.set_defaults(func=_resume)

    p = sub.add_parser("results", help="show an experiment's trials, best first")
    p.add_argument("experiment_dir")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_results)
    return parser


def _run(args: argparse.Namespace) -> int:
    summary = run(args.spec, address=args.address, storage_path=args.storage_path, resume_if_exists=args.resume_if_exists)
    return _report(summary)


def _resume(args: argparse.Namespace) -> int:
    return _report(resume(args.experiment_dir, address=args.address))


def _validate(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    print(f"{args.spec}: ok ({spec.name}: {spec.algorithm.name}, {len(spec.parameters)} parameters, "
          f"{spec.max_trials} trials, {spec.parallel_trials} in parallel)")
    return 0


def _results(args: argparse.Namespace) -> int:
    path = Path(args.experiment_dir).expanduser() / SUMMARY_FILE
    if not path.exists():
        raise SpecError("", f"{path} does not exist (is this an experiment directory that has run?)")
    summary = json.loads(path.read_text())
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)
    return 0


def _report(summary: dict[str, Any]) -> int:
    print_table(summary)
    return 0 if summary["status"] == SUCCEEDED else EXIT_FAILED


def print_table(summary: dict[str, Any]) -> None:
    console = Console()
    objective = summary["objective"]["metric"]
    table = Table(title=f"{summary['name']}: trials, best first")
    rows = summary["trial_table"]
    params = list(rows[0]["params"]) if rows else []
    for column in ["trial", "status", *params, objective, "iter"]:
        table.add_column(column)
    for row in rows:
        value = "-" if row["objective"] is None else f"{row['objective']:.4g}"
        cells = [_fmt(row["params"].get(p)) for p in params]
        table.add_row(row["trial_id"], row["status"], *cells, value, str(row["iterations"]))
    console.print(table)
    for failed in summary["failed_trials"]:
        console.print(f"[red]trial {failed['trial_id']} failed:[/red] {failed['error']}", highlight=False)
    best = summary["best"]
    best_text = f"best {objective}={best['metrics'].get(objective, float('nan')):.4g} with {best['params']}" if best else "no result"
    console.print(
        f"{summary['status']} ({summary['reason']}): {summary['trials']} trials completed, {summary['failed']} failed, "
        f"{summary['wall_s']:.1f} s; {best_text}\nsummary: {Path(summary['experiment_dir']) / SUMMARY_FILE}",
        highlight=False,
    )


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
