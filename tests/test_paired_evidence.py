"""Paired evidence: two trials' validation scores compared on the same halves of the split.

Known truth by simulation: a population of validation cases, models whose scores share each case's difficulty
(as two learning rates of one depth do) plus their own noise. The standard error of the difference that the
fixed halves give must match the true spread over fresh validation sets, and the scheduler's evidence rule must
then drop a truly worse candidate that the unpaired rule keeps, while it still rarely drops one that is as good.
"""
import math

import numpy as np
import pytest
from ray.tune.experiment import Trial
from sklearn.metrics import roc_auc_score

from tunedepth.hpo.promotion import StratifiedHalving
from tunedepth.hpo.race_simulation import auc
from tunedepth.metrics.noise import compute_halves, halves_se, paired_se

N_VAL = 210  # the demo's validation crops


def _auc(labels, probs, meta):
    """ROC AUC as the Mann-Whitney statistic (continuous scores, no ties): fast enough for thousands of halves."""
    return auc(np.asarray(labels), np.asarray(probs))


def _case(rng, n=N_VAL):
    """One validation set: labels and each case's difficulty (what every model of the task shares)."""
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    return y, rng.normal(0, 1.0, n)


def _model(rng, y, shared, signal, own=0.35):
    """A model's scores: signal on the label, the case's shared difficulty, and its own noise."""
    return signal * y + shared + rng.normal(0, own, y.shape[0])


def test_the_halves_depend_only_on_the_seed_and_the_split():
    rng = np.random.default_rng(0)
    y, shared = _case(rng)
    a, b = _model(rng, y, shared, 1.2), _model(rng, y, shared, 1.2)
    assert math.isclose(_auc(y, a, {}), roc_auc_score(y, a))
    ha, hb = compute_halves(_auc, y, a, {}, seed=0), compute_halves(_auc, y, b, {}, seed=0)
    # one model against itself: the same halves, so the difference is exactly zero on every half
    assert np.array_equal(compute_halves(_auc, y, a, {}, seed=0), ha)
    assert paired_se(ha, ha) == 0.0
    assert halves_se(ha) > 0 and paired_se(ha, hb) > 0
    assert not np.array_equal(compute_halves(_auc, y, a, {}, seed=1), ha)  # another seed, other halves
    assert math.isnan(paired_se(ha, hb[:10]))  # halves of another split do not pair


def test_the_paired_error_matches_the_true_spread_of_the_difference():
    """Over 300 fresh validation sets the true sd of AUC(a) - AUC(b) is known; the halves of one set estimate it
    (mean within 25%), while the unpaired hypot(se_a, se_b) overstates it more than twofold."""
    rng = np.random.default_rng(1)
    diffs, paired, unpaired = [], [], []
    for _ in range(300):
        y, shared = _case(rng)
        a, b = _model(rng, y, shared, 1.2), _model(rng, y, shared, 1.1)
        diffs.append(_auc(y, a, {}) - _auc(y, b, {}))
        ha, hb = compute_halves(_auc, y, a, {}), compute_halves(_auc, y, b, {})
        paired.append(paired_se(ha, hb))
        unpaired.append(math.hypot(halves_se(ha), halves_se(hb)))
    true_sd = float(np.std(diffs, ddof=1))
    assert 0.75 < np.mean(paired) / true_sd < 1.25, (np.mean(paired), true_sd)
    assert np.mean(unpaired) / true_sd > 2.0, (np.mean(unpaired), true_sd)


def _race(y, scores_by_lr: dict, paired: bool) -> list[float]:
    """One rung of one cell fed the given per-case scores; returns the learning rates that go on."""
    sched = StratifiedHalving(metric="val_metric", mode="max", max_t=8, grace_period=2, reduction_factor=2, z=2.0)
    trials = [Trial("__fake", config={"budget": 1.0, "depth": "head", "lr": lr, "schedule": "paper", "seed": 0},
                    stub=True) for lr in scores_by_lr]
    for tr in trials:
        sched.on_trial_add(None, tr)
    for tr in trials:
        p = scores_by_lr[tr.config["lr"]]
        halves = compute_halves(_auc, y, p, {})
        result = {"val_metric": _auc(y, p, {}), "val_se": halves_se(halves), "val_chance": 0.5}
        if paired:
            result["val_halves"] = [float(v) for v in halves]
        for t in (1, 2):
            sched.on_trial_result(None, tr, {"training_iteration": t, **result})
    resume, _ = sched.decide(search_finished=True)
    assert sched.decisions[-1]["rule"] == "evidence" and sched.decisions[-1]["paired"] == paired
    return sorted(sched._group_of[t][0] for t in resume)


def test_paired_evidence_drops_a_worse_lr_that_unpaired_keeps_and_rarely_drops_an_equal_one():
    rng = np.random.default_rng(2)
    races = 150
    dropped_worse = {True: 0, False: 0}
    dropped_equal = 0
    for _ in range(races):
        y, shared = _case(rng)
        best, worse, equal = (_model(rng, y, shared, s) for s in (1.2, 0.95, 1.2))
        for paired in (True, False):
            dropped_worse[paired] += 3e-3 not in _race(y, {1e-3: best, 3e-3: worse}, paired)
        kept = _race(y, {1e-3: best, 3e-3: equal}, paired=True)
        dropped_equal += len(kept) < 2
    assert dropped_worse[True] / races > 0.8, dropped_worse  # worse by ~0.04 AUC: paired evidence sees it
    assert dropped_worse[False] / races < 0.4, dropped_worse  # unpaired, most races keep it
    assert dropped_equal / races < 0.08, dropped_equal  # two equal lrs: one is dropped about 5% of races (z = 2)


def test_without_halves_the_rule_falls_back_to_unpaired_errors():
    """A trainable (or an earlier run's state) that reports no halves is judged as before: hypot of the two."""
    sched = StratifiedHalving(metric="val_metric", mode="max", max_t=8, grace_period=2, reduction_factor=2, z=2.0)
    noise = {(1e-3,): (0.02, 0.5), (3e-3,): (0.02, 0.5)}
    keep, rule = sched.winners({(1e-3,): 0.90, (3e-3,): 0.86}, noise)
    assert rule == "evidence" and keep == {(1e-3,), (3e-3,)}  # 0.04 < 2 * hypot(0.02, 0.02) = 0.057
    halves = {(1e-3,): np.full(24, 0.90) + np.linspace(-0.02, 0.02, 24),
              (3e-3,): np.full(24, 0.86) + np.linspace(-0.02, 0.02, 24) + np.tile([0.002, -0.002], 12)}
    keep, rule = sched.winners({(1e-3,): 0.90, (3e-3,): 0.86}, noise, halves)
    assert keep == {(1e-3,)}  # paired: the difference is 0.04 on every half, give or take 0.004


@pytest.mark.parametrize("app_name", ["segmentation", "intima-media-seg"])
def test_a_mask_apps_halves_from_its_summary_equal_those_from_the_per_pixel_output(app_name):
    """TrialRun scores a mask app's validation halves from the per-image summary (computed once), not from the
    per-pixel output 24 times: the two must agree, half by half."""
    import torch

    from tunedepth.apps import build_split_data, get_app
    from tunedepth.training.trial import summarised

    app = get_app(app_name)
    data = build_split_data(app, "", 64, seed=0, smoke=True)
    labels = data.targets("val").numpy()
    meta = {k: v.numpy() for k, v in data.val_meta.items()}
    logits = torch.randn((len(labels), app.num_classes, *labels.shape[1:]), generator=torch.Generator().manual_seed(0))
    probs = torch.softmax(2 * logits + 3 * torch.nn.functional.one_hot(torch.as_tensor(labels).clamp(0, None).long(),
                                                                       app.num_classes).permute(0, 3, 1, 2), 1).numpy()
    s_probs, s_meta = summarised(app, labels, probs, meta)
    assert s_probs.ndim == 2  # the summary, one row per image
    full = compute_halves(app.compute_metric, labels, probs, meta, seed=0)
    fast = compute_halves(app.compute_metric, labels, s_probs, s_meta, seed=0)
    assert np.isfinite(full).sum() >= 4 and np.std(full[np.isfinite(full)]) > 0  # halves that can differ
    np.testing.assert_allclose(fast, full, rtol=1e-12, atol=1e-12, equal_nan=True)
