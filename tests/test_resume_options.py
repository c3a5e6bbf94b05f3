"""``run(resume_if_exists=True)`` on an experiment that exists: what it honours, what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

import raytune_k8s
from raytune_k8s.reporting import REPORT_FILE
from raytune_k8s.spec import SpecError


def _spec() -> dict:
    return {
        "name": "resume-options",
        "objective": {"type": "minimize", "objectiveMetricName": "value"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 5}]},
        "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10}},
                       {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15}}],
        "parallelTrialCount": 1, "maxTrialCount": 2,
        "trial": {"trainable": "branin", "resources": {"cpu": 1}},
    }


def test_resume_if_exists_writes_the_report_and_refuses_what_it_cannot_honour(ray_connected, tmp_path):
    first = raytune_k8s.run(_spec(), storage_path=tmp_path, report=False)
    experiment_dir = Path(first["experiment_dir"])
    assert first["status"] == "Succeeded" and not (experiment_dir / REPORT_FILE).exists()

    again = raytune_k8s.run(_spec(), storage_path=tmp_path, resume_if_exists=True, report=True)
    assert again["trials"] == 2 and (experiment_dir / REPORT_FILE).exists(), "report=True is honoured on resume"

    (experiment_dir / REPORT_FILE).unlink()
    raytune_k8s.run(_spec(), storage_path=tmp_path, resume_if_exists=True, report=False)
    assert not (experiment_dir / REPORT_FILE).exists(), "report=False too"

    from ray.tune.search.optuna import OptunaSearch

    for kwargs, field in (({"optuna_storage": str(tmp_path / "mirror.log")}, "optuna_storage"),
                          ({"searcher": OptunaSearch()}, "searcher")):
        with pytest.raises(SpecError) as refused:
            raytune_k8s.run(_spec(), storage_path=tmp_path, resume_if_exists=True, **kwargs)
        assert refused.value.field == field, refused.value
        assert not (tmp_path / "mirror.log").exists()
