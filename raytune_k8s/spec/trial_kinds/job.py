"""A ``batch/v1`` Job: its pod template at ``spec.template``; ``activeDeadlineSeconds`` is the
trial's time limit."""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..errors import Problems
from .base import PodTemplate, TemplateReading, TrialKindReader

JOB_NOTES = {
    "backoffLimit": "a failed trial is retried only by trial.retries",
    "ttlSecondsAfterFinished": "a trial's files stay in the experiment directory",
    "completions": "a trial is one process",
    "parallelism": "a trial is one process",
    "runPolicy": "a trial is one process; its restarts are trial.retries",
}


class BatchJobReader(TrialKindReader):
    kinds = (("batch/v1", "Job"),)

    def pod_template(self, job_spec: Mapping[str, Any], reading: TemplateReading) -> PodTemplate:
        timeout = None
        for key in job_spec:
            key_at = f"{reading.at}.spec.{key}"
            if key == "template":
                continue
            if key == "activeDeadlineSeconds":
                timeout = positive_seconds(job_spec[key], key_at, reading.problems)
            elif key in JOB_NOTES:
                reading.notes.append(f"{key_at}: no effect here: {JOB_NOTES[key]}")
            else:
                reading.problems.add(key_at, "not supported for trials here")
        return PodTemplate(job_spec.get("template"), f"{reading.at}.spec.template", timeout)


def positive_seconds(value: Any, at: str, problems: Problems) -> float | None:
    from ..nas import katib_number

    number = katib_number(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) or number <= 0:
        problems.add(at, f"must be a positive number of seconds, got {value!r}")
        return None
    return float(number)
