"""Typed models of an experiment: Katib v1beta1's ``Experiment.spec`` plus ``name``, and the
project's own ``trial`` shorthand. Field aliases are Katib's names."""

from __future__ import annotations

from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .nas import KatibList, NasConfig, katib_number
from .objectives import Constraint, ObjectiveTarget, Targets

Scalar = Union[bool, int, float, str]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class MetricStrategy(_Model):
    """Which of a metric's reported values is its observation (Katib's ``metricStrategies``)."""

    name: str = Field(min_length=1)
    value: Literal["min", "max", "latest"]


class Objective(_Model):
    type: Literal["maximize", "minimize"]
    metric: str = Field(alias="objectiveMetricName", min_length=1)
    goal: float | None = None
    additional_metrics: KatibList[str] = Field(default_factory=list, alias="additionalMetricNames")
    metric_strategies: KatibList[MetricStrategy] = Field(default_factory=list, alias="metricStrategies")

    @property
    def mode(self) -> Literal["max", "min"]:
        return "max" if self.type == "maximize" else "min"

    @property
    def metrics(self) -> list[str]:
        """The objective first, then the additional metrics."""
        return [self.metric, *[m for m in self.additional_metrics if m != self.metric]]

    def strategy(self, metric: str) -> Literal["min", "max", "latest"]:
        """Katib's default: the objective takes its best (min or max), other metrics their latest."""
        for s in self.metric_strategies:
            if s.name == metric:
                return s.value
        return self.mode if metric == self.metric else "latest"

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b``."""
        return a > b if self.type == "maximize" else a < b

    def reached(self, value: float) -> bool:
        """True when ``value`` meets the goal (if there is one)."""
        if self.goal is None:
            return False
        return value >= self.goal if self.type == "maximize" else value <= self.goal


class Setting(_Model):
    name: str = Field(min_length=1)
    value: Scalar


class Resources(_Model):
    """What one trial (or the searcher actor) needs; ``cpu`` may be ``"500m"``."""

    cpu: float | str = 1.0
    gpu: float | str = 0.0
    memory: str | int | None = None


class Algorithm(_Model):
    name: str = Field(alias="algorithmName", min_length=1)
    settings: KatibList[Setting] = Field(default_factory=list, alias="algorithmSettings")
    resources: Resources | None = None

    def settings_dict(self) -> dict[str, Scalar]:
        return {s.name: s.value for s in self.settings}


class EarlyStopping(_Model):
    name: str = Field(alias="algorithmName", min_length=1)
    settings: KatibList[Setting] = Field(default_factory=list, alias="algorithmSettings")

    def settings_dict(self) -> dict[str, Scalar]:
        return {s.name: s.value for s in self.settings}


class FeasibleSpace(_Model):
    min: float | None = None
    max: float | None = None
    step: float | None = None
    values: list[Scalar] | None = Field(default=None, alias="list")
    distribution: Literal["uniform", "logUniform", "normal", "logNormal"] = "uniform"


class Parameter(_Model):
    name: str = Field(min_length=1)
    type: Literal["double", "int", "discrete", "categorical"] = Field(alias="parameterType")
    space: FeasibleSpace = Field(alias="feasibleSpace")


class TrialTemplate(_Model):
    """The project's shorthand for what a trial runs: exactly one of a built-in trainable, a
    Python function or a command."""

    trainable: str | None = None
    function: str | None = None
    command: list[str] | str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    working_dir: str | None = Field(default=None, alias="workingDir")
    fixed_parameters: dict[str, Scalar] = Field(default_factory=dict, alias="fixedParameters")
    resources: Resources = Field(default_factory=Resources)
    retries: int = Field(default=0, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    #: processes per trial (a command's gang; replica 0 is the master and the primary), each with ``resources``
    replicas: int = Field(default=1, ge=1, le=1024)
    #: whose environment the replicas get: pytorch (MASTER_ADDR, RANK, ...), tensorflow (TF_CONFIG), xgboost, none
    framework: Literal["pytorch", "tensorflow", "xgboost", "none"] = "none"


# ---------------------------------------------------------------- Katib's trialTemplate


class TrialParameter(_Model):
    name: str = Field(min_length=1)
    description: str | None = None
    reference: str = Field(min_length=1)


class ConfigMapSource(_Model):
    config_map_name: str | None = Field(default=None, alias="configMapName")
    config_map_namespace: str | None = Field(default=None, alias="configMapNamespace")
    template_path: str | None = Field(default=None, alias="templatePath")


class KatibTrialTemplate(_Model):
    """Katib's ``trialTemplate``: a Kubernetes object (``trialSpec``, or a ``configMap``) with
    ``${trialParameters.NAME}`` placeholders. Its primary container is what a trial runs."""

    primary_container_name: str | None = Field(default=None, alias="primaryContainerName")
    primary_pod_labels: dict[str, str] | None = Field(default=None, alias="primaryPodLabels")
    trial_parameters: KatibList[TrialParameter] = Field(default_factory=list, alias="trialParameters")
    trial_spec: dict[str, Any] | None = Field(default=None, alias="trialSpec")
    config_map: ConfigMapSource | None = Field(default=None, alias="configMap")
    success_condition: str | None = Field(default=None, alias="successCondition")
    failure_condition: str | None = Field(default=None, alias="failureCondition")
    retain: bool = False


# ---------------------------------------------------------------- metrics collection


class FileSystemPath(_Model):
    path: str = Field(min_length=1)
    kind: Literal["File", "Directory"] = "File"
    format: Literal["TEXT", "JSON"] = "TEXT"


class MetricsFilter(_Model):
    metrics_format: KatibList[str] = Field(default_factory=list, alias="metricsFormat")


class MetricsSource(_Model):
    file_system_path: FileSystemPath | None = Field(default=None, alias="fileSystemPath")
    filter: MetricsFilter | None = None
    http_get: dict[str, Any] | None = Field(default=None, alias="httpGet")


class Collector(_Model):
    kind: Literal["StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "None", "Push"] = "StdOut"
    custom_collector: dict[str, Any] | None = Field(default=None, alias="customCollector")


class MetricsCollectorSpec(_Model):
    """Katib's ``metricsCollectorSpec``: how a trial's metrics are read (default: StdOut)."""

    source: MetricsSource | None = None
    collector: Collector = Field(default_factory=Collector)


# ---------------------------------------------------------------- the experiment


class ExperimentSpec(_Model):
    name: str = Field(min_length=1, max_length=63)
    namespace: str | None = None
    objective: Objective
    algorithm: Algorithm
    early_stopping: EarlyStopping | None = Field(default=None, alias="earlyStopping")
    parameters: KatibList[Parameter] = Field(default_factory=list)
    parallel_trials: int = Field(default=3, gt=0, le=100_000, alias="parallelTrialCount")
    max_trials: int | None = Field(default=None, gt=0, le=10_000_000, alias="maxTrialCount")
    max_failed_trials: int | None = Field(default=None, ge=0, le=10_000_000, alias="maxFailedTrialCount")
    resume_policy: Literal["Never", "LongRunning", "FromVolume"] = Field(default="Never", alias="resumePolicy")
    metrics_collector: MetricsCollectorSpec = Field(default_factory=MetricsCollectorSpec, alias="metricsCollectorSpec")
    nas_config: NasConfig | None = Field(default=None, alias="nasConfig")
    trial: TrialTemplate | None = None
    trial_template: KatibTrialTemplate | None = Field(default=None, alias="trialTemplate")
    #: several objectives (OptimizationJob's shape; the project's extension): see ``spec.objectives``
    objectives: KatibList[ObjectiveTarget] = Field(default_factory=list)
    constraints: KatibList[Constraint] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _objective_of_objectives(cls, data: Any) -> Any:
        """With ``objectives``, ``objective`` is the first one (written out when not given), the
        others and the constrained metrics are its additional metrics (so collectors read them),
        and each objective's value is its best report unless a metricStrategy says otherwise."""
        if not isinstance(data, dict):
            return data
        objectives, constraints = data.get("objectives") or [], data.get("constraints") or []
        if not isinstance(objectives, list) or not isinstance(constraints, list):
            return data
        targets = [o for o in objectives if isinstance(o, dict) and isinstance(o.get("metric"), str)]
        if not targets and not constraints:
            return data
        objective = data.get("objective")
        if objective is None and targets:
            first = targets[0]
            direction = str(first.get("direction", "")).lower()  # a wrong one: objectives[0].direction says so, once
            objective = {"type": direction if direction in ("maximize", "minimize") else "minimize",
                         "objectiveMetricName": first["metric"]}
        if not isinstance(objective, dict):
            return data
        objective = dict(objective)
        main = objective.get("objectiveMetricName", objective.get("metric"))
        extra = list(objective.get("additionalMetricNames", objective.get("additional_metrics")) or [])
        strategies = list(objective.get("metricStrategies", objective.get("metric_strategies")) or [])
        named = {s.get("name") for s in strategies if isinstance(s, dict)}
        for target in targets[1:]:
            direction = str(target.get("direction", "")).lower()
            if target["metric"] not in named and direction in ("maximize", "minimize"):
                strategies.append({"name": target["metric"], "value": "max" if direction == "maximize" else "min"})
        wanted = [t["metric"] for t in targets[1:]] + [c.get("metric") for c in constraints if isinstance(c, dict)]
        for metric in wanted:
            if isinstance(metric, str) and metric != main and metric not in extra:
                extra.append(metric)
        for key in ("additional_metrics", "metric_strategies"):
            objective.pop(key, None)
        objective.update(additionalMetricNames=extra, metricStrategies=strategies)
        return {**data, "objective": objective}

    @property
    def targets(self) -> Targets:
        """The objectives (``objectives``, or the one ``objective``) and the constraints."""
        objectives = tuple(self.objectives) or (ObjectiveTarget(metric=self.objective.metric, direction=self.objective.type),)
        return Targets(objectives, tuple(self.constraints))

    @field_validator("parameters", mode="before")
    @classmethod
    def _discrete_lists_hold_numbers(cls, value: Any) -> Any:
        # Katib's CRD types a discrete list as strings (["16", "32"]): read them as numbers.
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, dict) and item.get("parameterType") == "discrete":
                space = item.get("feasibleSpace")
                if isinstance(space, dict) and isinstance(space.get("list"), list):
                    item = {**item, "feasibleSpace": {**space, "list": [katib_number(v) for v in space["list"]]}}
            out.append(item)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(by_alias=True, exclude_none=True), sort_keys=False)

