"""The experiment mirrored into an Optuna storage, for ``optuna-dashboard URL``.

:class:`OptunaMirror` is a Ray Tune callback: as trials start, report and finish, it writes
their parameters, intermediate values, state and final value into an Optuna study. The writes
happen on one background thread, so a slow or broken storage never holds up Tune's loop (and so
the trials); if the storage fails, the mirror warns once and goes on (the results themselves are
in the experiment directory either way); a storage that cannot be opened is tried once, not at
every event. :func:`.storage.replace_study` writes a finished one.

A trial's value is its objective by the metric strategy (:func:`raytune_k8s.spec.metric_value`);
with several objectives the study has their directions and names and a trial every objective's
value; with constraints, each bound's violation is in the trial's ``constraints`` attribute
(what optuna-dashboard reads as feasibility),
and a trial is EarlyStopped when the experiment's record of early stops
(:mod:`raytune_k8s.stopping.record`, written by the early-stopping rule) lists it: both as in the
summary.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from ray.tune import Callback

from ..spec.strategy import metric_value
from ..stopping.record import RECORD_FILE
from .storage import open_storage
from .study import ATTR_STATUS, ATTR_TRIAL_ID, frozen_trial, spec_distributions

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from ray.tune.experiment import Trial

    from ..spec import ExperimentSpec
    from ..spec.objectives import Targets


class OptunaMirror(Callback):
    """Mirror the running experiment into an Optuna study (see the module docstring)."""

    def __init__(self, storage: str, study_name: str, metric: str, mode: Literal["min", "max"],
                 spec: "ExperimentSpec | None" = None, experiment_dir: "str | os.PathLike[str] | None" = None):
        self.storage_url = storage
        self.study_name = study_name
        self.metric = metric
        self.mode = mode
        self.spec = spec
        self.experiment_dir = experiment_dir  # where the record of early stops is (none: no early stops)
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._warned = False
        self._unopenable = False  # opening the storage failed once: it is not tried again
        self._storage: Any = None
        self._study_id: int | None = None
        self._dists: dict[str, BaseDistribution] = {}
        self._optuna_ids: dict[str, int] = {}  # Tune trial id -> Optuna trial id
        self._values: dict[str, float] = {}  # Tune trial id -> its value by the metric strategy (Tune's thread)
        self._metrics: dict[str, dict[str, float]] = {}  # several objectives, constraints: each metric's value
        self._early_stopped: set[str] = set()  # the record of early stops as read so far (the mirror's thread)
        self._record_read = 0  # how many bytes of it

    @property
    def targets(self) -> "Targets | None":
        """Several objectives or constraints (None: one objective, mirrored as before)."""
        targets = self.spec.targets if self.spec is not None else None
        return targets if targets is not None and (targets.several or targets.constrained) else None

    def _target_values(self, trial_id: str, result: dict) -> None:
        assert self.spec is not None and (targets := self.targets) is not None
        values = self._metrics.setdefault(trial_id, {})
        for metric in [*targets.metrics, *(c.metric for c in targets.constraints)]:
            value = metric_value([result], metric, self.spec.objective.strategy(metric), values.get(metric))
            if value is not None:
                values[metric] = value

    @property
    def strategy(self) -> Literal["min", "max", "latest"]:
        """The objective's metric strategy (Katib's default, the best by ``mode``, without a spec)."""
        return self.spec.objective.strategy(self.metric) if self.spec is not None else self.mode

    # The Tuner pickles its callbacks (tuner.pkl): keep the settings, not the thread.
    def __getstate__(self) -> dict[str, Any]:
        keys = ("storage_url", "study_name", "metric", "mode", "spec", "experiment_dir")
        return {k: self.__dict__.get(k) for k in keys}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    # ---- Tune's hooks: only enqueue (cheap); the thread does the storage work

    def on_trial_start(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        self._put(self._start, trial.trial_id, dict(trial.config), dt.datetime.now())

    def on_trial_result(self, iteration: int, trials: list["Trial"], trial: "Trial", result: dict, **info: Any) -> None:
        if self.targets is not None:
            self._target_values(trial.trial_id, result)
        reported = metric_value([result], self.metric, "latest")  # this report's value, if a number
        if reported is not None and (self.targets is None or not self.targets.several):  # Optuna: no intermediate values with several
            step = int(result.get("training_iteration") or 0)
            value = metric_value([result], self.metric, self.strategy, self._values.get(trial.trial_id))
            if value is not None:  # never None here: this report has a value
                self._values[trial.trial_id] = value
            self._put(self._result, trial.trial_id, dict(trial.config), step, reported)

    def on_trial_complete(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        # Tune's scheduler has decided (and the rule recorded an early stop) before this event.
        self._put(self._finish, trial.trial_id, dict(trial.config), None, self._values.pop(trial.trial_id, None),
                  self._metrics.pop(trial.trial_id, {}))

    def on_trial_error(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        self._put(self._finish, trial.trial_id, dict(trial.config), "Failed", self._values.pop(trial.trial_id, None),
                  self._metrics.pop(trial.trial_id, {}))

    def on_experiment_end(self, trials: list["Trial"], **info: Any) -> None:
        self.close()

    def close(self, timeout: float = 30.0) -> None:
        """Let the thread write what is queued (at most ``timeout`` seconds), then stop it."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _put(self, fn: Callable[..., None], *args: Any) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="optuna-mirror", daemon=True)
            self._thread.start()
        self._queue.put((fn, args))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, args = item
            if self._unopenable:
                continue  # tried once and warned: the rest of the experiment is not mirrored
            try:
                if self._storage is None:
                    try:
                        self._open()
                    except Exception:
                        self._unopenable = True
                        raise
                fn(*args)
            except Exception as exc:  # the mirror is best effort: the experiment goes on
                if not self._warned:
                    self._warned = True
                    warnings.warn(f"mirroring into the Optuna storage {self.storage_url!r} failed ({exc!r}); "
                                  "the experiment goes on, its results are in its directory", RuntimeWarning, stacklevel=1)

    # ---- storage work, on the thread

    def _open(self) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(self.storage_url)
        several = self.targets is not None and self.targets.several
        directions: list[Literal["maximize", "minimize"]] = (
            self.targets.directions if self.targets is not None and several else ["maximize" if self.mode == "max" else "minimize"])
        study = optuna.create_study(storage=storage, study_name=self.study_name, load_if_exists=True, directions=directions)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # set_metric_names is experimental
            study.set_metric_names(self.targets.metrics if self.targets is not None and several else [self.metric])
        self._study_id = storage.get_study_id_from_name(self.study_name)
        self._dists = spec_distributions(self.spec)
        for t in study.get_trials(deepcopy=False):  # a resumed experiment: keep its trials
            if ATTR_TRIAL_ID in t.user_attrs:
                self._optuna_ids[t.user_attrs[ATTR_TRIAL_ID]] = storage.get_trial_id_from_study_id_trial_number(
                    self._study_id, t.number)
        self._storage = storage

    def _trial(self, trial_id: str, config: dict[str, Any], when: dt.datetime | None = None) -> int:
        known = self._optuna_ids.get(trial_id)
        if known is not None:
            return known
        from .experiment_dir import TrialRecord

        template = frozen_trial(TrialRecord(trial_id, "Running", config), 0, self._dists)
        template.datetime_start = when or dt.datetime.now()
        new_id = self._storage.create_new_trial(self._study_id, template_trial=template)
        self._optuna_ids[trial_id] = new_id
        return new_id

    def _start(self, trial_id: str, config: dict[str, Any], when: dt.datetime) -> None:
        self._trial(trial_id, config, when)

    def _result(self, trial_id: str, config: dict[str, Any], step: int, value: float) -> None:
        optuna_id = self._trial(trial_id, config)
        self._storage.set_trial_intermediate_value(optuna_id, step, value)

    def _was_early_stopped(self, trial_id: str) -> bool:
        """Whether the record of early stops lists the trial; read on from where it was last."""
        if self.experiment_dir is None:
            return False
        try:
            with open(Path(self.experiment_dir) / RECORD_FILE, "rb") as f:
                f.seek(self._record_read)
                new = f.read()
        except OSError:
            return trial_id in self._early_stopped
        whole = new[: new.rfind(b"\n") + 1]  # a line still being written is read next time
        self._record_read += len(whole)
        self._early_stopped.update(whole.decode().split())
        return trial_id in self._early_stopped

    def _finish(self, trial_id: str, config: dict[str, Any], status: str | None, value: float | None,
                metrics: dict[str, float] | None = None) -> None:
        """``status`` None: the trial ended without an error, Succeeded or EarlyStopped."""
        from optuna.trial import TrialState

        from .study import state_of

        if status is None:
            status = "EarlyStopped" if self._was_early_stopped(trial_id) else "Succeeded"
        optuna_id = self._trial(trial_id, config)
        targets = self.targets
        several = targets.values(metrics or {}) if targets is not None and targets.several else None
        state = state_of(status, several is not None if targets is not None and targets.several else value is not None)
        if self._storage.get_trial(optuna_id).state.is_finished():
            return  # already finished (a resumed experiment)
        values = [value] if value is not None and state in (TrialState.COMPLETE, TrialState.PRUNED) else None
        if targets is not None and targets.several:
            values = several if state in (TrialState.COMPLETE, TrialState.PRUNED) else None
        violations = targets.violations(metrics or {}) if targets is not None and targets.constrained else None
        if targets is not None and targets.constrained and violations is None and state == TrialState.COMPLETE:
            state, values = TrialState.FAIL, None  # a constrained metric missing: failed, as the searcher tells it
        for name, violation in zip(targets.violation_names() if targets is not None else [], violations or []):
            # Optuna's own attribute for a constraint (Trial.set_constraint writes the same): dashboards read it
            self._storage.set_trial_system_attr(optuna_id, f"constraints:{name}", violation)
        self._storage.set_trial_user_attr(optuna_id, ATTR_STATUS, status if state != TrialState.FAIL or status == "Failed" else "MetricsUnavailable")
        self._storage.set_trial_state_values(optuna_id, state, values)
