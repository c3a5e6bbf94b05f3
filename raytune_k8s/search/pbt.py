"""Population Based Training (Jaderberg et al. 2017) through Ray Tune's ``PopulationBasedTraining``.

The searcher draws the population (``n_population`` random configurations, then it is done);
the scheduler steers the running trials. Every ``perturbation_interval`` reported results a
trial in the bottom ``truncation_threshold`` of the population *exploits* one in the top
fraction - it is restarted from a copy of that trial's latest checkpoint, with its parameters -
and *explores*: each parameter is resampled from its feasible space with probability
``resample_probability``, else perturbed (numbers times 0.8 or 1.2, kept in [min, max] and on
the step grid; a choice moves to a neighbouring value). So trials must checkpoint and resume from
``tune.get_checkpoint()``, as the built-in ``mnist-mxnet`` and ``mnist-torch`` trials do.

Katib's PBT runs each trial as one short segment and starts a new trial from a parent's copied
checkpoint; Tune keeps one trial per population member and restarts it in place: same decisions,
fewer trials (``maxTrialCount`` caps the population).

Command trials run Katib's way (:class:`~raytune_k8s.trials.command.Segments`): each run of the
command is one segment, the path ``suggestion_trial_dir`` in the command stands for the trial's
own checkpoint directory, and decisions fall between segments (``perturbation_interval`` counts
segments). ``maxTrialCount`` counts segments, as Katib counts trials: each member trains
``maxTrialCount // members`` of them (counted on its model, which an exploit copies).

Settings (Katib's): ``n_population`` (required, >= 5), ``truncation_threshold`` (required, in
[0, 0.5]), ``resample_probability`` (default: never resample, only perturb, as in Katib),
``suggestion_trial_dir`` (where command trials keep their checkpoints, see
:attr:`PopulationScheduler.suggestion_trial_dir`; Katib's example uses
/var/log/katib/checkpoints/); ours: ``perturbation_interval`` (reported results between
decisions, default 1: Katib decides after every segment), ``random_state`` (the initial
population; Ray's exploit/explore draws use Python's ``random``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import numpy as np
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.search import Searcher

from .space import Dimension, SearchSpace
from .._tune.internals import set_pbt_time_attr
from ..spec import Objective, SpecError
from ..spec.settings import Settings
from ..trials.command import SEGMENTS, CommandTrial, Segments
from . import Search
from .random import RandomSearcher

_FIELD = "algorithm.algorithmSettings"
DEFAULT_TRIAL_DIR = "/var/log/katib/checkpoints/"


class PopulationSearcher(RandomSearcher):
    """Random configurations for the first ``size`` trials, then FINISHED."""

    def __init__(self, space: SearchSpace, metric: str, mode: str, size: int, seed: int | None = None):
        super().__init__(space, metric, mode, seed)
        self.size = size
        self._made = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str:  # type: ignore[override]  # Ray's Searcher.suggest leaves out its own FINISHED (a str)
        if self._made >= self.size:
            return Searcher.FINISHED
        self._made += 1
        return super().suggest(trial_id)

    def get_state(self) -> dict:
        return {**super().get_state(), "made": self._made}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._made = state["made"]


class _Resample:
    """Draw a numeric parameter afresh from its distribution (picklable, unlike a lambda)."""

    def __init__(self, dimension: Dimension):
        self.dimension = dimension
        self.rng = np.random.default_rng()

    def __call__(self) -> Any:
        return self.dimension.sample(self.rng)


class _KeepFeasible:
    """After Ray's perturbation: numbers back into [min, max] and onto their step grid."""

    def __init__(self, space: SearchSpace):
        self.numeric = [d for d in space if not d.is_choice]

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, **{d.name: d.snap(config[d.name]) for d in self.numeric if d.name in config}}


class PopulationScheduler(PopulationBasedTraining):
    """Ray's PBT scheduler, with what command trials need to know."""

    def __init__(self, *, suggestion_trial_dir: str, population: int, **kwargs: Any):
        super().__init__(**kwargs)
        #: Katib's ``suggestion_trial_dir``: where a command names it (``--checkpoint=<dir>``), its
        #: process gets its trial's own checkpoint directory, seeded from the checkpoint it resumes from.
        self.suggestion_trial_dir = suggestion_trial_dir
        self.population = population
        self.segments_each: int | None = None

    def for_command_trials(self, trial: CommandTrial, max_trials: int | None) -> CommandTrial:
        """``trial`` run in segments (Katib's PBT trials); from now on PBT's clock is the number of
        segments a trial's model has trained, so decisions fall between the process runs."""
        members = min(self.population, max_trials) if max_trials else self.population
        self.segments_each = max(1, max_trials // members) if max_trials else None
        set_pbt_time_attr(self, SEGMENTS)
        return dataclasses.replace(trial, segments=Segments(self.suggestion_trial_dir, self.segments_each))

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self.segments_each is not None and result.get(SEGMENTS, 0) >= self.segments_each:
            return self.CONTINUE  # the member's last segment: it ends, nothing to exploit or copy
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        # Ray's PBT refuses every Searcher: one that learns from results would be misled by the
        # configurations PBT changes under it. Ours only draws the population at random, like
        # Tune's own generator, and the searcher actor host needs a Searcher.
        super().on_trial_add(cast(Any, _WithoutSearcher(tune_controller)), trial)  # the controller, but for search_alg


class _WithoutSearcher:
    """The controller as PBT's check sees it: no search algorithm."""

    search_alg = None

    def __init__(self, controller: Any):
        self._controller = controller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._controller, name)


def create(space: SearchSpace, objective: Objective, settings: Settings) -> Search:
    for required in ("n_population", "truncation_threshold"):
        if required not in settings:
            raise SpecError(_FIELD, f"pbt needs the setting {required!r}")
    population = settings.integer("n_population", 5, minimum=5)
    truncation = settings.number("truncation_threshold", 0.2, 0.0, 0.5)
    resample = settings.number("resample_probability", 0.0, 0.0, 1.0)
    trial_dir = settings.text("suggestion_trial_dir", DEFAULT_TRIAL_DIR)
    interval = settings.integer("perturbation_interval", 1, minimum=1)
    seed = settings.optional_integer("random_state")
    if not len(space):
        raise SpecError("parameters", "pbt needs at least one parameter to explore")
    mutations = {d.name: list(d.values) if d.is_choice else _Resample(d) for d in space}
    scheduler = PopulationScheduler(
        suggestion_trial_dir=trial_dir,
        population=population,
        time_attr="training_iteration",  # metric and mode come from the TuneConfig, as for every scheduler
        perturbation_interval=interval,
        hyperparam_mutations=mutations,
        quantile_fraction=truncation,
        resample_probability=resample,
        perturbation_factors=(1.2, 0.8),
        custom_explore_fn=_KeepFeasible(space),
    )
    return Search(PopulationSearcher(space, objective.metric, objective.mode, population, seed), scheduler)
