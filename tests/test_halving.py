"""Successive halving per stratum (tunedepth.hpo.promotion.StratifiedHalving), fed synthetic results (no training).

Each simulated run adds the trials in grid order, runs every runnable trial to its next rung (or its end),
asks the scheduler to decide, and repeats: the order in which trials arrive must not decide who goes on.
"""
import zlib

import numpy as np
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from tunedepth.hpo.promotion import StratifiedHalving
from tunedepth.hpo.schedulers import BudgetStratifiedASHA

DEPTHS = [f"d{i}" for i in range(9)]
KW = dict(max_t=9, grace_period=1, reduction_factor=3)
CHI2_8DF_P001 = 26.12  # chi-square critical value, 8 degrees of freedom, p = 0.001


def _trials(depths, lrs=(1e-3,), seeds=(0,), budget=1.0):
    """Grid order as Tune proposes it (depth by depth)."""
    return [Trial("__fake", config={"budget": budget, "depth": d, "lr": lr, "seed": s}, stub=True)
            for d in depths for lr in lrs for s in seeds]


def _simulate(sched, trials, score, max_t=9, early_stop=None):
    """Run ``trials`` under ``sched``; ``score(trial, t)`` is the validation metric after t epoch-equivalents.
    Returns {trial_id: epoch-equivalents it trained}."""
    for tr in trials:
        sched.on_trial_add(None, tr)
    ran = {tr.trial_id: 0 for tr in trials}
    runnable = [tr for tr in trials if tr.trial_id not in sched.waiting]  # replicates held back start later
    while runnable:
        for tr in runnable:
            while ran[tr.trial_id] < max_t:
                ran[tr.trial_id] += 1
                t = ran[tr.trial_id]
                stop_now = early_stop is not None and early_stop(tr, t)
                result = {"training_iteration": t, "val_metric": score(tr, t), "early_stopped": stop_now}
                if sched.on_trial_result(None, tr, result) == TrialScheduler.PAUSE:
                    break
                if stop_now:
                    break
            if sched.paused_at.get(tr.trial_id) is None:
                sched.on_trial_complete(None, tr, {})
        resume, _ = sched.decide(search_finished=True)
        released, _ = sched.settle_replicates(search_finished=True)
        by_id = {tr.trial_id: tr for tr in trials}
        runnable = [by_id[t] for t in resume + released]
    return ran


def _noisy(rng, offsets=None, sd=0.02):
    """Identical expected curves (a saturating rise) plus iid noise per report; ``offsets``: depth -> shift.

    The noise of a report is a function of (this curve set, the trial's config, t) alone: Tune's random trial ids
    order the resumes, and noise drawn in call order would make each run depend on them."""
    base = int(rng.integers(2**32))

    def score(tr, t):
        key = zlib.crc32(repr(sorted(tr.config.items())).encode())
        noise = np.random.default_rng([base, key, t]).normal(0, sd)
        return 0.9 - 0.3 * 0.6 ** t + (offsets or {}).get(tr.config["depth"], 0.0) + noise
    return score


def _chi2(counts):
    counts = np.asarray(counts, dtype=float)
    expected = counts.sum() / len(counts)
    return float(((counts - expected) ** 2 / expected).sum())


def test_per_depth_runs_every_depths_best_lr_to_the_end_with_all_its_seeds():
    rng = np.random.default_rng(0)
    lrs, seeds = (3e-4, 1e-3, 3e-3), (0, 1)
    trials = _trials(DEPTHS, lrs, seeds)
    sched = StratifiedHalving(metric="val_metric", mode="max", stratum_size=len(lrs) * len(seeds), **KW)
    ran = _simulate(sched, trials, _noisy(rng))
    for d in DEPTHS:
        full = [tr for tr in trials if tr.config["depth"] == d and ran[tr.trial_id] == 9]
        assert len(full) == len(seeds), (d, full)  # one lr per depth, with both of its seeds
        assert len({tr.config["lr"] for tr in full}) == 1
    # successive halving spends per depth 6 x 1 + 2 x 2 + 2 x 6 = 22 epoch-equivalents, the grid 54
    assert sum(ran.values()) == 22 * len(DEPTHS)


def test_survivors_mode_races_the_first_seed_and_runs_the_other_only_for_the_winner():
    rng = np.random.default_rng(4)
    lrs, seeds = (3e-4, 5e-4, 1e-3, 2e-3, 3e-3), (0, 1)
    trials = _trials(DEPTHS, lrs, seeds)
    sched = StratifiedHalving(metric="val_metric", mode="max", stratum_size=len(lrs) * len(seeds),
                              lead_replicate=0, **KW)
    ran = _simulate(sched, trials, _noisy(rng))
    for d in DEPTHS:
        cell = [tr for tr in trials if tr.config["depth"] == d]
        full = [tr for tr in cell if ran[tr.trial_id] == 9]
        assert sorted(tr.config["seed"] for tr in full) == [0, 1] and len({tr.config["lr"] for tr in full}) == 1
        assert sum(ran[tr.trial_id] == 0 for tr in cell) == len(lrs) - 1  # losers' replicates never started
    # per depth: 5 first-seed trials x 1 + the winner's first seed 8 more + its replicate 9 = 22 (grid: 90)
    assert sum(ran.values()) == 22 * len(DEPTHS) and not sched.waiting


def test_survivors_mode_is_fair_to_identical_learning_rates_and_finds_a_better_one():
    rng = np.random.default_rng(5)
    lrs = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
    wins = dict.fromkeys(lrs, 0)
    for _ in range(450):
        trials = _trials(["d0"], lrs, (0, 1))
        sched = StratifiedHalving(metric="val_metric", mode="max", stratum_size=18, lead_replicate=0, **KW)
        ran = _simulate(sched, trials, _noisy(rng))
        (winner,) = {tr.config["lr"] for tr in trials if ran[tr.trial_id] == 9}
        wins[winner] += 1
    assert _chi2(list(wins.values())) < CHI2_8DF_P001, wins
    better = 0
    for _ in range(100):
        trials = _trials(["d0"], lrs, (0, 1))
        sched = StratifiedHalving(metric="val_metric", mode="max", stratum_size=18, lead_replicate=0, **KW)
        score = lambda tr, t, f=_noisy(rng): f(tr, t) + (0.06 if tr.config["lr"] == 0.1 else 0.0)  # noqa: E731
        ran = _simulate(sched, trials, score)
        better += {tr.config["lr"] for tr in trials if ran[tr.trial_id] == 9} == {0.1}
    assert better >= 90


def test_per_depth_judges_an_lrs_seeds_by_their_mean_not_their_max():
    # lr 1e-3: one lucky seed (0.95) and one diverged (0.5); lr 3e-4: both seeds 0.8; lr 3e-3: both 0.6
    table = {(1e-3, 0): 0.95, (1e-3, 1): 0.5, (3e-4, 0): 0.8, (3e-4, 1): 0.8, (3e-3, 0): 0.6, (3e-3, 1): 0.6}
    trials = _trials(["fc8"], (3e-4, 1e-3, 3e-3), (0, 1))
    sched = StratifiedHalving(metric="val_metric", mode="max", **KW)
    ran = _simulate(sched, trials, lambda tr, t: table[(tr.config["lr"], tr.config["seed"])])
    assert {tr.config["lr"] for tr in trials if ran[tr.trial_id] == 9} == {3e-4}


def test_per_budget_identical_depths_in_grid_order_reach_the_end_equally_often():
    rng = np.random.default_rng(1)
    wins = dict.fromkeys(DEPTHS, 0)
    n_runs = 450
    for _ in range(n_runs):
        trials = _trials(DEPTHS)
        sched = StratifiedHalving(stratify_by=("budget",), group_by=("depth", "lr"), metric="val_metric",
                                  mode="max", **KW)
        ran = _simulate(sched, trials, _noisy(rng))
        finished = [tr.config["depth"] for tr in trials if ran[tr.trial_id] == 9]
        assert len(finished) == 1  # 9 -> 3 -> 1
        wins[finished[0]] += 1
    assert _chi2(list(wins.values())) < CHI2_8DF_P001, wins


def test_the_control_rays_asha_favours_the_depth_proposed_first():
    """What the default avoids: Ray's asynchronous ASHA with trials run one after another in grid order."""
    rng = np.random.default_rng(2)
    wins = dict.fromkeys(DEPTHS, 0)
    for _ in range(200):
        sched = BudgetStratifiedASHA(metric="val_metric", mode="max", **KW)
        score = _noisy(rng)
        for tr in _trials(DEPTHS):
            sched.on_trial_add(None, tr)
            for t in range(1, 10):
                decision = sched.on_trial_result(None, tr, {"training_iteration": t, "val_metric": score(tr, t)})
                if t == 9:
                    wins[tr.config["depth"]] += 1
                elif decision != TrialScheduler.CONTINUE:
                    break
    assert wins["d0"] == 200, wins  # the first trial at every rung always goes on
    assert _chi2(list(wins.values())) > CHI2_8DF_P001


@pytest.mark.parametrize("by", ["per-depth", "per-budget"])
def test_a_depth_with_a_better_curve_wins(by):
    rng = np.random.default_rng(3)
    wins = 0
    for _ in range(100):
        trials = _trials(DEPTHS, (1e-3, 3e-3), (0, 1))
        kw = dict(stratify_by=("budget",), group_by=("depth", "lr")) if by == "per-budget" else {}
        sched = StratifiedHalving(metric="val_metric", mode="max", **kw, **KW)
        score = _noisy(rng, offsets={"d6": 0.06})
        ran = _simulate(sched, trials, score)
        # the depth's score: the mean over seeds of its best lr at the end (how the analysis selects)
        final = {}
        for tr in trials:
            if ran[tr.trial_id] == 9:
                final.setdefault((tr.config["depth"], tr.config["lr"]), []).append(score(tr, 9))
        best = max(final, key=lambda k: np.mean(final[k]))
        wins += best[0] == "d6"
    assert wins >= 90


def test_an_early_stopped_seed_counts_with_its_last_score_and_its_group_goes_on():
    trials = _trials(["fc8"], (1e-3, 3e-3, 1e-2), (0, 1))
    sched = StratifiedHalving(metric="val_metric", mode="max", **KW)
    good = lambda tr: tr.config["lr"] == 1e-3  # noqa: E731
    ran = _simulate(sched, trials, lambda tr, t: 0.9 if good(tr) else 0.6,
                    early_stop=lambda tr, t: good(tr) and tr.config["seed"] == 1 and t == 2)
    assert {tr.config["seed"]: ran[tr.trial_id] for tr in trials if good(tr)} == {0: 9, 1: 2}
    assert all(ran[tr.trial_id] == 1 for tr in trials if not good(tr))


def test_state_file_round_trip(tmp_path):
    trials = _trials(["fc8", "fc7-fc8"], (1e-3, 3e-3, 1e-2))
    a = StratifiedHalving(metric="val_metric", mode="max", state_file=str(tmp_path / "p.json"), **KW)
    for tr in trials:
        a.on_trial_add(None, tr)
        a.on_trial_result(None, tr, {"training_iteration": 1, "val_metric": tr.config["lr"]})
    b = StratifiedHalving(metric="val_metric", mode="max", state_file=str(tmp_path / "p.json"), **KW)
    b.on_trial_add(None, trials[0])  # loads the file
    resume, stop = b.decide(search_finished=True)
    assert sorted(b._group_of[t] for t in resume) == [(1e-2, None), (1e-2, None)] and len(stop) == 4  # (lr, schedule)


def test_save_and_restore_write_json_and_keep_every_decision(tmp_path):
    """``save``/``restore`` (Tune's scheduler API, shared with the stratified ASHA): plain JSON, no pickle, and
    the restored scheduler decides the next rung as the original does."""
    import json

    trials = _trials(["fc8", "fc7-fc8"], (1e-3, 3e-3, 1e-2))
    a = StratifiedHalving(metric="val_metric", mode="max", **KW)
    for tr in trials:
        a.on_trial_add(None, tr)
        a.on_trial_result(None, tr, {"training_iteration": 1, "val_metric": tr.config["lr"]})
    path = tmp_path / "halving.json"
    a.save(str(path))
    assert not path.read_bytes().startswith(b"\x80") and "_scores" in json.loads(path.read_text())
    b = StratifiedHalving(**KW)
    b.restore(str(path))
    assert b.paused_at == a.paused_at and b._scores == a._scores
    assert b.decide(search_finished=True) == a.decide(search_finished=True)
    assert b.decisions == a.decisions and len(b.decisions) == 2


def _tied(rng, se=0.05):
    """Identical learning rates whose validation error (se 0.05) hides their differences: the evidence rule keeps
    every one at every rung (and none is at chance: chance 0.3, scores from 0.72 up)."""
    return _noisy(rng, sd=0.01), lambda tr, t: {"val_se": se, "val_chance": 0.3}


def _simulate_noisy(sched, trials, score, extra, max_t=9):
    """``_simulate`` with each report carrying ``extra(trial, t)`` (the noise estimate the evidence rule reads)."""
    real = sched.on_trial_result

    def on_result(controller, tr, result):
        return real(controller, tr, {**result, **extra(tr, result["training_iteration"])})
    sched.on_trial_result = on_result
    return _simulate(sched, trials, score, max_t=max_t)


@pytest.mark.parametrize("tied", [False, True])
def test_leader_mode_replicates_only_the_best_of_the_tied_survivors(tied):
    rng = np.random.default_rng(7)
    lrs, seeds = (3e-4, 1e-3, 3e-3), (0, 1)
    trials = _trials(["d0", "d1"], lrs, seeds)
    sched = StratifiedHalving(metric="val_metric", mode="max", stratum_size=len(lrs) * len(seeds),
                              lead_replicate=0, replicate_tied=tied, **KW)
    score, extra = _tied(rng)
    finals = {}

    def recording(tr, t):
        finals.setdefault(tr.trial_id, []).append(score(tr, t))
        return finals[tr.trial_id][-1]
    def with_best(tr, t):  # what a trial reports: its best validation so far, with that score's error
        return {**extra(tr, t), "best_val_metric": max(finals[tr.trial_id]), "best_val_se": 0.05}
    ran = _simulate_noisy(sched, trials, recording, with_best)
    for d in ("d0", "d1"):
        cell = [tr for tr in trials if tr.config["depth"] == d]
        first = [tr for tr in cell if tr.config["seed"] == 0]
        assert all(ran[tr.trial_id] == 9 for tr in first)  # tied: no lr is dropped at any rung
        replicated = {tr.config["lr"] for tr in cell if tr.config["seed"] == 1 and ran[tr.trial_id] == 9}
        if tied:
            assert replicated == set(lrs)
        else:  # the leader: the lr whose first seed ended with the best score (its best validation)
            leader = max(first, key=lambda tr: max(finals[tr.trial_id])).config["lr"]
            assert replicated == {leader}
            assert sum(ran[tr.trial_id] == 0 for tr in cell) == len(lrs) - 1
    rules = [x for x in sched.decisions if x["rule"] == "replicates"]
    assert (rules == []) if tied else ([x["tied"] for x in rules] == [2, 2])
    assert not sched.waiting


def test_leader_mode_state_survives_a_reload(tmp_path):
    rng = np.random.default_rng(8)
    trials = _trials(["d0"], (3e-4, 1e-3), (0, 1))
    kw = dict(metric="val_metric", mode="max", stratum_size=4, lead_replicate=0, state_file=str(tmp_path / "p.json"))
    a = StratifiedHalving(**kw, **KW)
    score, extra = _tied(rng)
    _simulate_noisy(a, trials, score, extra)
    b = StratifiedHalving(**kw, **KW)
    b.on_trial_add(None, trials[0])
    assert b._leader == a._leader and len(a._leader) == 1
    assert [x["rule"] for x in b.decisions] == [x["rule"] for x in a.decisions]
