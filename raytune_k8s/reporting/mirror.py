"""The experiment mirrored into an Optuna storage, for ``optuna-dashboard URL``.

:class:`OptunaMirror` is a Ray Tune callback: as trials start, report and finish, it writes
their parameters, intermediate values, state and final value into an Optuna study. The writes
happen on one background thread, so a slow or broken storage never holds up Tune's loop (and so
the trials); if the storage fails, the mirror warns once and goes on (the results themselves are
in the experiment directory either way). :func:`.storage.replace_study` writes a finished one.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import warnings
from typing import TYPE_CHECKING, Any, Callable

from ray.tune import Callback

from .storage import open_storage
from .study import ATTR_STATUS, ATTR_TRIAL_ID, frozen_trial, spec_distributions

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from ray.tune.experiment import Trial

    from ..spec import ExperimentSpec


class OptunaMirror(Callback):
    """Mirror the running experiment into an Optuna study (see the module docstring)."""

    def __init__(self, storage: str, study_name: str, metric: str, mode: str, spec: "ExperimentSpec | None" = None):
        self.storage_url = storage
        self.study_name = study_name
        self.metric = metric
        self.mode = mode
        self.spec = spec
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._warned = False
        self._storage: Any = None
        self._study_id: int | None = None
        self._dists: dict[str, BaseDistribution] = {}
        self._optuna_ids: dict[str, int] = {}  # Tune trial id -> Optuna trial id
        self._best: dict[str, float] = {}

    # The Tuner pickles its callbacks (tuner.pkl): keep the settings, not the thread.
    def __getstate__(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in ("storage_url", "study_name", "metric", "mode", "spec")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    # ---- Tune's hooks: only enqueue (cheap); the thread does the storage work

    def on_trial_start(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        self._put(self._start, trial.trial_id, dict(trial.config), dt.datetime.now())

    def on_trial_result(self, iteration: int, trials: list["Trial"], trial: "Trial", result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            step = int(result.get("training_iteration") or 0)
            self._put(self._result, trial.trial_id, dict(trial.config), step, float(value))

    def on_trial_complete(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        iterations = int((trial.last_result or {}).get("training_iteration") or 0)
        self._put(self._finish, trial.trial_id, dict(trial.config), self._finished_status(iterations))

    def _finished_status(self, iterations: int) -> str:
        """Succeeded, or EarlyStopped for a trial that ASHA/Hyperband stopped before ``max_t``.
        (Tune marks every stopped trial "done", so a trial stopped by the median rule, which
        has no ``max_t``, shows as Succeeded here; ``export`` after the run uses summary.json.)"""
        es = self.spec.early_stopping if self.spec is not None else None
        if es is not None and es.name in ("asha", "hyperband"):
            max_t = es.settings_dict().get("max_t", 100)
            if isinstance(max_t, (int, float)) and iterations < max_t:
                return "EarlyStopped"
        return "Succeeded"

    def on_trial_error(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        self._put(self._finish, trial.trial_id, dict(trial.config), "Failed")

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
            try:
                if self._storage is None:
                    self._open()
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
        study = optuna.create_study(storage=storage, study_name=self.study_name, load_if_exists=True,
                                    direction="maximize" if self.mode == "max" else "minimize")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # set_metric_names is experimental
            study.set_metric_names([self.metric])
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
        from .experiment import TrialRecord

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
        best = self._best.get(trial_id)
        if best is None or (value > best if self.mode == "max" else value < best):
            self._best[trial_id] = value

    def _finish(self, trial_id: str, config: dict[str, Any], status: str) -> None:
        from optuna.trial import TrialState

        from .study import state_of

        optuna_id = self._trial(trial_id, config)
        value = self._best.get(trial_id)
        state = state_of(status, value is not None)
        if self._storage.get_trial(optuna_id).state.is_finished():
            return  # already finished (a resumed experiment)
        self._storage.set_trial_user_attr(optuna_id, ATTR_STATUS, status if state != TrialState.FAIL or status == "Failed" else "MetricsUnavailable")
        values = [value] if value is not None and state in (TrialState.COMPLETE, TrialState.PRUNED) else None
        self._storage.set_trial_state_values(optuna_id, state, values)
