"""Katib's trial kinds: one reader per ``trialSpec`` kind behind one interface,
:class:`~.base.TrialKindReader` (``kinds``: its apiVersion/kind pairs; ``read``: the template's
:class:`~.base.ContainerTrial`).

* ``base``: the interface, :class:`~.base.TemplateReading` and the pod template every kind holds;
* ``container``: the primary container -> argv, env, working directory, resources;
* ``pod``: a pod template's processes: init containers, main container, volumes, env sources;
* ``gang``: the replicas of a distributed trial, its primary ones, when it succeeds;
* ``job``: a batch/v1 Job; ``training_operator``: PyTorchJob, TFJob, XGBoostJob; ``trainer``: TrainJob;
* ``refused``: MPIJob, Argo Workflow, Tekton PipelineRun, PaddleJob, JAXJob; any other kind.

:func:`reader_for` picks the reader of a kind from :data:`READERS`.
"""

from __future__ import annotations

from .base import PLACEHOLDER, ContainerTrial, PodTemplate, TemplateReading, TrialKindReader
from .job import BatchJobReader
from .refused import (ArgoWorkflowReader, JAXJobReader, MPIJobReader, PaddleJobReader, RefusedKindReader,
                      TektonPipelineRunReader, UnknownKindReader)
from .gang import Gang, Replica
from .pod import ContainerProcess, EnvSource, PodProcesses, Volume, VolumeMount
from .trainer import TrainJobReader
from .training_operator import PyTorchJobReader, ReplicatedJobReader, TFJobReader, XGBoostJobReader

_ALL: tuple[TrialKindReader, ...] = (
    BatchJobReader(), PyTorchJobReader(), TFJobReader(), XGBoostJobReader(), TrainJobReader(),
    MPIJobReader(), ArgoWorkflowReader(), TektonPipelineRunReader(), PaddleJobReader(), JAXJobReader(),
)
#: (apiVersion, kind) -> its reader; apiVersion None: any apiVersion.
READERS: dict[tuple[str | None, str], TrialKindReader] = {pair: reader for reader in _ALL for pair in reader.kinds}
UNKNOWN = UnknownKindReader()


def reader_for(api_version: str, kind: str) -> TrialKindReader:
    """The reader of ``kind`` at ``api_version`` (the one for any apiVersion otherwise; the
    refusal of unknown kinds when neither)."""
    return READERS.get((api_version, kind)) or READERS.get((None, kind)) or UNKNOWN


__all__ = [
    "PLACEHOLDER", "READERS", "UNKNOWN", "ArgoWorkflowReader", "BatchJobReader", "ContainerProcess", "ContainerTrial",
    "EnvSource", "Gang", "JAXJobReader", "PodProcesses", "Replica", "TrainJobReader", "Volume", "VolumeMount",
    "MPIJobReader", "PaddleJobReader", "PodTemplate", "PyTorchJobReader", "RefusedKindReader", "ReplicatedJobReader",
    "TFJobReader", "TektonPipelineRunReader", "TemplateReading", "TrialKindReader", "UnknownKindReader", "XGBoostJobReader",
    "reader_for",
]
