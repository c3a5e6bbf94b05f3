"""The experiment file: Katib v1beta1's ``Experiment`` (the full manifest, or its ``spec`` plus
``name``) or Kubeflow Trainer's ``OptimizationJob``, as typed models, loaded and checked with
every error naming its field.

* ``models``: the pydantic models, with Katib's field names;
* ``katib``: recognising a manifest and reading its ``trialTemplate``;
* ``optimization_job``: Kubeflow Trainer's ``OptimizationJob`` read as a spec (its TrainJob the trial);
* ``trial_kinds``: one reader per Katib trial kind (Job, PyTorchJob, TFJob, XGBoostJob; refusals);
* ``checks``: the cross-field rules; ``quantities``: Kubernetes quantities;
* ``loading``: files -> checked specs; ``errors``: :class:`SpecError`.

Imports nothing else of ours, and no Ray.
"""

from .errors import SpecError
from .katib import ContainerTrial, container_trial
from .loading import LoadedSpec, load_document, parse_spec
from .models import Algorithm, EarlyStopping, ExperimentSpec, FeasibleSpace, KatibTrialTemplate, MetricsCollectorSpec, Objective, Parameter, Resources, Scalar, Setting, TrialTemplate
from .quantities import parse_count, parse_cpu, parse_memory
from .strategy import metric_value


def load_spec(source: "str | ExperimentSpec | dict") -> ExperimentSpec:
    """Parse and check a spec (both formats); raise :class:`SpecError` naming every bad field."""
    return parse_spec(source)


__all__ = [
    "Algorithm", "ContainerTrial", "EarlyStopping", "ExperimentSpec", "FeasibleSpace", "KatibTrialTemplate",
    "LoadedSpec", "MetricsCollectorSpec", "Objective", "Parameter", "Resources", "Scalar", "Setting", "SpecError",
    "TrialTemplate", "container_trial", "load_document", "load_spec", "metric_value", "parse_count", "parse_cpu", "parse_memory",
    "parse_spec",
]
