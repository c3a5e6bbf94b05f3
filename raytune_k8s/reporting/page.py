"""The report page: one self-contained HTML file with plotly.js inlined once (no CDN), the
experiment's header, Optuna's plots, the per-node timeline and a sortable trials table.

Each plot is drawn by ``optuna.visualization`` from the experiment as an in-memory study, except
the timeline (:mod:`.timeline`). Where a plot cannot take every trial of a big experiment it
draws a sample (:mod:`.sample`) and says so in its title.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .experiment_dir import ExperimentRecord, TrialRecord, load_experiment
from .sample import sample_trials
from .study import StudyMaker
from .pareto_plots import has_several_objectives, hypervolume_figure, pareto_figure
from .timeline import STATUS_COLOURS, timeline_figure

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

REPORT_FILE = "report.html"

#: The most trials each plot draws before it samples (points, lines, model fits).
#: (Optuna's contour interpolates onto an n x n grid of the trials' own values: 200 trials, 40,000 cells.)
LIMITS = {"history": 10_000, "parallel": 300, "importance": 1_000, "slice": 1_000, "contour": 200, "intermediate": 200}


@dataclass
class Section:
    key: str
    title: str
    body: str  # HTML
    seconds: float = 0.0  # time to draw it


def write_report(experiment_dir: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> Path:
    """Write ``report.html`` into the experiment directory (or ``output``); return its path."""
    start = time.perf_counter()
    record = load_experiment(experiment_dir)
    path = Path(output) if output else record.path / REPORT_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(record, start), encoding="utf-8")
    tmp.replace(path)
    return path


def render(record: ExperimentRecord, start: float | None = None) -> str:
    """The whole page as one HTML string (``start``: when the work began, for its footer)."""
    from plotly.offline import get_plotlyjs

    start = time.perf_counter() if start is None else start
    sections = [_header(record), *plot_sections(record), _table(record)]
    took = ", ".join(f"{s.key} {s.seconds:.2f} s" for s in sections if s.seconds)
    sections[-1].body += (f'<p class="built">Report of {len(record.trials):,} trials built {dt.datetime.now():%Y-%m-%d %H:%M:%S} '
                          f"in {time.perf_counter() - start:.1f} s ({took}).</p>")
    nav = " · ".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>\n{s.body}\n</section>' for s in sections)
    return _PAGE.format(
        title=html.escape(f"{record.name}: tuning report"),
        plotlyjs=get_plotlyjs(),
        name=html.escape(record.name),
        nav=nav,
        body=body,
        script=_SORT_SCRIPT,
        css=_CSS,
    )


def plot_sections(record: ExperimentRecord) -> list[Section]:
    """One section per plot; a plot that cannot be drawn says why instead."""
    import optuna

    trials, mode = record.trials, record.mode
    complete = [t for t in trials if t.objective is not None and t.status == "Succeeded"]
    out: list[Section] = []
    importances: list[str] = []
    maker = StudyMaker(record)

    def study_of(kind: str, pool: list[TrialRecord]) -> tuple["optuna.Study", str | None]:
        kept, note = sample_trials(pool, LIMITS[kind], mode)
        return maker.study(kept), note

    def add(key: str, title: str, draw: Callable[[], tuple["go.Figure", str | None]]) -> None:
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig, note = draw()
        except Exception as exc:  # one plot that cannot be drawn must not cost the whole report
            out.append(Section(key, title, f'<p class="missing">Not drawn: {html.escape(str(exc) or type(exc).__name__)}</p>'))
            return
        if note:
            text = fig.layout.title.text or title
            fig.update_layout(title_text=f"{text}<br><sup>{html.escape(note)}</sup>", margin_t=120)
        fig.update_layout(template="plotly_white", autosize=True)
        body = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{key}", default_width="100%",
                           config={"displaylogo": False})
        out.append(Section(key, title, body, time.perf_counter() - start))

    def history() -> tuple["go.Figure", str | None]:
        from optuna.visualization import plot_optimization_history

        study, note = study_of("history", complete)
        return plot_optimization_history(study), note

    def parallel() -> tuple["go.Figure", str | None]:
        from optuna.visualization import plot_parallel_coordinate

        study, note = study_of("parallel", complete)
        return plot_parallel_coordinate(study), note

    def importance() -> tuple["go.Figure", str | None]:
        from optuna.importance import FanovaImportanceEvaluator
        from optuna.visualization import plot_param_importances

        if len(complete) < 2:
            raise ValueError("needs two or more completed trials")
        study, note = study_of("importance", complete)
        # Optuna's default forest (64 trees, depth 64) takes minutes on 1,000 trials in pure
        # Python; 16 trees of depth 6 rank the parameters the same in well under a second.
        fig = plot_param_importances(study, evaluator=FanovaImportanceEvaluator(n_trees=16, max_depth=6, seed=0))
        fig.update_layout(title_text="Parameter importances (fANOVA, 16 trees of depth 6)")
        bars = fig.data[0]
        importances.extend(name for _, name in sorted(zip(bars.x, bars.y), reverse=True))
        return fig, note

    def slices() -> tuple["go.Figure", str | None]:
        from optuna.visualization import plot_slice

        study, note = study_of("slice", complete)
        return plot_slice(study), note

    def contour() -> tuple["go.Figure", str | None]:
        from optuna.visualization import plot_contour

        if len(importances) < 2:
            raise ValueError("needs two or more parameters with importances")
        study, note = study_of("contour", complete)
        fig = plot_contour(study, params=importances[:2])
        fig.update_layout(title_text=f"Contour plot of the two most important parameters: {importances[0]}, {importances[1]}")
        return fig, note

    def intermediate() -> tuple["go.Figure", str | None]:
        from optuna.visualization import plot_intermediate_values

        pool = [t for t in trials if t.history]
        kept, note = sample_trials(pool, LIMITS["intermediate"], mode)
        study = maker.study(kept)
        fig = plot_intermediate_values(study)
        pruned = {f"Trial{t.number}" for t in study.trials if t.state.name == "PRUNED"}
        for trace in fig.data:
            if trace.name in pruned:
                trace.update(line={"color": STATUS_COLOURS["EarlyStopped"], "dash": "dot"}, opacity=0.8)
            else:
                trace.update(line={"color": STATUS_COLOURS["Succeeded"]}, opacity=0.6)
        fig.update_layout(title_text=f"Intermediate values ({record.metric}): {len(pruned)} early-stopped trials dotted orange, the rest green")
        return fig, note

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "no completed trials": the empty plot says so
    try:
        if has_several_objectives(record):
            add("pareto", "Pareto front", lambda: pareto_figure(record))
            add("hypervolume", "Hypervolume history", lambda: hypervolume_figure(record))
        add("history", "Optimisation history", history)
        add("parallel", "Parallel coordinates", parallel)
        add("importance", "Parameter importances", importance)
        add("slice", "Slice plots", slices)
        add("contour", "Contour of the two most important parameters", contour)
        add("intermediate", "Intermediate values", intermediate)
        add("timeline", "Trials per worker node", lambda: (timeline_figure(trials), None))
    finally:
        optuna.logging.set_verbosity(verbosity)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _header(record: ExperimentRecord) -> Section:
    s = record.summary
    best = s.get("best") if isinstance(s.get("best"), dict) else None
    counts: dict[str, int] = {}
    for t in record.trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    wall = s.get("wall_s")
    if not isinstance(wall, (int, float)):
        ends = [t.end for t in record.trials if t.end is not None]
        wall = (max(ends) - record.started) if ends and record.started is not None else None
    items = [
        ("status", f"{s.get('status', 'unknown')} ({s.get('reason', 'no reason recorded')})"),
        ("objective", f"{'maximize' if record.mode == 'max' else 'minimize'} {record.metric or '?'}"
                      + (f", goal {s['objective']['goal']}" if isinstance(s.get("objective"), dict) and s["objective"].get("goal") is not None else "")),
        ("best trial", _best_text(best, record.metric)),
        ("trials", ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"),
        ("wall time", f"{wall:.1f} s" if isinstance(wall, (int, float)) else "unknown"),
        ("started", dt.datetime.fromtimestamp(record.started).strftime("%Y-%m-%d %H:%M:%S") if record.started else "unknown"),
        ("directory", str(record.path)),
    ]
    if isinstance(s.get("objectives"), list) and len(s["objectives"]) > 1:
        volume = s.get("hypervolume") or {}
        items[1] = ("objectives", ", ".join(f"{o['direction']} {o['metric']}" for o in s["objectives"]))
        items[2] = ("Pareto front", f"{len(s.get('pareto_front') or [])} trials, hypervolume {_fmt(volume.get('value'))}")
    if s.get("constraints"):
        items.insert(2, ("constraints", "; ".join(_bound_text(c) for c in s["constraints"])
                         + f" ({s.get('feasible', 0)} trials feasible, {s.get('infeasible', 0)} not)"))
    if record.spec is not None:
        items.insert(1, ("algorithm", record.spec.algorithm.name + (f", early stopping {record.spec.early_stopping.name}" if record.spec.early_stopping else "")))
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in items)
    for cond in s.get("conditions") or []:
        if isinstance(cond, dict):
            text = " ".join(_fmt(cond.get(k)) for k in ("type", "status", "reason", "message") if cond.get(k) is not None)
            rows += f"<tr><th>condition</th><td>{html.escape(text)}</td></tr>"
    spec = f"<details><summary>experiment spec</summary><pre>{html.escape(record.spec_text)}</pre></details>" if record.spec_text else ""
    return Section("summary", record.name, f'<table class="facts">{rows}</table>{spec}')


def _bound_text(constraint: dict[str, Any]) -> str:
    low, high = constraint.get("min"), constraint.get("max")
    return " ".join(x for x in (f"{_fmt(low)} <=" if low is not None else "", str(constraint.get("metric")),
                                f"<= {_fmt(high)}" if high is not None else "") if x)


def _best_text(best: dict[str, Any] | None, metric: str | None) -> str:
    if not best:
        return "none"
    metrics = m if isinstance(m := best.get("metrics"), dict) else {}
    value = metrics.get(metric) if metric else None
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in (best.get("params") or {}).items())
    return f"{best.get('trial_id', '?')}: {metric}={_fmt(value)} with {params}"


#: The most trials the table lists (the best ones): 100,000 rows made a 67 MB page that took a
#: quarter of the report's time to write and a browser long to open; every trial is in
#: summary.json and ``raytune-k8s results DIR``.
TABLE_ROWS = 5000


def _table(record: ExperimentRecord) -> Section:
    params = list(dict.fromkeys(k for t in record.trials for k in t.params))
    head = ["trial", "status", *params, record.metric or "objective", "iterations", "node", "pid", "seconds", "error"]
    sign = -1 if record.mode == "max" else 1
    rows = sorted(record.trials, key=lambda t: (t.objective is None, sign * (t.objective or 0.0)))
    lines = []
    for t in rows[:TABLE_ROWS]:
        secs = (t.end - t.start) if t.start is not None and t.end is not None else None
        cells = [t.trial_id, t.status, *(t.params.get(p) for p in params), t.objective, t.iterations,
                 t.node, t.pid, secs, t.error]
        lines.append("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in cells) + "</tr>")
    header = "".join(f'<th onclick="sortTable(this)">{html.escape(h)}</th>' for h in head)
    note = f"{len(rows):,} trials, best first; click a column to sort."
    if len(rows) > TABLE_ROWS:
        note = (f"The best {TABLE_ROWS:,} of {len(rows):,} trials; click a column to sort them. Every trial is in "
                "summary.json (<code>raytune-k8s results DIR</code>).")
    return Section("trials", "Trials", f'<p>{note}</p><div class="scroll"><table id="trials-table" class="trials">'
                   f"<thead><tr>{header}</tr></thead><tbody>{''.join(lines)}</tbody></table></div>")


_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px;color:#222}
nav{position:sticky;top:0;background:#fff;padding:8px 0;border-bottom:1px solid #ddd;z-index:10}
section{margin:24px 0}
table.facts th{text-align:left;padding-right:16px;vertical-align:top}
.scroll{max-height:600px;overflow:auto;border:1px solid #ddd}
table.trials{border-collapse:collapse;font-size:13px;width:100%}
table.trials th{position:sticky;top:0;background:#f4f4f4;cursor:pointer;user-select:none}
table.trials td,table.trials th{padding:3px 8px;border-bottom:1px solid #eee;white-space:nowrap}
.missing{color:#a00}
pre{background:#f7f7f7;padding:8px;overflow:auto}
"""

_SORT_SCRIPT = """
function sortTable(th){
  const table=th.closest('table'), body=table.tBodies[0], col=th.cellIndex;
  const asc=th.dataset.dir!=='asc'; th.dataset.dir=asc?'asc':'desc';
  const key=r=>{const s=r.cells[col].textContent, n=parseFloat(s); return s===''?null:(isNaN(n)||String(n)!==s&&isNaN(Number(s))?s:n);};
  const rows=Array.from(body.rows).map(r=>[key(r),r]);
  rows.sort((a,b)=>{if(a[0]===null)return 1; if(b[0]===null)return -1;
    const c=(typeof a[0]==='number'&&typeof b[0]==='number')?a[0]-b[0]:String(a[0]).localeCompare(String(b[0]));
    return asc?c:-c;});
  body.append(...rows.map(x=>x[1]));
}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{css}</style>
<script type="text/javascript">{plotlyjs}</script>
</head><body>
<h1>{name}</h1>
<nav>{nav}</nav>
{body}
<script>{script}</script>
</body></html>
"""


