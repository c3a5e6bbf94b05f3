"""Trial kinds with no single-process meaning (refused, saying why), and any kind not known."""

from __future__ import annotations

from typing import Any, Mapping, NoReturn

from ..errors import SpecError
from .base import TemplateReading, TrialKindReader


class RefusedKindReader(TrialKindReader):
    """A Katib trial kind this project refuses, with its reason."""

    reason: str

    def pod_template(self, job_spec: Mapping[str, Any], reading: TemplateReading) -> NoReturn:
        raise SpecError(f"{reading.at}.kind", f"{reading.kind} is not supported here: {self.reason}")


_DISTRIBUTED = "a distributed job kind with no single-process meaning here"


class MPIJobReader(RefusedKindReader):
    kinds = ((None, "MPIJob"),)
    reason = ("an MPIJob's launcher reaches its workers through mpirun over kubectl exec, which has no counterpart "
              "among Ray's processes here; run it as a PyTorchJob or TFJob gang, or with torchrun/horovodrun in a Job")


class ArgoWorkflowReader(RefusedKindReader):
    kinds = ((None, "Workflow"),)
    reason = "an Argo Workflow is a graph of pods; run its training step as a Job-style command instead"


class TektonPipelineRunReader(RefusedKindReader):
    kinds = ((None, "PipelineRun"),)
    reason = "a Tekton PipelineRun is a graph of tasks; run its training step as a Job-style command instead"


class PaddleJobReader(RefusedKindReader):
    kinds = ((None, "PaddleJob"),)
    reason = _DISTRIBUTED


class JAXJobReader(RefusedKindReader):
    kinds = ((None, "JAXJob"),)
    reason = _DISTRIBUTED


class UnknownKindReader(TrialKindReader):
    """Every other kind (or none): what can run instead."""

    def pod_template(self, job_spec: Mapping[str, Any], reading: TemplateReading) -> NoReturn:
        kind, api_version = reading.kind, reading.api_version
        raise SpecError(f"{reading.at}.kind", f"{kind or 'no kind'} ({api_version or 'no apiVersion'}) is not a trial kind "
                        "this project can run; use a batch/v1 Job, a PyTorchJob, TFJob, XGBoostJob or TrainJob")
