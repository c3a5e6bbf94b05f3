"""Kubeflow Trainer's ``OptimizationJob`` (``trainer.kubeflow.org/v1alpha1``), read as an
experiment.

The manifest's fields are those of the merged upstream types (kubeflow/trainer
``pkg/apis/trainer/v1alpha1/optimizationjob_types.go``), checked with their kubebuilder limits,
defaults, enums and CEL rules; each problem is one :class:`SpecError` naming the manifest's field
(``spec.parameters[1].searchSpace.uniform.min``). What it becomes here:

* ``spec.objectives[0]`` (``metric``, ``direction`` ``Minimize``/``Maximize``, default
  ``Minimize``) is the objective; upstream allows exactly one (``maxItems: 1``). Ours: several
  (a Pareto front, :mod:`.objectives`), and ``spec.constraints`` (``[{metric, max}]`` /
  ``{metric, min}``), both refused by upstream's API server;
* ``spec.searchAlgorithm`` ``random`` (``seed`` -> ``random_state``; a negative seed is taken
  modulo 2^64, numpy's generator takes no negative seed) or ``grid`` (every parameter
  categorical, as upstream's CEL rule requires); default ``random: {}``. Ours, beside them:
  ``raytune-k8s.io/algorithm: {name: tpe, settings: {n_startup_trials: 5}}`` runs any other
  algorithm of this project (:data:`EXTENSION_ALGORITHMS`); the key cannot collide with an
  upstream field (upstream's are lowerCamelCase words), and upstream's API server refuses it;
* ``spec.parameters[].searchSpace``: ``uniform`` / ``logUniform`` (``min``, ``max`` as strings,
  ``type`` ``Float`` (default) or ``Int``) are ``double`` / ``int`` parameters, ``logUniform``
  with Katib's ``distribution: logUniform``; ``categorical.choices`` a ``categorical`` one;
* ``spec.numTrials`` (default 1) is ``maxTrialCount``: upstream caps it at 100, here it may be
  larger (up to this project's limit); ``spec.parallelTrials`` (default 1, at most 100, never
  more than ``numTrials``) is ``parallelTrialCount``;
* ``spec.trainJobTemplate`` (``metadata`` without name and namespace; ``spec``, a TrainJob's) is
  the trial: a Katib ``trialTemplate`` whose ``trialSpec`` is that TrainJob, read by the TrainJob
  reader (:mod:`.trial_kinds.trainer`). Each parameter reaches the trainer's containers as the
  environment variable ``KUBEFLOW_TRAINER_OPT_<NAME>`` (:func:`env_name`), appended to
  ``trainer.env`` as upstream's controller does; ``$(KUBEFLOW_TRAINER_OPT_<NAME>)`` in the
  trainer's ``command``/``args`` is expanded as Kubernetes expands it.

Metrics come from the TrainJob status endpoint every TrainJob trial gets
(:mod:`raytune_k8s.collectors.trainer_status`), and from ``name=value`` lines (StdOut).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .errors import Problems
from .katib import read_object_metadata
from .trial_kinds import PLACEHOLDER

API_VERSION, KIND = "trainer.kubeflow.org/v1alpha1", "OptimizationJob"
TRAINJOB_KIND = "TrainJob"
#: The environment variable prefix of a trial's parameters (upstream's controller and KEP-3562).
ENV_PREFIX = "KUBEFLOW_TRAINER_OPT_"
#: Our extension of ``spec.searchAlgorithm``: this project's other algorithms.
EXTENSION = "raytune-k8s.io/algorithm"
#: The algorithms the extension runs (the registry's names in ``raytune_k8s.search.ALGORITHMS``
#: less random and grid, upstream's own, and darts/enas, which need a nasConfig).
EXTENSION_ALGORITHMS = ("tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization", "hyperband", "pbt", "nsga2", "nsga3", "gp")
_NAS_ALGORITHMS = ("darts", "enas")

#: Upstream's limits (kubebuilder markers of optimizationjob_types.go).
MAX_PARALLEL_TRIALS = 100
UPSTREAM_MAX_TRIALS = 100  # relaxed here: see the module docstring
MAX_PARAMETERS = 100
MAX_CHOICES = 100
MAX_NAME = 64  # a metric's, a parameter's, a choice's and a Double's length
DOUBLE = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")
_SPACES = ("uniform", "logUniform", "categorical")
_TOP = ("apiVersion", "kind", "metadata", "spec", "status")
_SPEC = ("objectives", "constraints", "searchAlgorithm", "parameters", "numTrials", "parallelTrials", "trainJobTemplate")
#: A Kubernetes ``$(VAR)`` reference in a container's command or args (``$$`` escapes a ``$``).
_K8S_REFERENCE = re.compile(r"\$\$|\$\(([^)]*)\)")
_TRAINER_AT = "spec.trainJobTemplate.spec.trainer"


def is_optimization_job(data: Mapping[str, Any]) -> bool:
    """A document that means to be an OptimizationJob (its kind, or Trainer's API group)."""
    return data.get("kind") == KIND or str(data.get("apiVersion", "")).startswith("trainer.kubeflow.org/")


def env_name(parameter: str) -> str:
    """The variable a trial reads ``parameter`` from: ``KUBEFLOW_TRAINER_OPT_`` and the name in
    upper case, every character other than a letter, digit or ``_`` made ``_``
    (``learning-rate`` -> ``KUBEFLOW_TRAINER_OPT_LEARNING_RATE``)."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9_]", "_", parameter.upper())


class FieldMap:
    """A field of the spec built from a manifest -> the manifest's field it comes from
    (``parameters[1].feasibleSpace.min`` -> ``spec.parameters[1].searchSpace.uniform.min``)."""

    def __init__(self) -> None:
        #: each parameter's searchSpace kind (uniform, logUniform, categorical)
        self.spaces: list[str] = []
        self.algorithm_at = "spec.searchAlgorithm"
        #: each algorithmSettings entry's manifest field
        self.settings_at: list[str] = []
        #: how many env entries the template's trainer gave (ours follow, one per parameter)
        self.user_env = 0

    def __call__(self, field: str) -> str:
        for pattern, target in self._rules():
            m = re.fullmatch(pattern, field)
            if m is not None:
                return target(m)
        return field if field.startswith(_TOP) or not field else f"spec ({field})"

    def _rules(self) -> list[tuple[str, Any]]:
        container = r"trialTemplate\.trialSpec\.spec\.trainer\.spec\.containers(?:\[0\])?"
        return [
            (r"name|namespace", lambda m: f"metadata.{m.group(0)}"),
            (r"objectives\[(\d+)\](.*)", lambda m: f"spec.objectives[{m.group(1)}]{m.group(2)}"),
            (r"constraints(.*)", lambda m: f"spec.constraints{m.group(1)}"),
            (r"objective\.objectiveMetricName", lambda m: "spec.objectives[0].metric"),
            (r"objective\.type", lambda m: "spec.objectives[0].direction"),
            (r"objective(\..*)?", lambda m: "spec.objectives[0]"),
            (r"algorithm\.algorithmSettings\[(\d+)\](?:\..*)?", self._setting),
            (r"algorithm(\..*)?", lambda m: self.algorithm_at),
            (r"parameters\[(\d+)\]\.feasibleSpace\.list(.*)", lambda m: f"{self._space(m)}.choices{m.group(2)}"),
            (r"parameters\[(\d+)\]\.feasibleSpace\.(min|max)", lambda m: f"{self._space(m)}.{m.group(2)}"),
            (r"parameters\[(\d+)\](?:\.feasibleSpace.*)?", lambda m: self._space(m)),
            (r"parameters\[(\d+)\]\.parameterType", lambda m: self._space(m)),
            (r"parameters\[(\d+)\]\.name", lambda m: f"spec.parameters[{m.group(1)}].name"),
            (r"parameters\[(\d+)\](.*)", lambda m: f"spec.parameters[{m.group(1)}]"),
            (r"parameters", lambda m: "spec.parameters"),
            (r"parallelTrialCount", lambda m: "spec.parallelTrials"),
            (r"maxTrialCount", lambda m: "spec.numTrials"),
            (container + r"\.resources(.*)", lambda m: f"{_TRAINER_AT}.resourcesPerNode{m.group(1)}"),
            (container + r"\.env\[(\d+)\](.*)", self._env),
            (container + r"(.*)", lambda m: f"{_TRAINER_AT}{m.group(1)}"),
            (r"trialTemplate\.trialSpec\.spec\.trainer\.spec", lambda m: _TRAINER_AT),
            (r"trialTemplate\.trialSpec\.(spec|metadata)(.*)", lambda m: f"spec.trainJobTemplate.{m.group(1)}{m.group(2)}"),
            (r"trialTemplate.*", lambda m: "spec.trainJobTemplate"),
        ]

    def _space(self, m: re.Match[str]) -> str:
        i = int(m.group(1))
        kind = self.spaces[i] if i < len(self.spaces) else None
        return f"spec.parameters[{i}].searchSpace" + (f".{kind}" if kind else "")

    def _setting(self, m: re.Match[str]) -> str:
        i = int(m.group(1))
        return self.settings_at[i] if i < len(self.settings_at) else self.algorithm_at

    def _env(self, m: re.Match[str]) -> str:
        i = int(m.group(1))
        if i < self.user_env:
            return f"{_TRAINER_AT}.env[{i}]{m.group(2)}"
        return f"spec.parameters[{i - self.user_env}]"  # the variable set for that parameter


def optimization_job_to_spec(data: Mapping[str, Any], notes: list[str]) -> tuple[dict[str, Any], FieldMap]:
    """The spec dict of an OptimizationJob, and where each of its fields is in the manifest;
    SpecError names every manifest field that breaks upstream's rules or has no meaning here."""
    problems = Problems()
    fields = FieldMap()
    _check_top(data, problems, notes)
    problems.raise_if_any()
    meta = read_object_metadata(data["metadata"], problems, notes)
    spec = data["spec"]
    for key in spec:
        if key not in _SPEC:
            problems.add(f"spec.{key}", "unknown field (an OptimizationJob's spec has " + ", ".join(_SPEC) + ")")
    objectives = _objectives(spec.get("objectives"), problems)
    out: dict[str, Any] = {**meta, "objective": objectives[0] if objectives else {}}
    if len(objectives) > 1:
        out["objectives"] = [{"metric": o["objectiveMetricName"], "direction": o["type"]} for o in objectives]
        notes.append("spec.objectives: several objectives are this project's extension (upstream allows one)")
    if "constraints" in spec:
        out["constraints"] = spec["constraints"]
        notes.append("spec.constraints: this project's extension (upstream has no constraints)")
    parameters = _parameters(spec.get("parameters"), problems, fields)
    out["algorithm"] = _algorithm(spec.get("searchAlgorithm"), parameters, problems, fields)
    out["parameters"] = [p for p in parameters if p is not None]
    out.update(_counts(spec, problems))
    out["trialTemplate"] = _trial_template(spec.get("trainJobTemplate"), out["parameters"], problems, notes, fields)
    problems.raise_if_any()
    return out, fields


def _check_top(data: Mapping[str, Any], problems: Problems, notes: list[str]) -> None:
    if data.get("apiVersion") != API_VERSION:
        problems.add("apiVersion", f"expected {API_VERSION!r} for an OptimizationJob, got {data.get('apiVersion')!r}")
    if data.get("kind") != KIND:
        problems.add("kind", f"expected {KIND!r} (apiVersion {API_VERSION}), got {data.get('kind')!r}")
    for key in data:
        if key not in _TOP:
            problems.add(key, "unknown field")
    if not isinstance(data.get("metadata"), Mapping) or not data["metadata"].get("name"):
        problems.add("metadata.name", "required field is missing")
    spec = data.get("spec")
    if not isinstance(spec, Mapping):
        problems.add("spec", "required field is missing" if spec is None else "must be a mapping")
    if "status" in data:
        notes.append("status: ignored (the status of an OptimizationJob is written by its controller)")


# ---------------------------------------------------------------- objective, counts


def _objectives(objectives: Any, problems: Problems) -> list[dict[str, Any]]:
    """Each objective as Katib's ``objective`` (the first is the experiment's ``objective``)."""
    at = "spec.objectives"
    if not isinstance(objectives, list) or not objectives:
        problems.add(at, "required: one objective, {metric, direction}" if objectives in (None, []) else "must be a list")
        return []
    out = []
    for i, item in enumerate(objectives):
        if not _mapping_of(item, ("metric", "direction"), f"{at}[{i}]", "an objective", problems):
            continue
        metric = item.get("metric")
        if not isinstance(metric, str) or not 1 <= len(metric) <= MAX_NAME:
            problems.add(f"{at}[{i}].metric", f"required: the metric's name, 1 to {MAX_NAME} characters")
        direction = item.get("direction", "Minimize")
        if direction not in ("Minimize", "Maximize"):
            problems.add(f"{at}[{i}].direction", f"must be Minimize or Maximize (upstream's enum, case as written), got {direction!r}")
        out.append({"type": "maximize" if direction == "Maximize" else "minimize", "objectiveMetricName": metric})
    return out


def _counts(spec: Mapping[str, Any], problems: Problems) -> dict[str, int]:
    num = _whole(spec.get("numTrials", 1), "spec.numTrials", 1, None, problems)
    parallel = _whole(spec.get("parallelTrials", 1), "spec.parallelTrials", 1, MAX_PARALLEL_TRIALS, problems)
    if num is not None and parallel is not None and parallel > num:
        problems.add("spec.parallelTrials", f"parallelTrials cannot exceed numTrials ({parallel} > {num})")
    return {"maxTrialCount": num or 1, "parallelTrialCount": parallel or 1}


def _whole(value: Any, at: str, low: int, high: int | None, problems: Problems) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        limit = f"from {low} to {high}" if high is not None else f"at least {low}"
        problems.add(at, f"must be a whole number {limit}, got {value!r}")
        return None
    return value


# ---------------------------------------------------------------- parameters


def _parameters(items: Any, problems: Problems, fields: FieldMap) -> list[dict[str, Any] | None]:
    """Each parameter as Katib's (None where it is bad: reported)."""
    at = "spec.parameters"
    if not isinstance(items, list) or not items:
        problems.add(at, "required: at least one parameter" if items in (None, []) else "must be a list")
        return []
    if len(items) > MAX_PARAMETERS:
        problems.add(at, f"at most {MAX_PARAMETERS} parameters (upstream's maxItems), got {len(items)}")
    out: list[dict[str, Any] | None] = []
    for i, item in enumerate(items):
        fields.spaces.append(_space_kind(item))
        out.append(_parameter(item, f"{at}[{i}]", problems))
    _check_names(items, problems)
    return out


def _space_kind(item: Any) -> str:
    space = item.get("searchSpace") if isinstance(item, Mapping) else None
    kinds = [k for k in _SPACES if isinstance(space, Mapping) and space.get(k) is not None]
    return kinds[0] if len(kinds) == 1 else ""


def _mapping_of(item: Any, keys: tuple[str, str], at: str, what: str, problems: Problems) -> bool:
    """Whether ``item`` is a mapping (a problem when not); each key it has beyond ``keys`` is one."""
    if not isinstance(item, Mapping):
        problems.add(at, f"must be a mapping {{{', '.join(keys)}}}")
        return False
    for key in item:
        if key not in keys:
            problems.add(f"{at}.{key}", f"unknown field ({what} has {keys[0]} and {keys[1]})")
    return True


def _parameter(item: Any, at: str, problems: Problems) -> dict[str, Any] | None:
    if not _mapping_of(item, ("name", "searchSpace"), at, "a parameter", problems):
        return None
    name = item.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        problems.add(f"{at}.name", f"required: the parameter's name, 1 to {MAX_NAME} characters")
        name = None
    space = item.get("searchSpace")
    if not isinstance(space, Mapping):
        problems.add(f"{at}.searchSpace", "required: one of uniform, logUniform, categorical")
        return None
    given = [k for k in space if k in _SPACES and space[k] is not None]
    unknown = [k for k in space if k not in _SPACES]
    for key in unknown:
        problems.add(f"{at}.searchSpace.{key}", "unknown field (a searchSpace is one of uniform, logUniform, categorical)")
    if len(given) > 1 or (not given and not unknown):
        problems.add(f"{at}.searchSpace", "exactly one of uniform, logUniform, categorical must be set"
                     + (f" (got {', '.join(given)})" if given else ""))
    if len(given) != 1:
        return None
    kind = given[0]
    body = space[kind]
    s_at = f"{at}.searchSpace.{kind}"
    if not isinstance(body, Mapping):
        problems.add(s_at, "must be a mapping" + (" ({choices: [...]})" if kind == "categorical" else " ({min, max, type})"))
        return None
    read = _categorical(body, s_at, problems) if kind == "categorical" else _range(kind, body, s_at, problems)
    return None if read is None or name is None else {"name": name, **read}


def _categorical(body: Mapping[str, Any], at: str, problems: Problems) -> dict[str, Any] | None:
    for key in body:
        if key != "choices":
            problems.add(f"{at}.{key}", "unknown field (categorical has choices)")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        problems.add(f"{at}.choices", "required: a list of 1 or more strings")
        return None
    before = len(problems.items)
    if len(choices) > MAX_CHOICES:
        problems.add(f"{at}.choices", f"at most {MAX_CHOICES} choices (upstream's maxItems), got {len(choices)}")
    for j, choice in enumerate(choices):
        if not isinstance(choice, str):
            problems.add(f"{at}.choices[{j}]", f'must be a string, as upstream types a choice: write "{choice}" in quotes')
        elif len(choice) > MAX_NAME:
            problems.add(f"{at}.choices[{j}]", f"at most {MAX_NAME} characters, got {len(choice)}")
    if len(set(map(str, choices))) != len(choices):
        problems.add(f"{at}.choices", "choices must be distinct (upstream's listType: set)")
    if len(problems.items) > before:
        return None
    return {"parameterType": "categorical", "feasibleSpace": {"list": list(choices)}}


def _range(kind: str, body: Mapping[str, Any], at: str, problems: Problems) -> dict[str, Any] | None:
    for key in body:
        if key not in ("min", "max", "type"):
            problems.add(f"{at}.{key}", f"unknown field ({kind} has min, max and type)")
    low, high = (_double(body.get(b), f"{at}.{b}", problems) for b in ("min", "max"))
    value_type = body.get("type", "Float")
    if value_type not in ("Int", "Float"):
        problems.add(f"{at}.type", f"must be Int or Float (upstream's enum), got {value_type!r}")
        return None
    if low is None or high is None:
        return None
    if kind == "logUniform" and low <= 0:
        problems.add(at, "min must be strictly greater than 0")
        return None
    if low >= high:
        problems.add(at, "min must be strictly less than max")
        return None
    space: dict[str, Any] = {"min": low, "max": high}
    if kind == "logUniform":
        space["distribution"] = "logUniform"
    return {"parameterType": "int" if value_type == "Int" else "double", "feasibleSpace": space}


def _double(value: Any, at: str, problems: Problems) -> float | None:
    """Upstream's ``Double``: a string holding a decimal number."""
    if value is None:
        problems.add(at, "required field is missing")
        return None
    if not isinstance(value, str):
        problems.add(at, f"must be a string, as upstream types it: write \"{value}\" in quotes")
        return None
    if len(value) > MAX_NAME or not DOUBLE.match(value):
        problems.add(at, f"must be a decimal number such as \"0.01\" or \"1e-3\" (upstream's Double), got {value!r}")
        return None
    number = float(value)
    if number in (float("inf"), float("-inf")):
        problems.add(at, f"must be a finite number, got {value!r}")
        return None
    return number


def _check_names(items: list[Any], problems: Problems) -> None:
    """Distinct names (upstream's listType: map), and distinct variables for them."""
    seen: dict[str, int] = {}
    variables: dict[str, str] = {}
    for i, item in enumerate(items):
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not name:
            continue
        if name in seen:
            problems.add(f"spec.parameters[{i}].name", f"duplicate parameter name {name!r} (also spec.parameters[{seen[name]}])")
            continue
        seen[name] = i
        variable = env_name(name)
        if variable in variables:
            problems.add(f"spec.parameters[{i}].name", f"{name!r} and {variables[variable]!r} both reach the trial as {variable}")
        variables[variable] = name


# ---------------------------------------------------------------- the search algorithm


def _algorithm(value: Any, parameters: list[dict[str, Any] | None], problems: Problems, fields: FieldMap) -> dict[str, Any]:
    at = "spec.searchAlgorithm"
    if value is None:
        value = {"random": {}}  # upstream's default
    if not isinstance(value, Mapping):
        problems.add(at, "must be a mapping: one of random, grid (or raytune-k8s.io/algorithm, ours)")
        return {"algorithmName": "random"}
    given = [k for k in ("random", "grid", EXTENSION) if k in value and value[k] is not None]
    unknown = [k for k in value if k not in ("random", "grid", EXTENSION)]
    for key in unknown:
        problems.add(f"{at}.{key}", f"unknown field (upstream's algorithms are random and grid; {EXTENSION} is ours)")
    if len(given) > 1 or (not given and not unknown):
        problems.add(at, "exactly one of random, grid (or raytune-k8s.io/algorithm, ours) must be set"
                     + (f" (got {', '.join(given)})" if given else "; write random: {} or grid: {}"))
    if len(given) != 1:
        return {"algorithmName": "random"}
    kind = given[0]
    fields.algorithm_at = f"{at}.{kind}"
    if kind == "random":
        return _random(value["random"], f"{at}.random", problems, fields)
    if kind == "grid":
        if not isinstance(value["grid"], Mapping) or value["grid"]:
            problems.add(f"{at}.grid", "takes no fields: write grid: {}")
        for i, p in enumerate(parameters):
            if p is not None and p["parameterType"] != "categorical":
                problems.add(f"spec.parameters[{i}].searchSpace.{fields.spaces[i]}", "Grid search requires all parameters to be "
                             "Categorical; Uniform and LogUniform are not supported (upstream's rule)")
        return {"algorithmName": "grid"}
    return _extension(value[EXTENSION], f"{at}.{EXTENSION}", problems, fields)


def _random(body: Any, at: str, problems: Problems, fields: FieldMap) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        problems.add(at, "must be a mapping: {} or {seed: N}")
        return {"algorithmName": "random"}
    for key in body:
        if key != "seed":
            problems.add(f"{at}.{key}", "unknown field (random has seed)")
    seed = body.get("seed")
    if seed is None:
        return {"algorithmName": "random"}
    if isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**63:
        problems.add(f"{at}.seed", f"must be a whole number (a 64-bit integer), got {seed!r}")
        return {"algorithmName": "random"}
    fields.settings_at = [f"{at}.seed"]
    return {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": seed % 2**64}]}


def _extension(body: Any, at: str, problems: Problems, fields: FieldMap) -> dict[str, Any]:
    fields.algorithm_at = f"{at}.name"
    if not isinstance(body, Mapping):
        problems.add(at, "must be a mapping {name, settings}")
        return {"algorithmName": "random"}
    for key in body:
        if key not in ("name", "settings"):
            problems.add(f"{at}.{key}", "unknown field (name and settings)")
    name = body.get("name")
    if name in ("random", "grid"):
        problems.add(f"{at}.name", f"{name} is upstream's own: write searchAlgorithm.{name}")
    elif name in _NAS_ALGORITHMS:
        problems.add(f"{at}.name", f"{name} searches an architecture (a nasConfig), which an OptimizationJob has no place for")
    elif name not in EXTENSION_ALGORITHMS:
        problems.add(f"{at}.name", f"unknown algorithm {name!r}; choose one of {', '.join(EXTENSION_ALGORITHMS)}")
    settings = body.get("settings") or {}
    if not isinstance(settings, Mapping):
        problems.add(f"{at}.settings", "must be a mapping of setting names to values")
        settings = {}
    out = []
    for key, value in settings.items():
        if not isinstance(value, (str, int, float, bool)):
            problems.add(f"{at}.settings.{key}", "must be a number, a string or a boolean")
        out.append({"name": str(key), "value": value})
        fields.settings_at.append(f"{at}.settings.{key}")
    return {"algorithmName": str(name), "algorithmSettings": out}


# ---------------------------------------------------------------- the trial


def _trial_template(template: Any, parameters: list[dict[str, Any]], problems: Problems, notes: list[str],
                    fields: FieldMap) -> dict[str, Any]:
    """Katib's trialTemplate running the TrainJob, each parameter in its variable."""
    at = "spec.trainJobTemplate"
    if not isinstance(template, Mapping) or not isinstance(template.get("spec"), Mapping):
        problems.add(f"{at}.spec" if isinstance(template, Mapping) else at,
                     "required: a TrainJob's spec (runtimeRef, trainer)")
        return {}
    for key in template:
        if key not in ("metadata", "spec"):
            problems.add(f"{at}.{key}", "unknown field (a trainJobTemplate has metadata and spec)")
    metadata = _template_metadata(template.get("metadata"), f"{at}.metadata", problems, notes)
    _refuse_placeholders(template, at, problems)
    job_spec = dict(template["spec"])
    trainer = job_spec.get("trainer")
    if trainer is not None and not isinstance(trainer, Mapping):
        return {}  # the TrainJob reader says so
    trainer = dict(trainer or {})
    env = trainer.get("env") or []
    if not isinstance(env, list):
        problems.add(f"{_TRAINER_AT}.env", "must be a list of {name, value} entries")
        return {}
    ours = {env_name(p["name"]): p["name"] for p in parameters}
    for i, entry in enumerate(env):
        if isinstance(entry, Mapping) and entry.get("name") in ours:
            problems.add(f"{_TRAINER_AT}.env[{i}].name", f"{entry['name']} is set for parameter {ours[entry['name']]!r} "
                         "by the OptimizationJob; give the variable another name")
    fields.user_env = len(env)
    trainer["env"] = [*env, *({"name": v, "value": f"${{trialParameters.{v}}}"} for v in ours)]
    values = {str(e["name"]): str(e["value"]) for e in env if isinstance(e, Mapping) and "name" in e and "value" in e}
    values.update({v: f"${{trialParameters.{v}}}" for v in ours})
    for key in ("command", "args"):
        if isinstance(trainer.get(key), list):
            trainer[key] = [_expand(a, values, f"{_TRAINER_AT}.{key}[{i}]", notes) if isinstance(a, str) else a
                            for i, a in enumerate(trainer[key])]
    job_spec["trainer"] = trainer
    trial_spec = {"apiVersion": API_VERSION, "kind": TRAINJOB_KIND, "metadata": metadata, "spec": job_spec}
    return {"trialParameters": [{"name": v, "reference": name} for v, name in ours.items()], "trialSpec": trial_spec}


def _template_metadata(meta: Any, at: str, problems: Problems, notes: list[str]) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        problems.add(at, "must be a mapping")
        return {}
    if "name" in meta or "namespace" in meta:
        problems.add(at, "name and namespace cannot be set in a template (upstream's rule)")
    out = {}
    for key in meta:
        if key in ("labels", "annotations"):
            out[key] = meta[key]
            notes.append(f"{at}.{key}: kept on each trial's TrainJob; nothing here selects on them")
        elif key not in ("name", "namespace"):
            problems.add(f"{at}.{key}", "not supported in a template (set by the Kubernetes API)")
    return out


def _refuse_placeholders(value: Any, at: str, problems: Problems) -> None:
    """Katib's ``${trialParameters.x}`` means nothing to an OptimizationJob (upstream passes it on
    as text): refused rather than filled in here."""
    if isinstance(value, str):
        if PLACEHOLDER.search(value):
            problems.add(at, "an OptimizationJob gives a trial its parameters as KUBEFLOW_TRAINER_OPT_<NAME> variables "
                         "(in command/args: $(KUBEFLOW_TRAINER_OPT_<NAME>)), not ${trialParameters...} placeholders")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_placeholders(item, f"{at}.{key}", problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_placeholders(item, f"{at}[{i}]", problems)


def _expand(text: str, values: Mapping[str, str], at: str, notes: list[str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in a command or args: ``values`` holds the variables known
    before the trial starts (the parameters' ``KUBEFLOW_TRAINER_OPT_*``, as ``${trialParameters.*}``
    placeholders, and the trainer's own literal ``env``); ``$$`` is ``$``; a reference to another
    variable in capitals (a runtime's ``PET_*``, an env ``valueFrom``) stays as written, with a
    note; anything else (``$(nproc)`` in a shell line) as Kubernetes leaves it."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        if name in values:
            return values[name]
        if re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            notes.append(f"{at}: $({name}) is passed as written (Kubernetes would put the container's variable there; "
                         "here only the parameters' and the trainer's literal env values are expanded)")
        return m.group(0)

    return _K8S_REFERENCE.sub(one, text)


__all__ = ["API_VERSION", "ENV_PREFIX", "EXTENSION", "EXTENSION_ALGORITHMS", "KIND", "FieldMap", "env_name",
           "is_optimization_job", "optimization_job_to_spec"]
