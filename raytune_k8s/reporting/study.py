"""An experiment as an Optuna study: the spec's parameters as Optuna distributions, each trial
as a ``FrozenTrial`` with its state, value and intermediate values.

The study is what ``optuna.visualization`` draws and what the mirror writes into an Optuna
storage for optuna-dashboard. Katib's trial statuses map onto Optuna's states:
Succeeded -> COMPLETE (FAIL if it has no objective), EarlyStopped -> PRUNED, Failed and
MetricsUnavailable -> FAIL, Running -> RUNNING, Pending and anything unknown -> WAITING.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import warnings
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..spec import ExperimentSpec, Parameter
from .experiment_dir import ExperimentRecord, TrialRecord

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

#: user_attrs keys the study carries besides Optuna's own fields.
ATTR_TRIAL_ID, ATTR_STATUS = "raytune_trial_id", "katib_status"


def spec_distributions(spec: ExperimentSpec | None) -> dict[str, "BaseDistribution"]:
    """The spec's parameters as Optuna distributions (none without a spec)."""
    return {p.name: _distribution(p) for p in spec.parameters} if spec else {}


def _distribution(p: Parameter) -> "BaseDistribution":
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    fs = p.space
    if p.type in ("categorical", "discrete"):
        return CategoricalDistribution(list(fs.values or []))
    log = fs.distribution in ("logUniform", "logNormal")
    low, high = float(fs.min or 0), float(fs.max or 0)
    if p.type == "int":
        return IntDistribution(int(low), int(high), log=log and not fs.step, step=int(fs.step or 1))
    return FloatDistribution(low, high, log=log and not fs.step, step=fs.step)


def _holds(dist: "BaseDistribution", value: Any) -> bool:
    """Whether ``value`` lies in ``dist`` (by its public fields)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if not isinstance(dist, (FloatDistribution, IntDistribution)):  # Optuna has no other kind
        return False
    low, high, step = dist.low, dist.high, dist.step
    if not low <= value <= high:
        return False
    return step is None or abs((value - low) / step - round((value - low) / step)) < 1e-8


def distributions_for(record: ExperimentRecord) -> dict[str, "BaseDistribution"]:
    """The spec's distributions, widened to hold every value a trial actually ran with (a
    spec edited after the run, a hand-written searcher), plus guessed ones for parameters the
    spec does not name."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists = spec_distributions(record.spec)
    seen: dict[str, list[Any]] = {}
    for trial in record.trials:
        for name, value in trial.params.items():
            seen.setdefault(name, []).append(value)
    for name, values in seen.items():
        dist = dists.get(name)
        if dist is not None and all(_holds(dist, v) for v in values if _hashable(v)):
            continue
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == len(values) and min(numbers) < max(numbers) and not isinstance(dist, CategoricalDistribution):
            low, high = min(numbers), max(numbers)
            if isinstance(dist, (FloatDistribution, IntDistribution)):  # (not categorical, just above)
                low, high = min(low, dist.low), max(high, dist.high)
            if all(isinstance(v, int) for v in numbers) and not isinstance(dist, FloatDistribution):
                dists[name] = IntDistribution(int(low), int(high))
            else:
                dists[name] = FloatDistribution(float(low), float(high), log=getattr(dist, "log", False) and low > 0)
        else:
            known = list(dist.choices) if isinstance(dist, CategoricalDistribution) else []
            extra = [v for v in dict.fromkeys(_choice(v) for v in values) if v not in known]
            dists[name] = CategoricalDistribution(known + extra)
    return dists


def _hashable(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


def _choice(value: Any) -> Any:
    return value if _hashable(value) else str(value)


def state_of(status: str, has_value: bool) -> "optuna.trial.TrialState":
    from optuna.trial import TrialState

    if status == "Succeeded":
        return TrialState.COMPLETE if has_value else TrialState.FAIL
    if status == "EarlyStopped":
        return TrialState.PRUNED
    if status in ("Failed", "MetricsUnavailable", "Killed"):
        return TrialState.FAIL
    if status == "Running":
        return TrialState.RUNNING
    return TrialState.WAITING


def frozen_trial(
    trial: TrialRecord, number: int, dists: dict[str, "BaseDistribution"]
) -> "optuna.trial.FrozenTrial":
    """One trial as Optuna's FrozenTrial, with its real start and end times."""
    from optuna.trial import FrozenTrial, TrialState

    state = state_of(trial.status, trial.objective is not None)
    params = {k: _choice(v) for k, v in trial.params.items() if k in dists}
    start = _when(trial.start) if state != TrialState.WAITING else None
    if state != TrialState.WAITING and start is None:
        start = dt.datetime.now()
    end = (_when(trial.end) or start) if state.is_finished() else None
    return FrozenTrial(
        number=number,
        state=state,
        value=trial.objective if state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
        datetime_start=start,
        datetime_complete=end,
        params=params,
        distributions={k: dists[k] for k in params},
        user_attrs={ATTR_TRIAL_ID: trial.trial_id, ATTR_STATUS: trial.status, **({"node": trial.node} if trial.hostname or trial.node_ip else {})},
        system_attrs={},
        intermediate_values=dict(trial.history),
        trial_id=number,
    )


def _when(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts)


def to_study(
    record: ExperimentRecord,
    trials: Sequence[TrialRecord] | None = None,
    *,
    storage: "str | optuna.storages.BaseStorage | None" = None,
    study_name: str | None = None,
) -> "optuna.Study":
    """The experiment (or ``trials``, a sample of it) as an Optuna study, in memory unless
    ``storage`` is given; trials keep the experiment's order (Optuna's trial number)."""
    dists = distributions_for(record)
    chosen = record.trials if trials is None else trials
    return _study(record, [frozen_trial(t, i, dists) for i, t in enumerate(_in_order(chosen))], storage, study_name)


class StudyMaker:
    """In-memory studies of samples of one experiment, for plotting: each trial is converted
    once, and Optuna's defensive deep copies become shallow ones (nothing here changes a
    trial), which makes a 10,000-trial study several times faster to build and to plot."""

    def __init__(self, record: ExperimentRecord):
        self.record = record
        self._dists = distributions_for(record)
        self._frozen: dict[int, "optuna.trial.FrozenTrial"] = {}

    def study(self, trials: Sequence[TrialRecord]) -> "optuna.Study":
        read_only = _read_only_class()
        frozen = []
        for t in _in_order(trials):
            ft = self._frozen.get(id(t))
            if ft is None:
                ft = frozen_trial(t, 0, self._dists)
                ft.__class__ = read_only
                self._frozen[id(t)] = ft
            frozen.append(ft)
        return _study(self.record, frozen, None, None)


@functools.cache
def _read_only_class() -> type:
    from optuna.trial import FrozenTrial

    class ReadOnlyTrial(FrozenTrial):
        def __deepcopy__(self, memo: dict[int, Any]) -> "ReadOnlyTrial":
            return copy.copy(self)

    return ReadOnlyTrial


def _in_order(trials: Iterable[TrialRecord]) -> list[TrialRecord]:
    return sorted(trials, key=lambda t: (t.start is None, t.start or 0.0))


def _study(record: ExperimentRecord, frozen: list["optuna.trial.FrozenTrial"], storage: Any, study_name: str | None) -> "optuna.Study":
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" per plot
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name or record.name,
            direction="maximize" if record.mode == "max" else "minimize",
            load_if_exists=storage is not None,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([record.metric or "objective"])
        study.add_trials(frozen)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study
