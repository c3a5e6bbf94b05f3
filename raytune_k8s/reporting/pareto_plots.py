"""The report's plots for several objectives and constraints: Optuna's Pareto-front plot (the
infeasible trials greyed, the feasible ones coloured by trial) and its hypervolume history.

Both draw a multi-objective Optuna study made from the summary's trial table: each finished
trial with every objective's value (by its metric strategy, as the summary has them) and, with
constraints, each bound's violation (Optuna's constraint attribute: ``<= 0`` is met).
"""

from __future__ import annotations

import random
import warnings
from typing import TYPE_CHECKING, Any

from .experiment_dir import ExperimentRecord

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

#: At most this many trials are drawn (the front always; the rest sampled, seeded).
MAX_POINTS = 5_000
#: The hypervolume history recomputes the front as trials arrive: at most this many trials.
MAX_HISTORY = 2_000


def has_several_objectives(record: ExperimentRecord) -> bool:
    return "pareto_front" in record.summary


def pareto_study(record: ExperimentRecord, limit: int | None = MAX_POINTS, *, storage: Any = None,
                 study_name: str | None = None) -> tuple["optuna.Study", str | None]:
    """The finished trials as a multi-objective study, in run order (a sample above ``limit``;
    all when None), in memory unless ``storage`` is given (``raytune-k8s export``)."""
    import optuna

    from .study import ATTR_STATUS, ATTR_TRIAL_ID

    from ..spec.objectives import Constraint, ObjectiveTarget, Targets

    summary = record.summary
    targets = Targets(tuple(ObjectiveTarget(metric=o["metric"], direction=o["direction"]) for o in summary["objectives"]),
                      tuple(Constraint(**{k: v for k, v in c.items() if k in ("metric", "min", "max")})
                            for c in summary.get("constraints", [])))
    rows = [r for r in summary["trial_table"] if r.get("status") in ("Succeeded", "EarlyStopped")
            and targets.values(r.get("metrics") or {}) is not None]
    note = None
    if limit is not None and len(rows) > limit:
        front = {p["trial_id"] for p in summary["pareto_front"]}
        rest = [r for r in rows if r["trial_id"] not in front]
        kept = {r["trial_id"] for r in random.Random(0).sample(rest, max(0, limit - len(front)))} | front
        note = f"{len(kept):,} of {len(rows):,} trials drawn: the whole front and a seeded sample of the rest"
        rows = [r for r in rows if r["trial_id"] in kept]
    start = {t.trial_id: t.start or 0.0 for t in record.trials}
    rows.sort(key=lambda r: start.get(r["trial_id"], 0.0))
    study = optuna.create_study(directions=targets.directions, storage=storage, study_name=study_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(targets.metrics))
    trials = []
    for row in rows:
        metrics = row["metrics"]
        violations = targets.violations(metrics) if targets.constrained else None
        system_attrs: dict[str, Any] = {}
        if targets.constrained:  # a constrained metric missing: every bound counts as broken
            system_attrs["constraints"] = violations if violations is not None else [1.0] * len(targets.violation_names())
        trials.append(optuna.trial.create_trial(values=targets.values(metrics), user_attrs={ATTR_TRIAL_ID: row["trial_id"], ATTR_STATUS: row["status"]},
                                                system_attrs=system_attrs))
    study.add_trials(trials)
    return study, note


def pareto_figure(record: ExperimentRecord) -> tuple["go.Figure", str | None]:
    from optuna.visualization import plot_pareto_front

    study, note = pareto_study(record)
    summary = record.summary
    names = [o["metric"] for o in summary["objectives"]]
    if len(names) > 3:
        raise ValueError(f"Optuna draws fronts of 2 or 3 objectives, not {len(names)}")
    fig = plot_pareto_front(study, target_names=names)
    split = f"{summary.get('feasible', 0)} feasible, {summary.get('infeasible', 0)} infeasible (grey)" if summary.get(
        "constraints") else f"{len(summary['pareto_front'])} trials on the front"
    fig.update_layout(title_text=f"Pareto front: {split}")
    return fig, note


def hypervolume_figure(record: ExperimentRecord) -> tuple["go.Figure", str | None]:
    from optuna.visualization import plot_hypervolume_history

    volume = record.summary.get("hypervolume")
    if not volume:
        raise ValueError("no feasible trial finished: no hypervolume")
    study, note = pareto_study(record, MAX_HISTORY)
    fig = plot_hypervolume_history(study, volume["reference_point"])
    reference = ", ".join(f"{x:.4g}" for x in volume["reference_point"])
    fig.update_layout(title_text=f"Hypervolume of the feasible front over trials (reference point {reference})")
    return fig, note
