"""The one search space (tunedepth.space.Space) and the evidence rule of the halving scheduler, with known truths."""
import math

import numpy as np

from tunedepth.config import SearchConfig
from tunedepth.hpo.promotion import StratifiedHalving
from tunedepth.hpo.searchers import make_plan, make_space
from tunedepth.space import Space, spread

DEPTHS = ["head", "b4-head", "stem-head", "scratch"]


def _space(**kw):
    base = dict(depths=tuple(DEPTHS), budgets=(0.25, 1.0), seeds=(0, 1), lr_range=(3e-4, 3e-3),
                scratch_lr_range=(3e-3, 3e-2), schedules=("paper", "cosine"), samples=3)
    return Space(**{**base, **kw})


def test_grid_points_cover_each_depths_own_range_and_every_schedule():
    s = _space()
    pts = s.grid_points()
    assert len(pts) == s.trial_count("grid") == 2 * 4 * 3 * 2 * 2
    scratch = {p["lr"] for p in pts if p["depth"] == "scratch"}
    tuned = {p["lr"] for p in pts if p["depth"] != "scratch"}
    assert min(scratch) == 3e-3 and max(scratch) == 3e-2 and max(tuned) == 3e-3 and min(tuned) == 3e-4
    assert {p["schedule"] for p in pts} == {"paper", "cosine"}
    assert [p["budget"] for p in pts[:2]] == [1.0, 1.0] and pts[0]["depth"] == "head"  # largest budget first


def test_random_points_are_seeded_and_stay_in_range():
    a, b, c = _space(search_seed=1).random_points(), _space(search_seed=1).random_points(), \
        _space(search_seed=2).random_points()
    assert a == b and a != c
    for p in a:
        low, high = _space().range_of(p["depth"])
        assert low <= p["lr"] * (1 + 1e-3) and p["lr"] <= high * (1 + 1e-3)


def test_spread_and_unit_lr():
    assert spread(DEPTHS, 2) == ["head", "scratch"] and spread(DEPTHS, 9) == DEPTHS
    s = _space()
    assert math.isclose(s.lr_from_unit("scratch", 1.0), 3e-2) and math.isclose(s.lr_from_unit("head", 0.0), 3e-4)


def test_the_optuna_form_draws_each_depths_own_lr_range(tmp_path):
    """``Space.optuna_point`` through a real study (SQLite): every lr inside its depth's range, scratch's range
    reached above the fine-tuning one, the schedule a categorical only when several are raced."""
    import optuna

    for schedules in (("paper",), ("paper", "cosine")):
        s = _space(schedules=schedules)
        study = optuna.create_study(storage=f"sqlite:///{tmp_path}/{len(schedules)}.db", direction="maximize",
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        drawn = []
        for _ in range(40):
            trial = study.ask()
            point = s.optuna_point(trial)
            study.tell(trial, 0.5)
            drawn.append(point)
        for point, t in zip(drawn, study.get_trials()):  # what the study stores is what the trial got
            assert t.params["depth"] == point["depth"] and math.isclose(t.user_attrs["lr"], point["lr"])
            assert math.isclose(point["lr"], s.lr_from_unit(point["depth"], t.params["lr_unit"]))
            low, high = s.range_of(point["depth"])
            assert low <= point["lr"] <= high * (1 + 1e-12)
        scratch = [p["lr"] for p in drawn if p["depth"] == "scratch"]
        tuned = [p["lr"] for p in drawn if p["depth"] != "scratch"]
        assert scratch and tuned and max(scratch) > 3e-3 >= max(tuned)  # scratch draws in its own, higher range
        assert {p["depth"] for p in drawn} == set(DEPTHS)
        if len(schedules) == 1:
            assert all("schedule" not in t.params for t in study.get_trials())
            assert {p["schedule"] for p in drawn} == {"paper"}
        else:
            assert {t.params["schedule"] for t in study.get_trials()} == set(schedules)
            assert all(t.params["schedule"] == p["schedule"] for p, t in zip(drawn, study.get_trials()))


def test_the_plan_proposes_exactly_the_space():
    cfg = SearchConfig(budgets=(1.0,), samples=2, seeds=(0,), schedules=("paper", "warmup-cosine"))
    plan = make_plan(cfg, DEPTHS, {"app": "x"}, "val_metric", "max")
    assert plan.num_samples == plan.trials == len(make_space(cfg, DEPTHS).grid_points()) == 4 * 2 * 2


def _rung(sched, scores, ses, chance=0.5):
    """Feed one rung (milestone 2) of one cell; returns the lrs that go on."""
    from ray.tune.experiment import Trial

    trials = [Trial("__fake", config={"budget": 1.0, "depth": "head", "lr": lr, "schedule": "paper", "seed": 0},
                    stub=True) for lr in scores]
    for tr in trials:
        sched.on_trial_add(None, tr)
    for tr in trials:
        lr = tr.config["lr"]
        sched.on_trial_result(None, tr, {"training_iteration": 1, "val_metric": scores[lr], "val_se": ses[lr],
                                         "val_chance": chance})
        sched.on_trial_result(None, tr, {"training_iteration": 2, "val_metric": scores[lr], "val_se": ses[lr],
                                         "val_chance": chance})
    resume, _ = sched.decide(search_finished=True)
    return sorted(sched._group_of[t][0] for t in resume)


def test_a_candidate_is_dropped_only_beyond_the_noise():
    kw = dict(metric="val_metric", mode="max", max_t=8, grace_period=2, reduction_factor=2, z=2.0)
    # behind by 0.02 with se 0.02 each: within 2 * sqrt(2) * 0.02 = 0.057, so both go on
    assert _rung(StratifiedHalving(**kw), {1e-3: 0.90, 3e-3: 0.88}, {1e-3: 0.02, 3e-3: 0.02}) == [1e-3, 3e-3]
    # behind by 0.2: dropped
    assert _rung(StratifiedHalving(**kw), {1e-3: 0.90, 3e-3: 0.70}, {1e-3: 0.02, 3e-3: 0.02}) == [1e-3]


def test_nothing_is_decided_while_every_candidate_is_at_chance():
    kw = dict(metric="val_metric", mode="max", max_t=8, grace_period=2, reduction_factor=2, z=2.0)
    sched = StratifiedHalving(**kw)
    assert _rung(sched, {1e-3: 0.55, 3e-3: 0.49, 1e-2: 0.50}, {lr: 0.04 for lr in (1e-3, 3e-3, 1e-2)}) == \
        [1e-3, 3e-3, 1e-2]
    assert sched.decisions[-1]["rule"] == "chance"


def test_evidence_rule_rarely_drops_the_true_best_in_simulation():
    """Known truth: lr A is best by 0.01 (within noise); with se 0.02 and z 2 it is dropped in < 5% of races."""
    rng = np.random.default_rng(0)
    kw = dict(metric="val_metric", mode="max", max_t=8, grace_period=2, reduction_factor=2, z=2.0)
    lost = 0
    for _ in range(200):
        scores = {1e-3: 0.90 + rng.normal(0, 0.02), 3e-3: 0.89 + rng.normal(0, 0.02), 1e-2: 0.70 + rng.normal(0, 0.02)}
        kept = _rung(StratifiedHalving(**kw), scores, {lr: 0.02 for lr in scores})
        lost += 1e-3 not in kept
        assert 1e-2 not in kept  # far behind: always dropped
    assert lost / 200 < 0.05
