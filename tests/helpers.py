"""Plain helpers the test modules share (fixtures live in conftest.py): waiting for an event,
and the small experiment specs and searchers several modules build. No test module imports
another; what two of them need is here."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]

#: Branin's box, the two parameters most specs here search.
BRANIN_PARAMETERS = [
    {"name": "x", "parameterType": "double", "feasibleSpace": {"min": -5, "max": 10}},
    {"name": "y", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 15}},
]


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "the condition", *,
             interval: float = 0.05, proc: subprocess.Popen | None = None) -> Any:
    """Wait for an event: return ``predicate()``'s first truthy value. ``timeout`` only bounds a
    hang (make it generous: a busy 2-core machine is slow, never wrong); reaching it fails the
    test, naming ``what``. With ``proc``, a process that exits meanwhile fails it at once."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read()[-3000:] if proc.stdout else ""
            raise AssertionError(f"{what}: the process exited early with {proc.returncode}: {out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(interval)


def spec_dict(name: str = "t", *, algorithm: str = "random", settings: list[dict] | None = None,
              parameters: list[dict] | None = None, objective: str = "minimize", metric: str = "value",
              trials: int | None = 10, parallel: int | None = None, trial: dict | None = None, **extra: Any) -> dict:
    """An experiment spec in this project's format: Branin's parameters and trainable unless told."""
    spec: dict[str, Any] = {
        "name": name,
        "objective": {"type": objective, "objectiveMetricName": metric},
        "algorithm": {"algorithmName": algorithm, **({"algorithmSettings": settings} if settings is not None else {})},
        "parameters": parameters if parameters is not None else BRANIN_PARAMETERS,
        "trial": trial if trial is not None else {"trainable": "branin"},
        **extra,
    }
    if trials is not None:
        spec["maxTrialCount"] = trials
    if parallel is not None:
        spec["parallelTrialCount"] = parallel
    return spec


def branin_spec(algorithm: str, seed: int, extra: list | None = None) -> Any:
    """A parsed 40-trial Branin spec for ``algorithm`` with ``random_state`` ``seed`` (and ``extra`` settings)."""
    from raytune_k8s.spec import parse_spec

    return parse_spec(spec_dict("branin", algorithm=algorithm, trials=40,
                                settings=[{"name": "random_state", "value": seed}, *(extra or [])]))


def searcher_for(spec: Any) -> Any:
    """The Tune searcher a parsed spec's algorithm builds (no Ray needed)."""
    from raytune_k8s.search import create_searcher
    from raytune_k8s.search.space import SearchSpace

    return create_searcher(spec.algorithm, SearchSpace.from_spec(spec), spec.objective)


def run_sequential(searcher: Any, n: int) -> list[float]:
    """``n`` trials one after another on Branin, as Tune would report them: the values, in order."""
    from raytune_k8s.trials.synthetic import branin_value

    values = []
    for i in range(n):
        config = searcher.suggest(str(i))
        assert isinstance(config, dict), f"suggestion {i} of {n}: {config!r}"
        value = branin_value(config["x"], config["y"])
        searcher.on_trial_complete(str(i), {"value": value})
        values.append(value)
    return values


def grid_of_twelve() -> Any:
    """A grid searcher over 6 ints x 2 categories: 12 points, each to be handed out once."""
    from raytune_k8s.spec import parse_spec

    return searcher_for(parse_spec(spec_dict("g", algorithm="grid", metric="v", trials=12, parameters=[
        {"name": "a", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 6}},
        {"name": "b", "parameterType": "categorical", "feasibleSpace": {"list": ["x", "y"]}},
    ])))


GRID_OF_TWELVE_POINTS = sorted((a, b) for a in range(1, 7) for b in ("x", "y"))


def witness_spec(name: str, log_dir: Path, *, trials: int, parallel: int = 2, steps: int = 5, sleep: float = 0.3,
                 retries: int = 2, goal: float | None = None) -> dict[str, Any]:
    """An experiment of ``raytune_k8s.trials.witness`` trials (each logs what it saw acknowledged
    to ``log_dir``), for the reliability and resume tests."""
    objective: dict[str, Any] = {"type": "maximize", "objectiveMetricName": "accuracy"}
    if goal is not None:
        objective["goal"] = goal
    return {
        "name": name,
        "objective": objective,
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 3}]},
        "parameters": [{"name": "lr", "parameterType": "double",
                        "feasibleSpace": {"min": "1e-4", "max": "1", "distribution": "logUniform"}}],
        "parallelTrialCount": parallel,
        "maxTrialCount": trials,
        "trial": {"function": "raytune_k8s.trials.witness:witness", "resources": {"cpu": 1}, "retries": retries,
                  "fixedParameters": {"steps": steps, "sleep": sleep, "log_dir": str(log_dir)}},
    }
