"""Trials: what one trial runs. Built-in trainables by name, ``module:function``, a command, or
Katib's ``trialTemplate`` (its primary container's command, run as a process).

``resolve_trainable`` turns a spec into a Ray Tune function trainable, raising SpecError for
anything that cannot run, before anything is started.

May import: ``spec``, ``collectors``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable

from ..spec import ExperimentSpec, SpecError, TrialTemplate, container_trial
from ..spec.trial_kinds import ContainerProcess, Gang, PodProcesses
from ..spec.trial_kinds.gang import shorthand_gang
from .command import CommandTrial, placeholders
from .trainable import command_trainable
from .declarations import BUILTINS as DECLARED
from .declarations import check_builtin_parameters

#: Built-in trainable name -> "module:function" (what each reads: :mod:`.declarations`).
BUILTINS: dict[str, str] = {name: builtin.target for name, builtin in DECLARED.items()}

Trainable = Callable[[dict[str, Any]], Any]


def command_trial(spec: ExperimentSpec, notes: list[str] | None = None) -> CommandTrial | None:
    """The command a spec's trials run (shorthand ``command`` or Katib's template), else None."""
    metrics = tuple(spec.objective.metrics)
    if spec.trial_template is not None:
        from ..spec.checks import NAS_ASSIGNMENTS

        names = [p.name for p in spec.parameters] + list(NAS_ASSIGNMENTS.get(spec.algorithm.name, ()))
        c = container_trial(spec.trial_template, names, notes if notes is not None else [], namespace=spec.namespace)
        return CommandTrial(
            argv=c.argv, metric_names=metrics, collector=spec.metrics_collector, env=dict(c.env), working_dir=c.working_dir,
            references=dict(c.references), namespace=spec.namespace, kind=c.kind, api_version=c.api_version,
            labels=dict(c.labels), annotations=dict(c.annotations), image=c.image, timeout_s=c.timeout_s,
            pod=c.pod, gang=c.gang,
        )
    trial = spec.trial
    if trial is None or trial.command is None:
        return None
    argv = trial.command if isinstance(trial.command, str) else tuple(trial.command)
    return CommandTrial(
        argv=argv, metric_names=metrics, collector=spec.metrics_collector, env=dict(trial.env), working_dir=trial.working_dir,
        fixed=dict(trial.fixed_parameters), namespace=spec.namespace, timeout_s=trial.timeout, gang=shorthand_gang_of(trial),
    )


def shorthand_gang_of(trial: TrialTemplate) -> Gang | None:
    """The short format's gang: ``trial.replicas`` copies of its command (None: one process
    with no framework)."""
    if trial.command is None or (trial.replicas == 1 and trial.framework == "none"):
        return None
    from .command import argv_of

    main = ContainerProcess(name=None, image=None, argv=tuple(argv_of(trial.command)), env=dict(trial.env),
                            working_dir=trial.working_dir, resources=trial.resources, at="trial.command")
    return shorthand_gang(trial.framework, trial.replicas, PodProcesses(main=main))


def with_env_sources(command: CommandTrial, namespace: str | None) -> CommandTrial:
    """``command`` with the Secret and ConfigMap values its pods read (SpecError before the run
    when they cannot be read, see :mod:`.env_sources`)."""
    from dataclasses import replace

    from .env_sources import resolve

    pods = [r.pod for r in command.gang.replicas] if command.gang is not None else []
    if command.pod is not None:
        pods.append(command.pod)
    sources = [s for pod in pods for s in pod.env_sources]
    resolved = resolve(sources, namespace)
    return replace(command, resolved_sources=resolved) if resolved else command


def resolve_trainable(spec: ExperimentSpec) -> Trainable:
    """The function Tune runs for each trial of this spec."""
    command = command_trial(spec)
    if command is not None:
        if spec.trial is not None:
            known = {p.name for p in spec.parameters} | set(spec.trial.fixed_parameters)
            for name in placeholders(command.argv if not isinstance(command.argv, str) else [command.argv]):
                if name not in known:
                    raise SpecError("trial.command", f"placeholder ${{trialParameters.{name}}} names no parameter; "
                                    f"known: {', '.join(sorted(known))}")
        return command_trainable(with_env_sources(command, spec.namespace))
    trial = spec.trial
    assert isinstance(trial, TrialTemplate)
    if trial.trainable is not None:
        target = BUILTINS.get(trial.trainable)
        if target is None:
            raise SpecError("trial.trainable", f"unknown trainable {trial.trainable!r}; choose one of {', '.join(BUILTINS)}")
        return _with_fixed(_import(target, "trial.trainable"), trial.fixed_parameters)
    assert trial.function is not None
    return _with_fixed(_import(trial.function, "trial.function"), trial.fixed_parameters)


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


#: Left in a trial's folder in the experiment directory when its function has returned: the
#: driver learns it a moment later, and a head lost in between would otherwise run the finished
#: trial again on resume (``raytune_k8s.recovery.reconcile`` reads it).
RETURNED_MARKER = ".function_returned"


def mark_returned() -> None:
    """Record, from inside the trial, that its function returned (see :data:`RETURNED_MARKER`)."""
    from ray import tune

    try:
        storage = tune.get_context().get_storage()
        path = f"{storage.trial_fs_path}/{RETURNED_MARKER}"
        with storage.storage_filesystem.open_output_stream(path):
            pass
    except Exception as exc:  # not in a Tune trial, or storage unreachable: the driver's word only
        print(f"warning: could not record that the trial's function returned ({type(exc).__name__}: {exc})")


def _with_fixed(fn: Trainable, fixed: dict[str, Any]) -> Trainable:
    """Run ``fn`` with the fixed parameters under the sampled ones; report a returned dict."""

    def trainable(config: dict[str, Any]) -> None:
        from ray import tune

        result = fn({**fixed, **config})
        if isinstance(result, dict):
            tune.report(result)
        mark_returned()

    trainable.__name__ = getattr(fn, "__name__", "trainable")
    trainable.__qualname__ = trainable.__name__
    return trainable


__all__ = ["BUILTINS", "CommandTrial", "check_builtin_parameters", "command_trial", "resolve_trainable"]
