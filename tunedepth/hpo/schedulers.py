"""ASHA that compares a trial only with trials of the same data budget.

A trial trained on 10% of the data would lose every rung against trials on 100%; that says nothing
about which *depth* is best at 10%. ``BudgetStratifiedASHA`` keeps one independent
``AsyncHyperBandScheduler`` (its own rungs and cut-offs) per value of ``config[stratify_by]``.

Fidelity unit: ``training_iteration`` = one epoch-equivalent, a fixed number of optimizer steps at every budget
(``TrialConfig.epoch_steps``), so rung r means "r x epoch_steps optimizer steps" in every stratum.

Ray's ASHA decides as each result arrives, so the first trials to reach a rung go on more often: with a grid
proposed in a fixed order that favours the depths proposed first. It is kept for adaptive searchers (optuna),
which cannot wait for paused trials; grid and random searches use ``tunedepth.hpo.promotion.StratifiedHalving``.

``save``/``restore`` write the whole state as JSON (``tunedepth.jsonstate``: loading it runs no code), never a
pickle; ASHA's internals go through ``tunedepth.hpo.ray_compat``.
"""
from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from tunedepth import jsonstate
from tunedepth.hpo.ray_compat import asha_forget, asha_num_stopped, asha_restore, asha_state, check_ray


class StratifiedScheduler(FIFOScheduler):
    """What every budget-stratified scheduler shares: the stratum of a trial, the metric and mode Tune
    passes on, and save/restore of the whole state."""

    def __init__(self, *, stratify_by: str = "budget", metric: str | None = None, mode: str | None = None):
        check_ray()  # the Ray internals these schedulers use are those of one Ray: fail here, before Tuner.fit
        super().__init__()
        self._stratify_by = stratify_by
        self._metric, self._mode = metric, mode

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    def stratum(self, trial: Trial) -> Any:
        """``config[stratify_by]``, or the tuple of those values when ``stratify_by`` is a tuple of keys."""
        keys = self._stratify_by if isinstance(self._stratify_by, tuple) else (self._stratify_by,)
        missing = [k for k in keys if k not in trial.config]
        if missing:
            raise ValueError(
                f"{type(self).__name__} stratifies by config[{missing[0]!r}], which trial {trial} lacks; "
                f"put {missing[0]!r} in the search space"
            )
        values = tuple(trial.config[k] for k in keys)
        return values if isinstance(self._stratify_by, tuple) else values[0]

    def get_state(self) -> dict[str, Any]:
        """The whole state as plain data (``tunedepth.jsonstate`` refuses, naming the type, what it cannot keep)."""
        return dict(self.__dict__)

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        """The state as JSON at ``checkpoint_path`` (atomic); no pickle."""
        jsonstate.dump(self.get_state(), checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(jsonstate.load(checkpoint_path))


class BudgetStratifiedASHA(StratifiedScheduler):
    def __init__(
        self,
        *,
        stratify_by: str = "budget",
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: int = 8,
        grace_period: int = 1,
        reduction_factor: float = 3,
        brackets: int = 1,
    ):
        super().__init__(stratify_by=stratify_by, metric=metric, mode=mode)
        self._asha_kwargs = dict(time_attr=time_attr, max_t=max_t, grace_period=grace_period,
                                 reduction_factor=reduction_factor, brackets=brackets)
        AsyncHyperBandScheduler(**self._asha_kwargs)  # validate arguments now, not at the first trial
        self._strata: dict[Any, AsyncHyperBandScheduler] = {}
        self._stratum_of: dict[str, Any] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if not super().set_search_properties(metric, mode, **spec):
            return False
        for asha in self._strata.values():
            asha.set_search_properties(metric, mode, **spec)
        return True

    def _asha(self, stratum: Any) -> AsyncHyperBandScheduler:
        if stratum not in self._strata:
            self._strata[stratum] = AsyncHyperBandScheduler(metric=self._metric, mode=self._mode, **self._asha_kwargs)
        return self._strata[stratum]

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        s = self.stratum(trial)
        self._stratum_of[trial.trial_id] = s
        self._asha(s).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        return self._asha(self._stratum_of[trial.trial_id]).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._asha(self._stratum_of.pop(trial.trial_id)).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self._asha(self._stratum_of.pop(trial.trial_id)).on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        s = self._stratum_of.pop(trial.trial_id, None)
        if s is not None:
            asha_forget(self._asha(s), trial.trial_id)

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["_strata"] = {s: asha_state(a) for s, a in self._strata.items()}  # each stratum's ASHA as data
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        strata = state.pop("_strata", {})
        super().set_state(state)
        self._strata = {}
        for s, saved in strata.items():
            asha_restore(self._asha(s), saved)

    def num_stopped(self) -> dict[Any, int]:
        return {s: asha_num_stopped(a) for s, a in self._strata.items()}

    def debug_string(self) -> str:
        parts = [f"{self._stratify_by}={s}: stopped {asha_num_stopped(a)}" for s, a in sorted(self._strata.items())]
        return "Using budget-stratified ASHA: " + "; ".join(parts)

__all__ = ["BudgetStratifiedASHA", "StratifiedScheduler", "TrialScheduler"]
