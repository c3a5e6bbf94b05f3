"""The Tune function trainable of a command trial: one process (:mod:`.command`), a PBT
segment series, or a gang of replicas (:mod:`.gang`)."""

from __future__ import annotations

from typing import Any, Callable

from .command import CommandTrial, run_segments, run_trial_process, trial_files_dir
from .gang import run_gang


def command_trainable(trial: CommandTrial) -> Callable[[dict], None]:
    """A Tune function trainable running ``trial`` once per call."""

    def run_command(config: dict[str, Any]) -> None:
        from ray import tune

        context = tune.get_context()
        trial_dir = trial_files_dir()
        # Katib's trial name (the summary's): <experiment>-<trial id>
        trial_name = f"{context.get_experiment_name()}-{context.get_trial_id()}"
        if trial.distributed:
            run_gang(trial, config, trial_dir, trial_name, tune.report)
        elif trial.segments is None:
            run_trial_process(trial, config, trial_dir, trial_name, tune.report)
        else:
            run_segments(trial, config, trial_dir, trial_name)

    run_command.__name__ = run_command.__qualname__ = "command"
    return run_command
