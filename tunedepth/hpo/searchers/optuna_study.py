"""One budget's Optuna study behind Tune's ``Searcher`` API, through Optuna's public ask/tell interface.

``OptunaStudySearcher`` holds an ``optuna.Study`` (TPE, seeded by ``tunedepth.space.searcher_seed``) and answers
Tune: ``suggest`` asks the study for a trial (``study.ask()``) and draws its config with the run's ``Space``
(``Space.optuna_point``: the one place the Optuna distributions are built); ``on_trial_result`` records the
trial's intermediate values; ``on_trial_complete`` tells the study how the trial ended (``study.tell``).

- *Storage.* With ``storage_url`` (``sqlite:///results/<name>/optuna.db``) the study ``study_name`` lives in that
  database: optuna-dashboard and ``optuna.load_study`` open it, and ``tunedepth resume`` continues it. The database
  is opened when Tune starts the search (``set_search_properties``), never when the plan is made, so a refused
  config leaves no file behind (and the searcher Tune pickles into ``tuner.pkl`` holds no study).
- *Depths first.* ``enqueue`` depths are enqueued once (``study.enqueue_trial``) before TPE takes over, so every
  depth the budget can afford gets a trial: TPE alone may never draw some depth.
- *Told as it ended.* A trial that ran to ``max_t``, or ended on its own before it (a validation plateau,
  ``early_stopped``; ``diverged``), is COMPLETE with its last ``metric`` (a NaN: FAIL, Optuna's rule). A trial
  the scheduler stopped before ``max_t`` (ASHA at a rung) is PRUNED, with its intermediate values (one per
  ``time_attr`` step, reported as results arrive): TPE ranks pruned trials by them, below the complete ones. An
  errored trial is FAIL.
- *Resume state.* ``save``/``restore`` write JSON (``tunedepth.jsonstate``): Tune's trial id -> Optuna trial
  number. Everything else is in the database. Tune restores this searcher from its last snapshot, which the
  database may be ahead of. A trial asked after that snapshot is still RUNNING in the database but unknown to
  Tune: it is marked FAIL, and a depth left without a live trial is enqueued again (never a second time while one
  is waiting, running or done). A trial Tune resumes that the database already records as finished keeps that
  first record (Optuna cannot reopen a finished trial); its further results go to Tune only. Reopening a study
  that already has trials seeds TPE from the search seed and that trial count, so a resumed run does not replay
  the random draws it started with.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from tunedepth.hpo.searchers.state import JsonStateSearcher
from tunedepth.space import Space

ENQUEUED = "enqueued_depth"  # user attribute: the depth a trial was enqueued for (a waiting trial has no params)


def study_name(budget: float) -> str:
    """The Optuna study of one data budget: ``budget-0.05``, ``budget-1`` ..."""
    return f"budget-{float(budget):g}"


def depth_of(trial: optuna.trial.FrozenTrial) -> str | None:
    return trial.params.get("depth", trial.user_attrs.get(ENQUEUED))


def depths_without_trial(study: optuna.Study, depths: list[str]) -> list[str]:
    """Of ``depths``, those with no waiting, running or finished trial in ``study`` (failed trials do not count)."""
    live = {depth_of(t) for t in study.get_trials(deepcopy=False) if t.state != TrialState.FAIL}
    return [d for d in depths if d not in live]


def fail_orphans(study: optuna.Study, known: set[int]) -> list[int]:
    """Mark FAIL every RUNNING trial of ``study`` whose number is not in ``known`` (asked, then lost with the
    driver); returns their numbers."""
    orphans = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if t.number not in known]
    for number in orphans:
        study.tell(number, state=TrialState.FAIL)
    return orphans


def reseeded(seed: int, trials: int) -> int:
    """TPE's seed for a study reopened with ``trials`` trials: ``seed`` itself for a new study."""
    return seed if trials == 0 else int(np.random.SeedSequence([int(seed), int(trials)]).generate_state(1)[0])


class OptunaStudySearcher(JsonStateSearcher):
    def __init__(self, space: Space, *, study_name: str, seed: int, max_t: int, storage_url: str | None = None,
                 enqueue: list[str] = (), n_startup_trials: int = 5, time_attr: str = "training_iteration",
                 metric: str | None = None, mode: str | None = None):
        super().__init__(metric=metric, mode=mode)
        self.space, self.study_name, self.seed = space, study_name, int(seed)
        self.max_t, self.time_attr, self.n_startup_trials = max_t, time_attr, n_startup_trials
        self.storage_url, self.enqueue = storage_url, list(enqueue)
        self.objective, self.direction = metric, mode
        self.number: dict[str, int] = {}  # Tune trial id -> Optuna trial number: the whole resume state
        self.closed: set[str] = set()  # Tune trials whose Optuna trial is finished
        self.study: optuna.Study | None = None
        self.storage: optuna.storages.BaseStorage | None = None
        self.restored = False  # a snapshot was restored before the study was opened: reconcile when it is

    # -- Tune starts the search -------------------------------------------------------------------------
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        if self.study is not None:
            return False
        self.objective, self.direction = metric or self.objective, mode or self.direction
        self.storage = (optuna.storages.RDBStorage(self.storage_url) if self.storage_url
                        else optuna.storages.InMemoryStorage())
        try:
            existing = self.storage.get_n_trials(self.storage.get_study_id_from_name(self.study_name))
        except KeyError:
            existing = 0
        sampler = optuna.samplers.TPESampler(seed=reseeded(self.seed, existing), n_startup_trials=self.n_startup_trials)
        self.study = optuna.create_study(storage=self.storage, sampler=sampler, pruner=optuna.pruners.NopPruner(),
                                         study_name=self.study_name, load_if_exists=True,
                                         direction="minimize" if self.direction == "min" else "maximize")
        if self.restored:
            self.reconcile()
        self.enqueue_missing()
        return True

    def enqueue_missing(self) -> None:
        for depth in depths_without_trial(self.study, self.enqueue):
            self.study.enqueue_trial({"depth": depth}, user_attrs={ENQUEUED: depth})

    # -- the searcher protocol --------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.study is None:
            raise RuntimeError(f"{type(self).__name__}: Tune has not started the search (set_search_properties)")
        trial = self.study.ask()
        self.number[trial_id] = trial.number
        return self.space.optuna_point(trial)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.number or trial_id in self.closed:  # a resumed trial the study closed: Tune's alone
            return
        if self.objective in result and self.time_attr in result:
            self.storage.set_trial_intermediate_value(self.storage_id(trial_id), int(result[self.time_attr]),
                                                      float(result[self.objective]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.number or trial_id in self.closed:
            return
        number, result = self.number[trial_id], result or {}
        if error:
            self.study.tell(number, state=TrialState.FAIL)
        else:
            self.on_trial_result(trial_id, result)  # Tune hands a stopped trial's last result to this call only
            value = result.get(self.objective)
            on_its_own = result.get("early_stopped") or result.get("diverged")  # the trainable's own ending
            stopped = not on_its_own and result.get(self.time_attr, self.max_t) < self.max_t
            if value is None or stopped:
                self.study.tell(number, state=TrialState.PRUNED)  # valued by its last intermediate value
            else:
                self.study.tell(number, float(value))  # a NaN: Optuna marks the trial FAIL, with a warning
        self.closed.add(trial_id)

    def storage_id(self, trial_id: str) -> int:
        study_id = self.storage.get_study_id_from_name(self.study_name)
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, self.number[trial_id])

    # -- resume -----------------------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"number": dict(self.number)}

    def set_state(self, state: dict) -> None:
        self.number = dict(state["number"])
        self.closed = set()
        self.restored = True
        if self.study is not None:
            self.reconcile()
            self.enqueue_missing()

    def reconcile(self) -> None:
        """After Tune restored this searcher from its snapshot: the trials the study already finished are closed,
        the running trials the snapshot never knew are failed (``enqueue_missing`` then enqueues their depths)."""
        finished = {t.number for t in self.study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.closed = {tid for tid, n in self.number.items() if n in finished}
        fail_orphans(self.study, set(self.number.values()))

