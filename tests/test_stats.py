"""Bootstrap intervals and paired tests (search.stats) on cases with a known answer; the vectorised AUC."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from search.stats import (Delta, bootstrap_values, delta_vs_scratch, indistinguishable_from_best, make_resamples,
                          paired_delta, percentile_ci)
from trainables.apps import get_app, list_apps
from trainables.metrics import compute_roc_auc, compute_roc_auc_weighted


def _auc(labels, probs, meta):
    return compute_roc_auc(labels, probs[:, 1])


def _auc_batched(labels, probs, meta, counts):
    return compute_roc_auc_weighted(labels, probs[:, 1], counts)


def _binary_case(n=300, separation=0.0, seed=0):
    """Labels and two-class probabilities whose AUC grows with ``separation``."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], [n - n // 3, n // 3])
    score = rng.normal(size=n) + separation * labels
    p1 = 1 / (1 + np.exp(-score))
    return labels, np.column_stack([1 - p1, p1])


def test_weighted_auc_matches_sklearn_with_sample_weights_and_ties():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200), 1)  # many ties
    weights = rng.integers(0, 4, size=(25, 200))
    got = compute_roc_auc_weighted(labels, scores, weights)
    want = [roc_auc_score(labels, scores, sample_weight=w) for w in weights]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert compute_roc_auc_weighted(labels, scores, np.ones((1, 200)))[0] == pytest.approx(compute_roc_auc(labels, scores))
    only_neg = np.where(labels == 0, 1, 0)[None, :]
    assert np.isnan(compute_roc_auc_weighted(labels, scores, only_neg)[0])


def test_stratified_resamples_keep_class_counts_and_are_deterministic():
    labels = np.repeat([0, 1, 2], [50, 30, 7])
    r = make_resamples(labels, n_boot=200, seed=3)
    counts = r.counts()
    assert counts.shape == (200, labels.size)
    for c in (0, 1, 2):
        assert (counts[:, labels == c].sum(axis=1) == (labels == c).sum()).all()
    assert counts.std(axis=0).mean() > 0.5  # it does resample
    np.testing.assert_array_equal(make_resamples(labels, n_boot=200, seed=3).draws, r.draws)
    assert not np.array_equal(make_resamples(labels, n_boot=200, seed=4).draws, r.draws)
    idx, _ = r.indices(5)
    np.testing.assert_array_equal(np.bincount(idx, minlength=labels.size), counts[5])


def test_group_resampling_keeps_groups_intact_and_copies_distinct():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), rng.integers(1, 6, 40))  # 40 groups of 1..5 samples
    labels = (rng.random(groups.size) < 0.3).astype(int)
    has_pos = np.array([labels[groups == g].max() for g in range(40)])
    r = make_resamples(labels, groups, n_boot=100, seed=1)
    counts = r.counts()
    for g in range(40):  # every sample of a group is drawn exactly as often as its group
        member = groups == g
        assert (counts[:, member] == counts[:, member][:, :1]).all()
    group_counts = r.group_counts()
    assert (group_counts[:, has_pos == 1].sum(axis=1) == has_pos.sum()).all()  # strata: groups with a positive
    assert (group_counts.sum(axis=1) == 40).all()
    b = int(np.argmax((group_counts > 1).any(axis=1)))  # a resample that drew some group twice
    idx, copy = r.indices(b)
    assert len(np.unique(copy)) == 40  # 40 draws -> 40 distinct group copies
    for k in np.unique(copy):  # each copy is exactly one whole original group
        members = idx[copy == k]
        assert len(np.unique(groups[members])) == 1
        assert set(members) == set(np.flatnonzero(groups == groups[members[0]]))


def test_loop_with_groups_gives_each_drawn_copy_its_own_group_id():
    groups = np.repeat(np.arange(12), 3)
    labels = np.tile([0, 1, 0], 12)
    r = make_resamples(labels, groups, n_boot=50, seed=0)
    n_groups = bootstrap_values(lambda y, p, m: float(np.unique(m["group"]).size), labels,
                                np.zeros((labels.size, 2)), {"group": groups}, r)
    assert (n_groups == 12).all()


def test_batched_and_per_resample_bootstrap_agree():
    labels, probs = _binary_case(separation=1.0)
    r = make_resamples(labels, n_boot=60, seed=2)
    loop = bootstrap_values(_auc, labels, probs, {}, r)
    fast = bootstrap_values(_auc, labels, probs, {}, r, batched=_auc_batched)
    np.testing.assert_allclose(loop, fast, atol=1e-12)


def test_percentile_interval_of_a_proportion_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    correct = (rng.random(2000) < 0.8).astype(int)
    labels = np.zeros_like(correct)  # one stratum: plain bootstrap of the mean
    r = make_resamples(labels, n_boot=1000, seed=0)
    values = bootstrap_values(lambda y, p, m: float(p[:, 0].mean()), labels, correct[:, None].astype(float), {}, r)
    low, high = percentile_ci(values)
    p, se = correct.mean(), np.sqrt(correct.mean() * (1 - correct.mean()) / correct.size)
    assert low == pytest.approx(p - 1.96 * se, abs=0.004) and high == pytest.approx(p + 1.96 * se, abs=0.004)


def test_identical_predictions_are_indistinguishable_with_zero_difference():
    labels, probs = _binary_case(separation=1.0)
    r = make_resamples(labels, n_boot=1000, seed=0)
    boot = bootstrap_values(_auc, labels, probs, {}, r, batched=_auc_batched)
    point = _auc(labels, probs, {})
    d = paired_delta(point, point, boot, boot.copy())
    assert d == Delta(0.0, 0.0, 0.0) and d.includes_zero and not d.significant()
    assert indistinguishable_from_best(point, point, boot, boot.copy())


def test_well_separated_predictions_differ_significantly_in_the_right_direction():
    labels, good = _binary_case(separation=3.0, seed=1)
    _, weak = _binary_case(separation=0.3, seed=2)
    r = make_resamples(labels, n_boot=1000, seed=0)
    bg, bw = (bootstrap_values(_auc, labels, p, {}, r, batched=_auc_batched) for p in (good, weak))
    pg, pw = _auc(labels, good, {}), _auc(labels, weak, {})
    assert not indistinguishable_from_best(pg, pw, bg, bw)
    d = delta_vs_scratch(pg, pw, bg, bw)  # "scratch" = the weak model
    assert d.significant() and 0 < d.low <= d.estimate <= d.high
    lo, hi = percentile_ci(bg)
    assert lo <= pg <= hi and hi - lo < 0.1


def test_close_predictions_are_not_called_different():
    labels, probs = _binary_case(separation=1.0, seed=0)
    rng = np.random.default_rng(9)
    p1 = np.clip(probs[:, 1] + rng.normal(scale=0.002, size=probs.shape[0]), 0, 1)
    other = np.column_stack([1 - p1, p1])
    r = make_resamples(labels, n_boot=1000, seed=0)
    a, b = (bootstrap_values(_auc, labels, p, {}, r, batched=_auc_batched) for p in (probs, other))
    assert indistinguishable_from_best(_auc(labels, probs, {}), _auc(labels, other, {}), a, b)


def test_undefined_resamples_are_dropped_and_too_many_give_no_interval():
    values = np.array([0.5, 0.6, np.nan, 0.7])
    assert percentile_ci(values) == pytest.approx((0.505, 0.695))
    assert all(np.isnan(percentile_ci(np.array([0.5, np.nan, np.nan, np.nan]))))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="empty"):
        make_resamples(np.array([], dtype=int))
    r = make_resamples(np.array([0, 1, 0, 1]), n_boot=5)
    with pytest.raises(ValueError, match="resamples were drawn for 4"):
        bootstrap_values(_auc, np.array([0, 1]), np.zeros((2, 2)), {}, r)
    with pytest.raises(ValueError, match="same resamples"):
        paired_delta(0.5, 0.5, np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("name", list_apps())
def test_an_apps_batched_metric_reproduces_its_metric(name):
    app = get_app(name)
    if app.batched_metric is None:
        pytest.skip(f"{name} has no batched metric (bootstrapped one resample at a time)")
    data = app.build_data(app.sizes.smoke, 64, 0)
    labels = data.test_y.numpy()
    probs = np.random.default_rng(0).dirichlet(np.ones(app.num_classes), size=labels.size)
    meta = {k: v.numpy() for k, v in data.test_meta.items()}
    if app.summarize is not None:  # whole-image apps are bootstrapped on their per-image summary
        masks = data.targets("test").numpy()
        dense = np.moveaxis(np.random.default_rng(0).dirichlet(np.ones(app.num_classes), size=masks.shape), -1, 1)
        probs, meta = app.summarize(masks, dense, meta)
    r = make_resamples(labels, meta.get("group"), n_boot=20, seed=0)
    fast = bootstrap_values(app.compute_metric, labels, probs, meta, r, batched=app.batched_metric)
    loop = bootstrap_values(app.compute_metric, labels, probs, meta, r)
    np.testing.assert_allclose(fast, loop, atol=1e-9)


def test_groups_of_duplicated_samples_give_the_interval_of_the_unique_samples():
    """Known answer: a group = 4 copies of one sample. Resampling groups is resampling the unique samples,
    so the interval equals the unique samples' one; treating the copies as independent would narrow it."""
    labels, probs = _binary_case(n=150, separation=1.0, seed=4)
    rep_labels, rep_probs = np.repeat(labels, 4), np.repeat(probs, 4, axis=0)
    groups = np.repeat(np.arange(labels.size), 4)
    unique = bootstrap_values(_auc, labels, probs, {}, make_resamples(labels, n_boot=500, seed=7), _auc_batched)
    grouped = bootstrap_values(_auc, rep_labels, rep_probs, {"group": groups},
                               make_resamples(rep_labels, groups, n_boot=500, seed=7), _auc_batched)
    np.testing.assert_allclose(grouped, unique, atol=1e-12)
    naive = bootstrap_values(_auc, rep_labels, rep_probs, {}, make_resamples(rep_labels, n_boot=500, seed=7),
                             _auc_batched)
    width = lambda v: np.subtract(*percentile_ci(v)[::-1])  # noqa: E731
    assert width(naive) < 0.7 * width(grouped)
