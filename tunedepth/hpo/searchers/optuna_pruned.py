"""Ray's ``OptunaSearch`` for one budget: a stored study, every depth tried once first, pruned trials told.

- *Storage.* With ``storage_url`` (``sqlite:///results/<name>/optuna.db``) the study ``study_name`` lives in that
  database: optuna-dashboard and ``optuna.load_study`` open it, and ``tunedepth resume`` continues it. The database
  is opened when Tune starts the search (``set_search_properties``), never when the plan is made, so a refused
  config leaves no file behind.
- *Depths first.* ``enqueue`` depths are enqueued once (``study.enqueue_trial``) before TPE takes over, so every
  depth the budget can afford gets a trial: TPE alone may never draw some depth.
- *Resume.* Tune restores this searcher from its last snapshot, which the database may be ahead of. A trial asked
  after that snapshot is still RUNNING in the database but unknown to Tune: it is marked FAIL, and a depth left
  without a live trial is enqueued again (never a second time while one is waiting, running or done). A trial Tune
  resumes that the database already records as finished keeps that first record (Optuna cannot reopen a finished
  trial); its further results go to Tune only.
- *Pruned.* Ray's ``OptunaSearch`` reports every stopped trial as COMPLETE with its last value. A trial that ASHA
  stopped before ``max_t`` is a *pruned* trial in Optuna's terms; TPE treats those differently (it ranks them by
  their intermediate values), so we tell Optuna the truth.
"""
from __future__ import annotations

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def study_name(budget: float) -> str:
    """The Optuna study of one data budget: ``budget-0.05``, ``budget-1`` ..."""
    return f"budget-{float(budget):g}"


def depths_without_trial(study: optuna.Study, depths: list[str]) -> list[str]:
    """Of ``depths``, those with no waiting, running or finished trial in ``study`` (failed trials do not count)."""
    live = set()
    for t in study.get_trials(deepcopy=False):
        if t.state != TrialState.FAIL:
            live.add(t.system_attrs.get("fixed_params", {}).get("depth", t.params.get("depth")))
    return [d for d in depths if d not in live]


def fail_orphans(study: optuna.Study, known_ids: set[int]) -> list[int]:
    """Mark FAIL every RUNNING trial of ``study`` whose id is not in ``known_ids`` (asked, then lost with the
    driver); returns their numbers."""
    orphans = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if t._trial_id not in known_ids]
    for number in orphans:
        study.tell(number, state=TrialState.FAIL)
    return orphans


class PrunedAwareOptunaSearch(OptunaSearch):
    def __init__(self, space: dict, *args, max_t: int, time_attr: str = "training_iteration",
                 storage_url: str | None = None, enqueue: list[str] = (), **kwargs):
        super().__init__(None, *args, **kwargs)  # the study is opened in set_search_properties
        self.planned_space = space
        self.max_t, self.time_attr = max_t, time_attr
        self.storage_url, self.enqueue = storage_url, list(enqueue)
        self.pruned: set[str] = set()

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        if self._space:
            return False
        self._space = self.planned_space
        self._metric, self._mode = metric or self._metric, mode or self._mode
        if self.storage_url:
            self._storage = optuna.storages.RDBStorage(self.storage_url)
        self._setup_study(self._mode)
        self.enqueue_missing()
        return True

    def enqueue_missing(self) -> None:
        for depth in depths_without_trial(self._ot_study, self.enqueue):
            self._ot_study.enqueue_trial({"depth": depth})

    def after_restore(self) -> None:
        """After Tune restored this searcher from its snapshot: fail the trials it never knew, re-enqueue their
        depths."""
        if self._ot_study is None:
            return
        finished = {t._trial_id for t in self._ot_study.get_trials(deepcopy=False, states=FINISHED)}
        self._completed_trials |= {tid for tid, t in self._ot_trials.items() if t._trial_id in finished}
        fail_orphans(self._ot_study, {t._trial_id for t in self._ot_trials.values()})
        self.enqueue_missing()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._completed_trials:  # (a resumed trial the study already closed: Tune's alone)
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:
            return
        stopped_early = bool(result) and not error and result.get(self.time_attr, self.max_t) < self.max_t
        if not stopped_early:
            return super().on_trial_complete(trial_id, result=result, error=error)
        self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)
        self.pruned.add(trial_id)
