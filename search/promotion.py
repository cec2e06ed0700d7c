"""Promotion-based ASHA (Li et al., MLSys 2020, Algorithm 2), one set of rungs per data budget.

Ray's ``AsyncHyperBandScheduler`` decides at a rung as each result arrives: a trial that reaches a rung
before many others have is compared with too few of them and goes on, so early arrivals are promoted
more often than 1/eta of the time. Here a trial *pauses* at each rung (Tune keeps its checkpoint and frees
its resources) and is resumed only when it is among the top ``floor(n / eta)`` of the ``n`` results its
rung holds, exactly the promotions of successive halving. When the searcher has proposed every trial and
a budget has nothing left to run or promote, its paused trials are stopped: they lost their rung.

Tune does not checkpoint a scheduler's state, so with ``state_file`` (the runner passes
``results/<name>/promotion.pkl``) every decision is written there and a resumed run reads it back: the
rungs, the promotions, and which trials wait at a rung (Tune requeues those as pending; they are put
back to paused).

Works with searchers that propose trials without waiting for results (grid, random). An adaptive searcher
behind a concurrency limit (optuna) would wait for paused trials that wait for more results: use the
stopping ``asha`` there (``SearchConfig`` refuses the combination).
"""
from __future__ import annotations

import math
import os
import pickle
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from search.schedulers import StratifiedScheduler


class BudgetStratifiedPromotionASHA(StratifiedScheduler):
    def __init__(self, *, stratify_by: str = "budget", time_attr: str = "training_iteration",
                 metric: str | None = None, mode: str | None = None, max_t: int = 8, grace_period: int = 1,
                 reduction_factor: float = 3, state_file: str | None = None):
        super().__init__(stratify_by=stratify_by, metric=metric, mode=mode)
        self._state_file = state_file
        self._loaded = False
        self._requeued: set[str] = set()
        if grace_period < 1 or max_t < grace_period or reduction_factor <= 1:
            raise ValueError("need 1 <= grace_period <= max_t and reduction_factor > 1")
        self._time_attr = time_attr
        self._rf = reduction_factor
        k_max = int(math.floor(math.log(max_t / grace_period, reduction_factor) + 1e-9))
        self.milestones = [int(grace_period * reduction_factor ** k) for k in range(k_max + 1)]
        self.milestones = [m for m in self.milestones if m < max_t]
        # stratum -> rung milestone -> {trial_id: score (higher is better)}
        self._rungs: dict[Any, dict[int, dict[str, float]]] = {}
        self._promoted: dict[Any, dict[int, set[str]]] = {}
        self._stratum_of: dict[str, Any] = {}
        self.paused_at: dict[str, int] = {}  # trial id -> milestone it waits at
        self.stopped_at_rung: dict[Any, int] = {}

    STATE_KEYS = ("_rungs", "_promoted", "_stratum_of", "paused_at", "stopped_at_rung")

    def _save(self) -> None:
        if self._state_file:
            tmp = f"{self._state_file}.tmp"
            with open(tmp, "wb") as f:
                pickle.dump({k: getattr(self, k) for k in self.STATE_KEYS}, f)
            os.replace(tmp, self._state_file)

    def _load_once(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._state_file and os.path.exists(self._state_file):
            with open(self._state_file, "rb") as f:
                self.__dict__.update(pickle.load(f))

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        self._load_once()
        s = self.stratum(trial)
        self._stratum_of[trial.trial_id] = s
        self._rungs.setdefault(s, {m: {} for m in self.milestones})
        self._promoted.setdefault(s, {m: set() for m in self.milestones})
        held = trial.trial_id in self.paused_at or trial.trial_id in self.stopped_at_rung
        if trial.status == Trial.PENDING and held:
            # a resumed run requeues every unfinished trial as pending; the next choose_trial_to_run puts it back
            # where this scheduler left it (Tune has not filed the trial yet while adding it)
            self._requeued.add(trial.trial_id)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        t = result.get(self._time_attr)
        if t not in self.milestones or self._metric not in result:
            return TrialScheduler.CONTINUE
        s = self._stratum_of[trial.trial_id]
        if trial.trial_id in self._rungs[s][t]:  # a resumed trial reporting its rung again
            return TrialScheduler.CONTINUE
        score = float(result[self._metric])
        self._rungs[s][t][trial.trial_id] = score if self._mode == "max" else -score
        self.paused_at[trial.trial_id] = t
        self._save()
        return TrialScheduler.PAUSE

    def promotable(self, stratum: Any) -> list[str]:
        """Ids of paused trials of ``stratum`` now in the top floor(n / eta) of their rung, not yet promoted."""
        out = []
        for m in self.milestones:
            rung = self._rungs[stratum][m]
            k = int(len(rung) // self._rf)
            top = sorted(rung, key=lambda tid: -rung[tid])[:k]
            out += [tid for tid in top if tid not in self._promoted[stratum][m] and self.paused_at.get(tid) == m]
        return out

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        trials = {t.trial_id: t for t in tune_controller.get_trials()}
        for tid in [t for t in self._requeued if t in trials]:
            self._requeued.discard(tid)
            if trials[tid].status != Trial.PENDING:
                continue
            if tid in self.paused_at:  # it was waiting at a rung
                tune_controller._set_trial_status(trials[tid], Trial.PAUSED)
            else:  # it had lost its rung (Tune's last snapshot may still call it paused)
                tune_controller.stop_trial(trials[tid])
        for s in self._rungs:
            for tid in self.promotable(s):
                if trials.get(tid) is not None and trials[tid].status == Trial.PAUSED:
                    self._promoted[s][self.paused_at.pop(tid)].add(tid)
                    self._save()
                    return trials[tid]
        for trial in trials.values():
            if trial.status == Trial.PENDING:
                return trial
        self._stop_losers(tune_controller, trials)
        return None

    def _stop_losers(self, tune_controller, trials: dict[str, Trial]) -> None:
        """Once no trial can join a budget, its paused trials that were not promoted have lost: stop them."""
        if not tune_controller.search_alg.is_finished():
            return
        active = {self._stratum_of.get(t.trial_id) for t in trials.values()
                  if t.status in (Trial.PENDING, Trial.RUNNING)}
        done = {s for s in self._rungs if s not in active and not self.promotable(s)}
        for tid, trial in trials.items():
            if trial.status == Trial.PAUSED and tid in self.paused_at and self._stratum_of.get(tid) in done:
                self.stopped_at_rung[tid] = self.paused_at.pop(tid)
                self._save()
                tune_controller.stop_trial(trial)

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self.paused_at.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self.paused_at.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self.paused_at.pop(trial.trial_id, None)

    def num_stopped(self) -> dict[Any, int]:
        out: dict[Any, int] = {}
        for tid in self.stopped_at_rung:
            out[self._stratum_of[tid]] = out.get(self._stratum_of[tid], 0) + 1
        return out

    def debug_string(self) -> str:
        return f"Using budget-stratified promotion ASHA (rungs {self.milestones}, eta {self._rf})"
