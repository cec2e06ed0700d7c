"""OptunaSearch that tells Optuna when the scheduler pruned a trial.

Ray's ``OptunaSearch`` reports every stopped trial as COMPLETE with its last value. A trial that ASHA
stopped before ``max_t`` is a *pruned* trial in Optuna's terms; TPE treats those differently (it ranks them
by their intermediate values), so we tell Optuna the truth.
"""
from __future__ import annotations

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch


class PrunedAwareOptunaSearch(OptunaSearch):
    def __init__(self, *args, max_t: int, time_attr: str = "training_iteration", **kwargs):
        super().__init__(*args, **kwargs)
        self.max_t, self.time_attr = max_t, time_attr
        self.pruned: set[str] = set()

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        stopped_early = bool(result) and not error and result.get(self.time_attr, self.max_t) < self.max_t
        if not stopped_early or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result=result, error=error)
        self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)
        self.pruned.add(trial_id)
