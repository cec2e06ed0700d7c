"""Synchronous successive halving per stratum, with replicates judged together: the default scheduler.

``StratifiedHalving(stratify_by=("budget", "depth"), group_by=("lr",))`` (``--scheduler per-depth``, the default)
compares a trial only with the trials of its own budget *and depth*: it prunes learning rates within a depth,
never one depth against another. A learning rate's seeds form one *group*, scored by their mean at the rung,
and are promoted or stopped together. So every depth's best learning rate trains to the end with all its
seeds, and depths are compared at full length. ``stratify_by=("budget",), group_by=("depth", "lr")``
(``--scheduler per-budget``) is the budget-only variant: it prunes (depth, lr) pairs within a budget.

Order independence: a trial *pauses* at each rung (Tune keeps its checkpoint and frees its resources). A
stratum's rung is decided once, when every trial of the stratum that is still in the race has reported there
(or ended: an early-stopped trial keeps its last score at later rungs, an errored one drops out), and the
stratum is complete (``stratum_size`` trials added, or the searcher has proposed everything). Then the top
``max(1, floor(n_groups / reduction_factor))`` groups go on and the other groups' paused trials are stopped.
The decision depends only on the scores, not on the order in which trials arrived (Li et al. 2020 show that
asynchronous promotion favours early arrivals; with a grid proposed depth by depth that is a bias by depth).

Tune does not checkpoint a scheduler's state, so with ``state_file`` (the runner passes
``results/<name>/promotion.json``) every decision is written there (JSON, see ``tunedepth.jsonstate``) and a resumed
run reads it back.

Replicates on demand (``lead_replicate``): only the trials of the first seed race; the other seeds' trials of a
candidate wait (PENDING, never started) until the stratum is settled (one group left, or every rung decided),
then run to the end, without pausing, for

- ``--replicates leader`` (the default; ``replicate_tied=False``): the *leader* only, the group with the best
  final score once every trial still in the race has ended. The other groups still in the race were never shown
  worse (they are tied with it on the evidence); they are recorded as such (``decisions``: rule ``replicates``,
  ``tied``) and their waiting seeds are stopped unstarted, like those of the groups that lost a rung. A cell
  needs one candidate measured on every seed, not every tied candidate: selection ranks the candidates with the
  most seeds first (``tunedepth.analysis.selecting``), so the leader is the cell's choice;
- ``--replicates survivors`` (``replicate_tied=True``): every group still in the race.

So candidates are pruned on one seed, and the chosen one still has all its seeds at full length: the cell's
replicates.

Works with searchers that propose trials without waiting for results (grid, random); ``SearchConfig`` refuses
it with optuna and the guideline.
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from pyarrow.fs import FileType
from ray.tune.experiment import Trial
from ray.tune.result import EXPR_RESULT_FILE
from ray.tune.schedulers import TrialScheduler

from tunedepth import jsonstate
from tunedepth.hpo.ray_compat import set_trial_paused
from tunedepth.hpo.schedulers import StratifiedScheduler
from tunedepth.metrics.mode import Mode
from tunedepth.metrics.noise import paired_se


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def file_no_results(trial: Trial) -> None:
    """Give a replicate that is stopped without ever starting its folder and an empty results file, so that
    Tune's ``ResultGrid`` reads "no results" for it instead of warning that the files are missing."""
    trial.init_local_path()
    fs, folder = trial.storage.storage_filesystem, trial.storage.trial_fs_path
    fs.create_dir(folder, recursive=True)
    path = f"{folder.rstrip('/')}/{EXPR_RESULT_FILE}"
    if fs.get_file_info(path).type == FileType.NotFound:  # an existing file (a resumed run) is left as it is
        with fs.open_output_stream(path):
            pass


def rung_milestones(max_t: int, grace_period: int, reduction_factor: float) -> list[int]:
    """grace_period x eta^k below max_t: the times at which a trial pauses to be judged."""
    if grace_period < 1 or max_t < grace_period or reduction_factor <= 1:
        raise ValueError("need 1 <= grace_period <= max_t and reduction_factor > 1")
    k_max = int(math.floor(math.log(max_t / grace_period, reduction_factor) + 1e-9))
    return [m for m in (int(grace_period * reduction_factor ** k) for k in range(k_max + 1)) if m < max_t]


class StratifiedHalving(StratifiedScheduler):
    STATE_KEYS = ("_members", "_stratum_of", "_group_of", "_scores", "_final", "_done", "_survivors", "_decided",
                  "paused_at", "stopped_at_rung", "_to_resume", "_to_stop", "_held", "_free", "_noise",
                  "_final_noise", "_halves", "_final_halves", "_leader", "decisions")

    def __init__(self, *, stratify_by: tuple[str, ...] = ("budget", "depth"),
                 group_by: tuple[str, ...] = ("lr", "schedule"),
                 time_attr: str = "training_iteration", metric: str | None = None, mode: str | None = None,
                 max_t: int = 8, grace_period: int = 1, reduction_factor: float = 3,
                 stratum_size: int | None = None, state_file: str | None = None,
                 replicate_key: str = "seed", lead_replicate: Any = None, replicate_tied: bool = False,
                 z: float = 2.0, growth: float = 0.0):
        super().__init__(stratify_by=tuple(stratify_by), metric=metric, mode=mode)
        self._group_by, self._time_attr, self._rf = tuple(group_by), time_attr, reduction_factor
        self._stratum_size, self._state_file = stratum_size, state_file
        self._replicate_key, self._lead, self._replicate_tied = replicate_key, lead_replicate, replicate_tied
        self._z, self._growth = float(z), float(growth)
        self.milestones = rung_milestones(max_t, grace_period, reduction_factor)
        self._loaded, self._requeued = False, set()
        self._members: dict[Any, list[str]] = {}  # stratum -> trial ids
        self._stratum_of: dict[str, Any] = {}
        self._group_of: dict[str, tuple] = {}
        self._scores: dict[str, dict[int, float]] = {}  # trial -> milestone -> score (higher is better)
        self._final: dict[str, float] = {}  # ended trials: their last score (none if they errored)
        self._done: set[str] = set()
        self._survivors: dict[Any, set[str]] = {}  # stratum -> trials still in the race
        self._decided: dict[Any, int] = {}  # stratum -> rungs decided so far
        self.paused_at: dict[str, int] = {}
        self.stopped_at_rung: dict[str, int] = {}
        self._to_resume: list[str] = []  # decided, not yet resumed (Tune may still be pausing them)
        self._to_stop: list[str] = []
        self._held: set[str] = set()  # replicates waiting for their group to survive (never started yet)
        self._free: set[str] = set()  # released replicates: run to the end, never paused
        self._noise: dict[str, dict[int, tuple[float, float]]] = {}  # trial -> milestone -> (se, signed chance)
        self._final_noise: dict[str, tuple[float, float]] = {}
        # trial -> milestone -> its score on the run's fixed validation halves (signed: higher is better)
        self._halves: dict[str, dict[int, list[float]]] = {}
        self._final_halves: dict[str, list[float]] = {}
        self._leader: dict[Any, tuple] = {}  # stratum -> the one group whose waiting replicates run (leader mode)
        self.decisions: list[dict] = []  # every rung decided: stratum, milestone, scores, kept, the rule used

    # -- state ------------------------------------------------------------------------------------
    def _save(self) -> None:
        if self._state_file:
            jsonstate.dump({k: getattr(self, k) for k in self.STATE_KEYS}, self._state_file)

    def _load_once(self) -> None:
        if not self._loaded:
            self._loaded = True
            if self._state_file and os.path.exists(self._state_file):
                self.__dict__.update(jsonstate.load(self._state_file))

    def _sign(self) -> float:
        return Mode(self._mode).sign

    # -- what Tune reports --------------------------------------------------------------------------
    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        self._load_once()
        tid = trial.trial_id
        if tid not in self._stratum_of:
            s = self.stratum(trial)
            self._stratum_of[tid] = s
            self._group_of[tid] = tuple(trial.config.get(k) for k in self._group_by)
            self._members.setdefault(s, []).append(tid)
            self._survivors.setdefault(s, set())
            self._decided.setdefault(s, 0)
            if self._lead is not None and trial.config.get(self._replicate_key) != self._lead:
                self._held.add(tid)
                if tune_controller is not None and trial.status == Trial.PENDING:
                    trial.set_status(Trial.PAUSED)  # Tune starts every PENDING trial; it files this one as paused
            else:
                self._survivors[s].add(tid)
        held = any(tid in x for x in (self.paused_at, self.stopped_at_rung, self._to_resume, self._held))
        if tune_controller is not None and trial.status == Trial.PENDING and held:
            self._requeued.add(tid)  # a resumed run requeues unfinished trials; put them back where they were

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        tid, t = trial.trial_id, result.get(self._time_attr)
        if self._metric not in result:
            return TrialScheduler.CONTINUE
        # a trial is judged by its best validation so far (what selection uses), with that score's noise
        best = result.get("best_val_metric", None) if self._metric == "val_metric" else None
        raw = float(result[self._metric]) if best is None or not _finite(best) else float(best)
        if not _finite(result[self._metric]) and result.get("diverged"):
            raw = float("nan")
        score = self._sign() * raw
        self._final[tid] = score if math.isfinite(score) else -math.inf
        se = result.get("best_val_se") if best is not None and _finite(best) else result.get("val_se")
        chance = result.get("val_chance")
        self._final_noise[tid] = (float(se) if _finite(se) else math.nan,
                                  self._sign() * float(chance) if _finite(chance) else math.nan)
        halves = result.get("best_val_halves") if best is not None and _finite(best) else result.get("val_halves")
        if isinstance(halves, (list, tuple, np.ndarray)) and len(halves):
            self._final_halves[tid] = [self._sign() * float(v) if _finite(v) else math.nan for v in halves]
        else:
            self._final_halves.pop(tid, None)
        if t not in self.milestones or t in self._scores.get(tid, {}) or tid in self._free:
            return TrialScheduler.CONTINUE
        self._scores.setdefault(tid, {})[t] = self._final[tid]
        self._noise.setdefault(tid, {})[t] = self._final_noise[tid]
        if tid in self._final_halves:
            self._halves.setdefault(tid, {})[t] = self._final_halves[tid]
        if result.get("early_stopped"):  # it ends now anyway; it is scored with this value at later rungs
            return TrialScheduler.CONTINUE
        if self._settled(self._stratum_of[tid], search_finished=False):  # nothing left to decide: no pause
            return TrialScheduler.CONTINUE
        self.paused_at[tid] = t
        self._save()
        return TrialScheduler.PAUSE

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._end(trial.trial_id)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self._final.pop(trial.trial_id, None)
        self._final_noise.pop(trial.trial_id, None)
        self._final_halves.pop(trial.trial_id, None)
        self._end(trial.trial_id)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        if trial.trial_id not in self.stopped_at_rung:
            self._end(trial.trial_id)

    def _end(self, tid: str) -> None:
        self.paused_at.pop(tid, None)
        self._done.add(tid)
        self._save()

    # -- decisions ------------------------------------------------------------------------------------
    def _closed(self, s: Any, search_finished: bool) -> bool:
        return search_finished or (self._stratum_size is not None and len(self._members[s]) >= self._stratum_size)

    def _rung_ready(self, s: Any, m: int) -> bool:
        return all(self.paused_at.get(t) == m or t in self._done for t in self._survivors[s])

    def _group_scores(self, s: Any, m: int) -> dict[tuple, float]:
        """Mean score of each group's trials at milestone ``m`` (an ended trial counts with its last score)."""
        per: dict[tuple, list[float]] = {}
        for t in self._survivors[s]:
            score = self._scores.get(t, {}).get(m, self._final.get(t) if t in self._done else None)
            if score is not None:
                per.setdefault(self._group_of[t], []).append(score)
        return {g: float(sum(v) / len(v)) for g, v in per.items()}

    def _group_noise(self, s: Any, m: int) -> dict[tuple, tuple[float, float]]:
        """Per group at milestone ``m``: (standard error of its score, its chance level), averaged over its
        trials (replicates share one validation split, so averaging seeds does not shrink that error)."""
        per: dict[tuple, list[tuple[float, float]]] = {}
        for t in self._survivors[s]:
            noise = self._noise.get(t, {}).get(m, self._final_noise.get(t) if t in self._done else None)
            if noise is not None:
                per.setdefault(self._group_of[t], []).append(noise)
        return {g: (float(np.mean([n[0] for n in v])), float(np.mean([n[1] for n in v]))) for g, v in per.items()}

    def _group_halves(self, s: Any, m: int) -> dict[tuple, np.ndarray]:
        """Per group at milestone ``m``: its trials' mean score on each validation half (groups whose trials all
        report halves of one length only)."""
        per: dict[tuple, list[list[float]]] = {}
        missing: set[tuple] = set()
        for t in self._survivors[s]:
            h = self._halves.get(t, {}).get(m, self._final_halves.get(t) if t in self._done else None)
            if h is None:
                missing.add(self._group_of[t])
            else:
                per.setdefault(self._group_of[t], []).append(h)
        out = {}
        for g, v in per.items():
            if g not in missing and len({len(h) for h in v}) == 1:
                out[g] = np.mean(np.asarray(v, float), axis=0)
        return out

    def _margin(self, top: tuple, g: tuple, noise: dict, halves: dict) -> float:
        """``z`` standard errors of score(top) - score(g): paired over the validation halves where both report
        them (what the two share cancels), else from the two standard errors as if independent."""
        se = paired_se(halves[top], halves[g]) if top in halves and g in halves else math.nan
        if not math.isfinite(se):
            se = math.hypot(noise[top][0], noise[g][0])
        return self._z * se

    def _gains(self, s: Any, m: int, scores: dict, noise: dict, halves: dict) -> dict[tuple, tuple[float, float]]:
        """Per group: (its gain since the previous rung, that gain's standard error). At the first rung the gain
        is over its chance level. Paired over the group's own halves at the two rungs where it has both."""
        i = self.milestones.index(m)
        if i == 0:
            return {g: (scores[g] - noise[g][1], noise[g][0]) for g in scores if g in noise}
        prev = self.milestones[i - 1]
        before, before_noise, before_halves = (self._group_scores(s, prev), self._group_noise(s, prev),
                                               self._group_halves(s, prev))
        out = {}
        for g in scores:
            if g not in before or g not in noise or g not in before_noise:
                continue
            se = paired_se(halves[g], before_halves[g]) if g in halves and g in before_halves else math.nan
            out[g] = (scores[g] - before[g], se if math.isfinite(se) else math.hypot(noise[g][0], before_noise[g][0]))
        return out

    def _reach(self, g: tuple, score: float, gains: dict | None) -> float:
        """The most group ``g`` can plausibly still reach: its score plus ``growth`` times its gain since the
        previous rung (at the gain's upper ``z`` bound). Rungs double, and a learning curve ``a - b/t`` gains in
        the rest of training exactly its last doubling's gain (growth 1, the default); ``a - b t^-0.5`` gains
        1 / (2^0.5 - 1) = 2.4 times it. Without a known gain a group could reach anything (``gains`` None: the
        plain rule, its score)."""
        if gains is None or self._growth <= 0:
            return score
        gain, se = gains.get(g, (math.inf, math.inf))
        up = gain + self._z * se if math.isfinite(se) else math.inf
        return score + self._growth * max(0.0, up) if math.isfinite(up) else math.inf

    def winners(self, scores: dict[tuple, float], noise: dict[tuple, tuple[float, float]],
                halves: dict[tuple, np.ndarray] | None = None,
                gains: dict[tuple, tuple[float, float]] | None = None) -> tuple[set, str]:
        """The groups that go on from a rung, and the rule that chose them.

        - ``chance``: every group is still within ``z`` standard errors of its chance level: nothing is
          decided on such a rung (every group goes on);
        - ``evidence``: a group goes on unless it is behind the best by more than ``z`` standard errors of the
          difference, paired on the validation halves both report (``tunedepth.metrics.noise.paired_se``),
          else unpaired, *and* it would stay behind by that much even if it kept improving (``growth`` times its
          gain since the previous rung, ``_reach``): a slow candidate that is still climbing is not dropped on
          evidence that a longer run would overturn (a diverged group, at -inf, never goes on);
        - ``top-k``: a group without a noise estimate (a trainable that reports none): the best
          ``1/reduction_factor``, as plain successive halving."""
        halves = halves or {}
        ranked = sorted(scores, key=lambda g: (-scores[g], repr(g)))
        finite = [g for g in ranked if math.isfinite(scores[g])]
        if not finite:
            return set(ranked[:1]), "top-k"
        if all(g in noise and math.isfinite(noise[g][0]) for g in finite):
            if all(math.isfinite(noise[g][1]) and scores[g] - noise[g][1] <= self._z * noise[g][0] for g in finite):
                return set(finite), "chance"
            top = finite[0]
            keep = {g for g in finite
                    if scores[top] - self._reach(g, scores[g], gains) <= self._margin(top, g, noise, halves)}
            return keep, "evidence"
        return set(ranked[:max(1, int(len(scores) // self._rf))]), "top-k"

    def decide(self, search_finished: bool) -> tuple[list[str], list[str]]:
        """Decide every rung that is ready; returns (paused trials to resume, paused trials to stop)."""
        resume, stop = [], []
        for s in self._members:
            while self._decided[s] < len(self.milestones) and self._closed(s, search_finished):
                m = self.milestones[self._decided[s]]
                if not self._rung_ready(s, m):
                    break
                scores = self._group_scores(s, m)
                halves = self._group_halves(s, m)
                noise = self._group_noise(s, m)
                gains = self._gains(s, m, scores, noise, halves) if self._growth > 0 else None
                winners, rule = self.winners(scores, noise, halves, gains)
                self.decisions.append({"stratum": list(s) if isinstance(s, tuple) else s, "milestone": m,
                                       "rule": rule, "groups": len(scores), "kept": len(winners),
                                       "paired": bool(scores) and set(scores) <= set(halves)})
                for t in sorted(self._survivors[s]):
                    if self.paused_at.get(t) != m:
                        continue
                    if self._group_of[t] in winners:
                        resume.append(t)
                        self.paused_at.pop(t)
                    else:
                        stop.append(t)
                        self.stopped_at_rung[t] = self.paused_at.pop(t)
                self._survivors[s] = {t for t in self._survivors[s] if self._group_of[t] in winners}
                self._decided[s] += 1
        if resume or stop:
            self._to_resume += resume
            self._to_stop += stop
            self._save()
        return resume, stop

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        trials = {t.trial_id: t for t in tune_controller.get_trials()}
        self._restore_requeued(tune_controller, trials)
        finished = tune_controller.search_alg.is_finished()
        self.decide(finished)
        released, dropped = self.settle_replicates(finished)
        self._to_resume += released  # held as PAUSED: started when chosen, from scratch (no checkpoint yet)
        self._to_stop += dropped  # never started: a losing learning rate's further seeds
        # a trial told to pause is PAUSED only once Tune has saved it: act on it then, keep it queued until
        for tid in [t for t in self._to_stop if self._status(trials, t) != Trial.RUNNING]:
            self._to_stop.remove(tid)
            self._save()
            if self._status(trials, tid) in (Trial.PAUSED, Trial.PENDING):
                file_no_results(trials[tid])
                tune_controller.stop_trial(trials[tid])
        for tid in [t for t in self._to_resume if self._status(trials, t) != Trial.RUNNING]:
            self._to_resume.remove(tid)
            self._save()
            if self._status(trials, tid) == Trial.PAUSED:
                return trials[tid]
        for trial in trials.values():
            if trial.status == Trial.PENDING:
                return trial
        return None

    def _settled(self, s: Any, search_finished: bool) -> bool:
        """No decision left that could drop a group still in the race of stratum ``s``."""
        groups = {self._group_of[t] for t in self._survivors[s]}
        return self._closed(s, search_finished) and (len(groups) <= 1 or self._decided[s] == len(self.milestones))

    def settle_replicates(self, search_finished: bool) -> tuple[list[str], list[str]]:
        """Waiting replicates to start now (their group survived every decision) and to drop unstarted (it lost)."""
        release, drop = [], []
        for tid in sorted(self._held):
            s = self._stratum_of[tid]
            if not self._closed(s, search_finished):  # a group's first-seed trial may not be added yet
                continue
            alive = {self._group_of[t] for t in self._survivors[s]}
            if self._group_of[tid] in alive and not self._settled(s, search_finished):
                continue
            replicated = self._replicated(s, alive)
            if replicated is None:  # the leader is known once the race's last trials have ended
                continue
            self._held.discard(tid)
            if self._group_of[tid] in replicated:
                self._free.add(tid)
                release.append(tid)
            else:
                self.stopped_at_rung[tid] = 0
                self._done.add(tid)
                drop.append(tid)
        if release or drop:
            self._save()
        return release, drop

    def _replicated(self, s: Any, alive: set[tuple]) -> set[tuple] | None:
        """The groups of settled stratum ``s`` whose waiting replicates run: every one still in the race
        (``replicate_tied``, or one left), else the leader by final score once every racing trial has ended
        (None until then). The choice is recorded once per stratum."""
        if self._replicate_tied or len(alive) <= 1:
            return alive
        if s not in self._leader:
            if not all(t in self._done for t in self._survivors[s]):
                return None
            per: dict[tuple, list[float]] = {}
            for t in self._survivors[s]:
                per.setdefault(self._group_of[t], []).append(self._final.get(t, -math.inf))
            score = {g: float(np.mean(v)) for g, v in per.items()}
            leader = sorted(score, key=lambda g: (-score[g], repr(g)))[0]
            self._leader[s] = leader
            self.decisions.append({"stratum": list(s) if isinstance(s, tuple) else s, "milestone": None,
                                   "rule": "replicates", "groups": len(alive), "kept": 1, "tied": len(alive) - 1,
                                   "paired": False})
        return {self._leader[s]}

    @property
    def waiting(self) -> frozenset[str]:
        """Replicates held back until their group's fate is decided."""
        return frozenset(self._held)

    @staticmethod
    def _status(trials: dict[str, Trial], tid: str) -> str | None:
        return trials[tid].status if tid in trials else None

    def _restore_requeued(self, tune_controller, trials: dict[str, Trial]) -> None:
        for tid in [t for t in self._requeued if t in trials]:
            self._requeued.discard(tid)
            if trials[tid].status != Trial.PENDING:
                continue
            if any(tid in x for x in (self.paused_at, self._to_resume, self._to_stop, self._held)):  # still waiting
                set_trial_paused(tune_controller, trials[tid])
            else:  # it had lost its rung (Tune's last snapshot may still call it paused)
                tune_controller.stop_trial(trials[tid])

    def num_stopped(self) -> dict[Any, int]:
        out: dict[Any, int] = {}
        for tid in self.stopped_at_rung:
            out[self._stratum_of[tid]] = out.get(self._stratum_of[tid], 0) + 1
        return out

    def debug_string(self) -> str:
        return (f"Using successive halving per {'x'.join(self._stratify_by)} over {'x'.join(self._group_by)} groups "
                f"(rungs {self.milestones}, eta {self._rf})")
