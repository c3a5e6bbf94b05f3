"""The report and the Optuna mirror, tested as a person would use them: a real experiment,
its report.html opened in headless Chromium, its live Optuna study read back through
optuna-dashboard's HTTP API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import ray

import raytune_k8s
from raytune_k8s.cli import main
from raytune_k8s.sim.cluster import LocalRayHead
from raytune_k8s.reporting import REPORT_FILE, export, page, report
from raytune_k8s.reporting.experiment_dir import load_experiment
from raytune_k8s.reporting.mirror import OptunaMirror
from raytune_k8s.reporting.storage import open_storage

from benchmarks.report_size import spec as size_spec

from .helpers import wait_for

CHROMIUM = Path("/usr/bin/chromium")
PLOTS = ["history", "parallel", "importance", "slice", "contour", "intermediate", "timeline"]
TRIALS = 20


@pytest.fixture(scope="module")
def experiment(ray_head: LocalRayHead, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real 20-trial experiment (4 parameters, ASHA) run with the live mirror into SQLite."""
    if not ray.is_initialized():
        ray.init(address=ray_head.address, log_to_driver=False)
    root = tmp_path_factory.mktemp("report")
    storage = f"sqlite:///{root / 'live.db'}"
    spec = size_spec(TRIALS) | {"name": "report-test", "parallelTrialCount": 2}
    summary = raytune_k8s.run(spec, storage_path=root, optuna_storage=storage)
    return {"summary": summary, "dir": Path(summary["experiment_dir"]), "storage": storage}


def _browser() -> Any:
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium (Debian package chromium)")
    return playwright.sync_playwright()


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--enable-unsafe-swiftshader"]


def test_run_writes_a_report_that_draws_every_plot_in_chromium(experiment: dict[str, Any], tmp_path: Path) -> None:
    path = experiment["dir"] / REPORT_FILE
    text = path.read_text()
    assert "<script src" not in text and text.count("plotly.js v") == 1  # plotly.js inlined, once
    with _browser() as pw:
        # Playwright gives each launch a fresh temporary profile (it refuses --user-data-dir).
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page_ = browser.new_page(viewport={"width": 1200, "height": 900})
            problems: list[str] = []
            remote: list[str] = []
            page_.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page_.on("pageerror", lambda e: problems.append(str(e)))
            page_.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
            page_.goto(path.as_uri(), wait_until="load")
            drawn = {}
            for key in PLOTS:
                div = page_.wait_for_selector(f"#plot-{key}", timeout=20_000)
                assert div is not None
                drawn[key] = div.evaluate(
                    "e => ({traces: (e.data || []).length, svg: e.querySelectorAll('.main-svg').length,"
                    " marks: e.querySelectorAll('path.point, path.js-line, g.point path, g.contourlevel path').length,"
                    " height: e.getBoundingClientRect().height})"
                )
            # The table sorts: click the objective's header, the first row is then the smallest.
            page_.click("#trials-table th:text-is('loss')")
            column = page_.evaluate(
                "() => { const t = document.getElementById('trials-table');"
                " const i = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent === 'loss');"
                " return Array.from(t.tBodies[0].rows).map(r => r.cells[i].textContent).filter(s => s !== ''); }"
            )
        finally:
            browser.close()
    assert problems == [] and remote == []
    for key, info in drawn.items():
        assert info["traces"] > 0 and info["svg"] > 0 and info["marks"] > 0 and info["height"] > 100, (key, info)
    values = [float(v) for v in column]
    assert len(values) == TRIALS and values == sorted(values)


def test_report_reads_trials_nodes_and_early_stopping(experiment: dict[str, Any]) -> None:
    record = load_experiment(experiment["dir"])
    assert len(record.trials) == TRIALS and record.metric == "loss" and record.mode == "min"
    for trial in record.trials:
        assert trial.start is not None and trial.end is not None and trial.end >= trial.start
        assert trial.hostname and trial.node_ip and trial.pid
        assert [step for step, _ in trial.history] == list(range(1, trial.iterations + 1))
        assert trial.objective == min(v for _, v in trial.history)
    # ASHA (grace period 2, max_t 5) stopped some trials after 2 reports and let others run.
    assert {t.iterations for t in record.trials} == {2, 5}
    assert all(t.status == ("Succeeded" if t.iterations == 5 else "EarlyStopped") for t in record.trials)


def test_live_mirror_holds_every_trial_with_values_and_states(experiment: dict[str, Any]) -> None:
    study = optuna.load_study(study_name="report-test", storage=experiment["storage"])
    rows = {r["trial_id"]: r for r in experiment["summary"]["trial_table"]}
    assert len(study.trials) == TRIALS
    for trial in study.trials:
        row = rows[trial.user_attrs["raytune_trial_id"]]
        assert trial.params == row["params"]
        assert len(trial.intermediate_values) == row["iterations"]
        assert trial.value == pytest.approx(row["objective"])
        # ASHA with max_t 5: a trial stopped before its 5th report is Optuna's PRUNED.
        assert trial.state.name == ("COMPLETE" if row["iterations"] == 5 else "PRUNED")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_optuna_dashboard_serves_the_exported_study(experiment: dict[str, Any], tmp_path: Path) -> None:
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    if not dashboard.exists():
        pytest.skip("optuna-dashboard is not installed (pip install optuna-dashboard)")
    journal = tmp_path / "study.log"
    assert main(["export", str(experiment["dir"]), "--optuna-storage", str(journal)]) == 0
    port = _free_port()
    server = subprocess.Popen([str(dashboard), str(journal), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def studies() -> Any:
            try:
                return _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
            except OSError:
                return None

        summaries = wait_for(studies, 60, "optuna-dashboard answering", interval=0.3)
        (study,) = [s for s in summaries if s["study_name"] == "report-test"]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}?after=0")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert len(detail["trials"]) == TRIALS and detail["has_intermediate_values"]
    assert all(t["state"] in ("Complete", "Pruned") and t["intermediate_values"] for t in detail["trials"])
    best = min(t["values"][0] for t in detail["trials"])
    assert best == pytest.approx(min(r["objective"] for r in experiment["summary"]["trial_table"]))


def test_big_experiments_are_sampled_and_the_plot_says_so(experiment: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page, "LIMITS", {k: 3 for k in page.LIMITS})
    record = load_experiment(experiment["dir"])
    complete = sum(t.status == "Succeeded" for t in record.trials)
    assert complete > 3, "ASHA let too few trials finish for this test"
    html = page.render(record)
    for key in ("history", "parallel", "importance", "slice", "contour", "intermediate"):
        section = html.split(f'id="plot-{key}"')[1].split("</section>")[0]
        # Intermediate values: every trial with reports; the others: the completed trials.
        assert f"sampled: 3 of {TRIALS if key == 'intermediate' else complete} trials" in section, key


def test_big_experiments_list_the_best_trials_and_draw_a_sample_of_the_timeline(
        experiment: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from raytune_k8s.reporting import timeline

    monkeypatch.setattr(page, "TABLE_ROWS", 3)
    monkeypatch.setattr(timeline, "TIMELINE_POINTS", 4)
    record = load_experiment(experiment["dir"])
    html = page.render(record)
    table = html.split('<table id="trials-table"')[1].split("</table>")[0]
    best = sorted((t for t in record.trials if t.objective is not None), key=lambda t: t.objective)[:3]
    assert table.count("<tr>") == 1 + 3 and all(t.trial_id in table for t in best)
    assert f"The best 3 of {len(record.trials):,} trials" in html
    placed = len(timeline.lanes(record.trials))
    assert placed > 8 and f"1 in {-(-placed // 4)} of {placed:,} trials drawn" in html
    # the running count thinned to 4 points keeps every peak
    times, counts = timeline.running_counts(record.trials)
    thin_t, thin_c = timeline.thinned_counts(times, counts, 4)
    assert len(thin_t) <= 4 and thin_c.max() == max(counts) and thin_t[0] == times[0]
    assert np.all(np.diff(thin_t) > 0)


def test_cli_report_and_python_report_write_the_same_sections(experiment: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(experiment["dir"])]) == 0
    assert capsys.readouterr().out.strip() == str(experiment["dir"] / REPORT_FILE)
    out = report(experiment["dir"], tmp_path / "copy.html")
    assert all(f'id="plot-{key}"' in out.read_text() for key in PLOTS)


def test_export_replaces_a_study_of_the_same_name(experiment: dict[str, Any], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    export(experiment["dir"], url)
    export(experiment["dir"], url)
    assert len(optuna.load_study(study_name="report-test", storage=url).trials) == TRIALS


def test_mirror_on_a_broken_storage_warns_once_and_never_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tune's hooks only queue work: they all return while the storage is still being opened
    (held open here until they are done; a hook that waited for it would never return), the
    storage that cannot be opened is tried once, and the mirror warns one time however many
    events fail."""
    import threading

    from ray.tune.experiment import Trial

    from raytune_k8s.reporting import mirror as mirror_module

    release, opens = threading.Event(), []

    def held_then_broken(url: str) -> Any:
        opens.append(url)
        release.wait(120)
        return open_storage(url)  # a directory that does not exist: it raises

    monkeypatch.setattr(mirror_module, "open_storage", held_then_broken)
    mirror = OptunaMirror(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", "broken", "loss", "min")
    trials = [Trial("trainable", config={"x": float(i)}, stub=True) for i in range(20)]

    def hooks() -> None:
        for t in trials:
            mirror.on_trial_start(0, trials, t)
            mirror.on_trial_result(0, trials, t, {"loss": 1.0, "training_iteration": 1})
            mirror.on_trial_complete(0, trials, t)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tune_thread = threading.Thread(target=hooks)
        tune_thread.start()
        tune_thread.join(60)  # only a guard against a hang: the hooks return at once
        assert not tune_thread.is_alive(), "a hook waited for the storage"
        assert not release.is_set()
        release.set()
        mirror.close()
    assert len(opens) == 1  # tried once
    assert [str(w.message).startswith("mirroring into the Optuna storage") for w in caught] == [True]


def test_a_resumed_run_mirrors_into_the_trials_it_already_wrote(tmp_path: Path) -> None:
    """A second mirror of the same study (the run resumed) finds the trials the first one wrote
    and finishes them, rather than adding copies."""
    import optuna
    from ray.tune.experiment import Trial

    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    trials = [Trial("trainable", config={"x": float(i)}, stub=True) for i in range(2)]
    first = OptunaMirror(url, "resumed", "loss", "min")
    for t in trials:
        first.on_trial_start(0, trials, t)
        first.on_trial_result(0, trials, t, {"loss": 2.0, "training_iteration": 1})
    first.close()
    second = OptunaMirror(url, "resumed", "loss", "min")
    for t in trials:
        second.on_trial_result(0, trials, t, {"loss": 1.0, "training_iteration": 2})
        second.on_trial_complete(0, trials, t)
    second.close()
    study = optuna.load_study(study_name="resumed", storage=url)
    assert [(t.state.name, t.value, t.intermediate_values) for t in study.trials] == [("COMPLETE", 1.0, {1: 2.0, 2: 1.0})] * 2


def test_the_report_package_needs_no_ray(experiment: dict[str, Any], tmp_path: Path) -> None:
    """raytune_k8s.reporting imports no Ray, Optuna or plotly, and writes a report with Ray blocked
    (the parent package's own __init__ is skipped: it is the lead's to make lazy)."""
    package = Path(raytune_k8s.__file__).parent
    probe = (
        "import sys, types; sys.modules['ray'] = None; "  # any 'import ray' now raises ImportError
        f"root = types.ModuleType('raytune_k8s'); root.__path__ = [{str(package)!r}]; sys.modules['raytune_k8s'] = root; "
        "import raytune_k8s.reporting as r; "
        "print(sorted(m for m in ('optuna', 'plotly') if m in sys.modules)); "
        f"print(r.report({str(experiment['dir'])!r}, {str(tmp_path / 'r.html')!r}).stat().st_size > 0)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["[]", "True"]


def test_open_storage_takes_a_journal_path_or_an_rdb_url(tmp_path: Path) -> None:
    assert type(open_storage(str(tmp_path / "j.log"))).__name__ == "JournalStorage"
    assert type(open_storage(f"sqlite:///{tmp_path / 'r.db'}")).__name__ == "RDBStorage"


def test_run_takes_no_report_and_optuna_storage() -> None:
    from raytune_k8s.cli import _parser

    args = _parser().parse_args(["run", "x.yaml", "--no-report", "--optuna-storage", "sqlite:///x.db"])
    assert (args.report, args.optuna_storage) == (False, "sqlite:///x.db")
    args = _parser().parse_args(["run", "x.yaml"])
    assert (args.report, args.optuna_storage) == (True, None)
