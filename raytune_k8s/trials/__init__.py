"""Trials: what one trial runs. Built-in trainables by name, ``module:function``, or a command.

``resolve_trainable`` turns a spec's ``trial`` into a Ray Tune function trainable, raising
SpecError for anything that cannot run, before anything is started.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable

from ..spec import SpecError, Trial
from .command import command_trainable, placeholders

#: Built-in trainable name -> "module:function".
BUILTINS: dict[str, str] = {
    "mnist-mxnet": "raytune_k8s.trials.mnist_mxnet:train",
    "mnist-torch": "raytune_k8s.trials.mnist_torch:train",
    "branin": "raytune_k8s.trials.synthetic:branin",
    "hartmann6": "raytune_k8s.trials.synthetic:hartmann6",
    "replay": "raytune_k8s.trials.synthetic:replay",
}

Trainable = Callable[[dict[str, Any]], Any]


def resolve_trainable(trial: Trial, parameter_names: list[str], metric_names: list[str]) -> Trainable:
    """The function Tune runs for each trial of this spec."""
    if trial.trainable is not None:
        target = BUILTINS.get(trial.trainable)
        if target is None:
            raise SpecError("trial.trainable", f"unknown trainable {trial.trainable!r}; choose one of {', '.join(BUILTINS)}")
        return _with_fixed(_import(target, "trial.trainable"), trial.fixed_parameters)
    if trial.function is not None:
        return _with_fixed(_import(trial.function, "trial.function"), trial.fixed_parameters)
    known = set(parameter_names) | set(trial.fixed_parameters)
    for name in placeholders(trial.command):
        if name not in known:
            raise SpecError("trial.command", f"placeholder ${{trialParameters.{name}}} names no parameter; known: {', '.join(sorted(known))}")
    return command_trainable(trial.command, metric_names, trial.fixed_parameters)


def _import(target: str, field: str) -> Trainable:
    module_name, _, attr = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the user's modules sit in the working dir
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(field, f"cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise SpecError(field, f"{module_name!r} has no function {attr!r}")
    return fn


def _with_fixed(fn: Trainable, fixed: dict[str, Any]) -> Trainable:
    """Run ``fn`` with the fixed parameters under the sampled ones; report a returned dict."""

    def trainable(config: dict[str, Any]) -> None:
        from ray import tune

        result = fn({**fixed, **config})
        if isinstance(result, dict):
            tune.report(result)

    trainable.__name__ = getattr(fn, "__name__", "trainable")
    trainable.__qualname__ = trainable.__name__
    return trainable


__all__ = ["BUILTINS", "resolve_trainable"]
