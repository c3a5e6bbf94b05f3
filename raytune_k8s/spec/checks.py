"""Cross-field rules that the models' types cannot express (Katib's validator does the same).
Every problem is collected, so one run reports all of them."""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import Problems, SpecError
from .models import ExperimentSpec, Parameter, Resources, TrialTemplate
from .objectives import SEVERAL_OBJECTIVES_ALGORITHMS
from .quantities import parse_count, parse_cpu, parse_memory

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_COLLECTORS_WITH_PATH = ("File", "TensorFlowEvent")
_LARGEST_INT = 2**53  # every whole number up to it is exact as a float (what searchers sample)
#: What a NAS algorithm assigns to each trial (Katib's names), usable as trialParameter references.
NAS_ASSIGNMENTS = {"darts": ("algorithm-settings", "search-space", "num-layers"), "enas": ("architecture", "nn_config")}


def check_semantics(spec: ExperimentSpec, notes: list[str] | None = None, warnings: list[str] | None = None) -> None:
    """Raise one SpecError holding every problem found; likely mistakes that Katib runs anyway
    are added to ``warnings`` (``"field: reason"``)."""
    notes = notes if notes is not None else []
    warnings = warnings if warnings is not None else []
    problems = Problems()
    if not _NAME.match(spec.name):
        problems.add("name", f"{spec.name!r} must be lowercase letters, digits and '-' (a Kubernetes name)")
    if spec.max_trials is not None and spec.parallel_trials > spec.max_trials:
        problems.add("parallelTrialCount", f"{spec.parallel_trials} is greater than maxTrialCount {spec.max_trials}")
    _check_objective(spec, problems, warnings)
    _check_objectives(spec, problems)
    if not spec.parameters and spec.nas_config is None:
        problems.add("parameters", "needs at least one parameter (or a nasConfig, for neural architecture search)")
    seen: set[str] = set()
    for i, param in enumerate(spec.parameters):
        if param.name in seen:
            problems.add(f"parameters[{i}].name", f"duplicate parameter name {param.name!r}")
        seen.add(param.name)
        _check_parameter(param, f"parameters[{i}].feasibleSpace", problems)
    _check_trial(spec, problems, notes)
    _check_collector(spec, problems)
    if spec.algorithm.resources is not None:
        _check_resources(spec.algorithm.resources, "algorithm.resources", problems)
    if spec.nas_config is not None and spec.algorithm.name not in ("darts", "enas"):
        problems.add("nasConfig", f"is only used by the darts and enas algorithms, not {spec.algorithm.name!r}")
    problems.raise_if_any()


def _check_objective(spec: ExperimentSpec, problems: Problems, warnings: list[str]) -> None:
    obj = spec.objective
    if obj.goal is not None and not math.isfinite(obj.goal):
        problems.add("objective.goal", f"must be a finite number, got {obj.goal}")
    names = obj.metrics
    if len(set(obj.additional_metrics)) != len(obj.additional_metrics) or obj.metric in obj.additional_metrics:
        problems.add("objective.additionalMetricNames", "metric names must be distinct and differ from objectiveMetricName")
    for i, s in enumerate(obj.metric_strategies):
        if s.name not in names:  # Katib ignores it: a strategy is only looked up by a metric's name
            warnings.append(f"objective.metricStrategies[{i}]: {s.name!r} is not the objective metric or an additional metric; ignored")


def _check_objectives(spec: ExperimentSpec, problems: Problems) -> None:
    """Several objectives and constraints: consistent with ``objective``, and only where they combine."""
    targets = spec.targets
    metrics = targets.metrics
    for i, metric in enumerate(metrics):
        if metric in metrics[:i]:
            problems.add(f"objectives[{i}].metric", f"{metric!r} is already objective {metrics.index(metric)}")
    if spec.objectives:
        first, obj = spec.objectives[0], spec.objective
        if (obj.metric, obj.type) != (first.metric, first.direction):
            problems.add("objective.objectiveMetricName", f"given beside objectives, objective must be objectives[0] "
                         f"({first.metric!r}, {first.direction}), got ({obj.metric!r}, {obj.type})")
    if targets.several and spec.objective.goal is not None:
        problems.add("objective.goal", "a goal stops one objective's search; with several objectives there is no single "
                     "value to reach: remove it (maxTrialCount ends the run)")
    if not (targets.several or targets.constrained):
        return
    what = "several objectives" if targets.several else "constraints"
    if spec.algorithm.name not in SEVERAL_OBJECTIVES_ALGORITHMS:
        problems.add("algorithm.algorithmName", f"{spec.algorithm.name!r} takes one objective and no constraints; with "
                     f"{what} choose one of {', '.join(SEVERAL_OBJECTIVES_ALGORITHMS)}")
    elif spec.algorithm.name == "tpe" and str(spec.algorithm.settings_dict().get("engine", "optuna")) == "hyperopt":
        problems.add("algorithm.algorithmSettings", f"engine: hyperopt takes one objective and no constraints; with {what} "
                     "use Optuna's TPE (the default engine)")
    if targets.several and spec.early_stopping is not None:
        problems.add("earlyStopping", f"{spec.early_stopping.name!r} compares trials on one objective; it does not "
                     "combine with several objectives: remove it")


def _check_parameter(param: Parameter, at: str, problems: Problems) -> None:
    fs = param.space
    if param.type in ("categorical", "discrete"):
        if fs.values is None or len(fs.values) == 0:
            problems.add(f"{at}.list", f"a {param.type} parameter needs a non-empty list")
            return
        if fs.min is not None or fs.max is not None or fs.step is not None:
            problems.add(at, f"a {param.type} parameter takes 'list', not min/max/step")
        if param.type == "discrete" and not all(_is_finite_number(v) for v in fs.values):
            problems.add(f"{at}.list", "a discrete parameter's list must hold finite numbers")
        elif any(isinstance(v, float) and not math.isfinite(v) for v in fs.values):
            problems.add(f"{at}.list", "numbers in the list must be finite (NaN and infinity cannot be compared or searched)")
        if len(set(map(str, fs.values))) != len(fs.values):
            problems.add(f"{at}.list", "values must be distinct")
        return
    if fs.values is not None:
        problems.add(f"{at}.list", f"a {param.type} parameter takes min/max, not 'list'")
        return
    missing = [b for b in ("min", "max") if getattr(fs, b) is None]
    for bound in missing:
        problems.add(f"{at}.{bound}", f"a {param.type} parameter needs '{bound}'")
    if fs.min is None or fs.max is None:  # reported just above
        return
    lo, hi = float(fs.min), float(fs.max)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        problems.add(at, "min and max must be finite numbers")
        return
    if param.type == "int" and max(abs(lo), abs(hi)) > _LARGEST_INT:
        problems.add(at, f"an int parameter's min and max must lie within ±2^53 (whole numbers beyond it are not exact), "
                     f"got {lo:g}..{hi:g}")
        return
    if param.type == "int":
        for bound, value in (("min", lo), ("max", hi), ("step", fs.step)):
            if value is not None and math.isfinite(value) and value != int(value):
                problems.add(f"{at}.{bound}", f"an int parameter needs a whole number, got {value:g}")
    if lo > hi:
        problems.add(at, f"min {lo:g} is greater than max {hi:g}")
        return
    if fs.distribution in ("logUniform", "logNormal") and lo <= 0:
        problems.add(f"{at}.min", f"a {fs.distribution} distribution needs min > 0, got {lo:g}")
    if fs.step is not None:
        if not math.isfinite(fs.step) or fs.step <= 0:
            problems.add(f"{at}.step", f"step must be a positive finite number, got {fs.step:g}")
            return
        span = hi - lo
        if span and fs.step > span:
            problems.add(f"{at}.step", f"step {fs.step:g} is larger than the range {lo:g}..{hi:g}")
        elif span:
            n = span / fs.step
            if abs(n - round(n)) > 1e-6 * max(1.0, n):
                problems.add(f"{at}.step", f"step {fs.step:g} does not divide the range {lo:g}..{hi:g}")


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_trial(spec: ExperimentSpec, problems: Problems, notes: list[str]) -> None:
    if spec.trial is None and spec.trial_template is None:
        problems.add("trialTemplate", "required field is missing (Katib's trialTemplate, or this project's 'trial' shorthand)")
        return
    if spec.trial is not None and spec.trial_template is not None:
        problems.add("trial", "give either 'trial' (this project's shorthand) or Katib's 'trialTemplate', not both")
        return
    if spec.trial_template is not None:
        from .katib import container_trial

        try:
            names = [p.name for p in spec.parameters] + list(NAS_ASSIGNMENTS.get(spec.algorithm.name, ()) if spec.nas_config else ())
            container_trial(spec.trial_template, names, notes, namespace=spec.namespace)
        except SpecError as exc:
            problems.extend(exc)
            return
        return  # container_trial checked the primary container's resources, each at its field
    assert spec.trial is not None  # neither given, or the template, returned above
    _check_shorthand(spec.trial, problems)


def _check_shorthand(trial: TrialTemplate, problems: Problems) -> None:
    given = [k for k in ("trainable", "function", "command") if getattr(trial, k) not in (None, "", [])]
    if len(given) != 1:
        problems.add("trial", "give exactly one of 'trainable', 'function' or 'command'" + (f" (got {', '.join(given)})" if given else ""))
    if trial.function is not None and not re.match(r"^[\w.]+:\w+$", trial.function):
        problems.add("trial.function", f"{trial.function!r} must look like 'package.module:function'")
    if trial.timeout is not None and not math.isfinite(trial.timeout):
        problems.add("trial.timeout", "must be a finite number of seconds")
    if trial.replicas > 1 and trial.command is None:
        problems.add("trial.replicas", "a trial of several replicas runs a command (trial.command) in each")
    if trial.framework != "none" and trial.replicas == 1 and trial.command is None:
        problems.add("trial.framework", "gives a command's replicas their environment: set trial.command")
    _check_resources(trial.resources, "trial.resources", problems)


def _check_collector(spec: ExperimentSpec, problems: Problems) -> None:
    mc = spec.metrics_collector
    kind = mc.collector.kind
    at = "metricsCollectorSpec"
    if kind == "Custom":
        problems.add(f"{at}.collector.kind", "Custom collectors run a sidecar image next to the trial's pod; trials here are "
                     "processes without sidecars: use StdOut, File, TensorFlowEvent or Push")
    elif kind == "PrometheusMetric":
        problems.add(f"{at}.collector.kind", "PrometheusMetric is not supported (Katib never implemented it either); "
                     "use StdOut, File, TensorFlowEvent or Push")
    elif mc.collector.custom_collector is not None:
        problems.add(f"{at}.collector.customCollector", "only used by the Custom collector kind")
    if kind in ("Custom", "PrometheusMetric"):
        return  # one line says it all
    path = mc.source.file_system_path if mc.source else None
    if kind in _COLLECTORS_WITH_PATH and path is None:
        problems.add(f"{at}.source.fileSystemPath", f"the {kind} collector needs the path the trial writes")
    if path is not None:
        if kind not in _COLLECTORS_WITH_PATH:
            problems.add(f"{at}.source.fileSystemPath", f"not used by the {kind} collector")
        elif not path.path.startswith("/"):
            problems.add(f"{at}.source.fileSystemPath.path", "must be an absolute path, as in Katib")
        elif kind == "TensorFlowEvent" and path.kind != "Directory":
            problems.add(f"{at}.source.fileSystemPath.kind", "the TensorFlowEvent collector reads a Directory")
        elif kind == "File" and path.kind != "File":
            problems.add(f"{at}.source.fileSystemPath.kind", "the File collector reads a File")
    if mc.source and mc.source.http_get is not None:
        problems.add(f"{at}.source.httpGet", "only used by the PrometheusMetric collector, which is not supported")
    if mc.source and mc.source.filter is not None:
        if kind not in ("StdOut", "File") or (path is not None and path.format == "JSON"):
            problems.add(f"{at}.source.filter", "metricsFormat filters apply to StdOut and TEXT File collectors only")
        for i, pattern in enumerate(mc.source.filter.metrics_format):
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                problems.add(f"{at}.source.filter.metricsFormat[{i}]", f"not a regular expression: {exc}")
                continue
            if compiled.groups < 2:
                problems.add(f"{at}.source.filter.metricsFormat[{i}]", "needs two groups: the metric name, then its value")
    if spec.trial is not None and spec.trial.command is None and kind not in ("StdOut", "None", "Push"):
        problems.add(f"{at}.collector.kind", f"the {kind} collector reads files a command trial writes; use it with a command or trialTemplate")


def _check_resources(res: Resources, at: str, problems: Problems) -> None:
    try:
        cpu = parse_cpu(res.cpu)
        if cpu < 0:
            problems.add(f"{at}.cpu", f"must not be negative, got {res.cpu}")
    except ValueError as exc:
        problems.add(f"{at}.cpu", str(exc))
    try:
        if parse_count(res.gpu) < 0:
            problems.add(f"{at}.gpu", f"must not be negative, got {res.gpu}")
    except ValueError as exc:
        problems.add(f"{at}.gpu", str(exc))
    if res.memory is not None:
        try:
            if parse_memory(res.memory) < 0:
                problems.add(f"{at}.memory", f"must not be negative, got {res.memory}")
        except ValueError as exc:
            problems.add(f"{at}.memory", str(exc))
