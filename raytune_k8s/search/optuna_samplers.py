"""Optuna samplers as Tune searchers: a thin ask/tell adapter, and the Katib algorithms served by
Optuna (``tpe``'s default engine, ``multivariate-tpe``, ``sobol``).

Ray's ``OptunaSearch`` would do, but it converts spaces itself and stores no pending-trial
bookkeeping we can snapshot; asking Optuna with our own distributions keeps one mapping (the one
``benchmarks.search_quality`` gives Optuna's samplers directly, so the same seed gives the same
trials) and the whole state is the study, which pickles.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Callable

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from .space import Dimension, SearchSpace
from ..spec import Objective
from ..spec.objectives import Targets
from ..spec.settings import Settings
from .stateful import StatefulSearcher

if TYPE_CHECKING:
    from . import Search

optuna.logging.set_verbosity(optuna.logging.WARNING)


def distribution(d: Dimension) -> BaseDistribution:
    """A dimension as an Optuna distribution (normal ones searched uniformly within [min, max])."""
    if d.is_choice:
        return CategoricalDistribution(list(d.values))
    assert d.low is not None and d.high is not None
    if d.kind == "int":
        step = 1 if d.is_log else int(d.step or 1)
        return IntDistribution(int(d.low), int(d.high), step=step, log=d.is_log)
    return FloatDistribution(d.low, d.high, step=None if d.is_log else d.step, log=d.is_log)


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    return {d.name: distribution(d) for d in space}


class OptunaSearcher(StatefulSearcher):
    """Asks an in-memory Optuna study for each trial and tells it the result.

    Trials still running stay RUNNING in the study, so samplers that account for them (TPE's
    ``constant_liar``) see them; a failed trial, or one without the metric, is told as FAIL.
    With several objectives (``targets``) the study has one direction per objective and each
    trial is told every objective's value; with constraints, each bound's violation is set on the
    trial before it is told (Optuna's ``Trial.set_constraint``: the samplers that handle
    constraints read them from there). A trial missing an objective or a constrained metric is
    told as FAIL.
    """

    def __init__(self, space: SearchSpace, metric: str, mode: str, sampler: optuna.samplers.BaseSampler,
                 targets: Targets | None = None):
        super().__init__(metric=metric, mode=mode)
        self._space = space
        self._distributions = distributions(space)
        self._targets = targets if targets is not None and (targets.several or targets.constrained) else None
        if self._targets is not None:
            self._study = optuna.create_study(directions=self._targets.directions, sampler=sampler)
        else:
            self._study = optuna.create_study(direction="maximize" if mode == "max" else "minimize", sampler=sampler)
        self._numbers: dict[str, int] = {}  # Tune trial id -> Optuna trial number

    @property
    def study(self) -> optuna.Study:
        return self._study

    def suggest(self, trial_id: str) -> dict[str, Any]:
        trial = self._study.ask(self._distributions)
        self._numbers[trial_id] = trial.number
        return {d.name: trial.params[d.name] if d.is_choice else d.snap(trial.params[d.name]) for d in self._space}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        number = self._numbers.pop(trial_id, None)
        if number is None:
            return
        if self._targets is not None:
            self._tell_targets(number, None if error else result, self._targets)
            return
        value = None if error or not result else result.get(self.metric)
        if value is None or not math.isfinite(float(value)):
            self._study.tell(number, state=TrialState.FAIL)
        else:
            self._study.tell(number, float(value))

    def _tell_targets(self, number: int, result: dict | None, targets: Targets) -> None:
        values = targets.values(result) if result else None
        violations = targets.violations(result) if result else None
        if values is None or violations is None:
            self._study.tell(number, state=TrialState.FAIL)
            return
        if targets.constrained:
            # the running trial by its number (Optuna's storage id; ask() gave us the number)
            trial_id = self._study._storage.get_trial_id_from_study_id_trial_number(self._study._study_id, number)
            trial = optuna.trial.Trial(self._study, trial_id)
            for name, violation in zip(targets.violation_names(), violations):
                trial.set_constraint(name, violation)
        self._study.tell(number, values)

    @property
    def observations(self) -> int:
        return sum(t.state == TrialState.COMPLETE for t in self._study.get_trials(deepcopy=False))

    def get_state(self) -> dict:
        return {"study": self._study, "numbers": dict(self._numbers)}

    def set_state(self, state: dict) -> None:
        self._study, self._numbers = state["study"], dict(state["numbers"])


def multivariate_tpe_sampler(settings: Settings, targets: Targets | None = None) -> optuna.samplers.TPESampler:
    """Optuna's multivariate TPE with Katib's setting names and defaults (Optuna's)."""
    return optuna.samplers.TPESampler(
        n_startup_trials=settings.integer("n_startup_trials", 10, minimum=0),
        n_ei_candidates=settings.integer("n_ei_candidates", 24, minimum=1),
        multivariate=True,
        seed=settings.optional_integer("random_state"),
    )


def _creator(make_sampler: Callable[[Settings, Targets | None], optuna.samplers.BaseSampler]) -> Callable[..., OptunaSearcher]:
    def create(space: SearchSpace, objective: Objective, settings: Settings, targets: Targets | None = None) -> OptunaSearcher:
        return OptunaSearcher(space, objective.metric, objective.mode, make_sampler(settings, targets), targets)

    return create


#: ``multivariate-tpe``: TPE over the joint density of all parameters (Falkner et al. 2018).
create_multivariate_tpe = _creator(multivariate_tpe_sampler)

#: ``sobol``: a scrambled Sobol sequence (Optuna's QMCSampler on scipy's Sobol engine). Optuna
#: draws the first trial at random (it learns the space from it); trials 2, 3, ... are the points
#: of ``scipy.stats.qmc.Sobol(d, scramble=True, seed=random_state)``.
#: Without ``random_state`` the seed is random: create_sobol's note says so, in place of the
#: warning Optuna would log.
def sobol_sampler(settings: Settings, targets: Targets | None = None) -> optuna.samplers.QMCSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(
            qmc_type="sobol", scramble=True, seed=settings.optional_integer("random_state"), warn_independent_sampling=False,
            warn_asynchronous_seeding=False,
        )


def create_sobol(space: SearchSpace, objective: Objective, settings: Settings, targets: Targets | None = None) -> Search:
    from . import Search

    searcher = OptunaSearcher(space, objective.metric, objective.mode, sobol_sampler(settings), targets)
    unseeded = settings.optional_integer("random_state") is None
    return Search(searcher, notes=("sobol: no random_state setting, so the scrambled Sobol sequence is seeded at random "
                                   "(set random_state to repeat a run's trials)",) if unseeded else ())
