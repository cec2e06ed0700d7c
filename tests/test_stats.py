"""Bootstrap intervals and paired tests (tunedepth.analysis.resampling, .verdicts) on cases with a known answer."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tunedepth.analysis.resampling import (
    Delta,
    bootstrap_values,
    combine_seeds,
    make_resamples,
    p_value,
    paired_delta,
    percentile_ci,
    relabel,
    resampling_units,
)
from tunedepth.analysis.verdicts import holm, trend_test
from tunedepth.apps import get_app, list_apps
from tunedepth.metrics import compute_roc_auc, compute_roc_auc_weighted


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
    assert compute_roc_auc_weighted(labels, scores, np.ones((1, 200)))[0] == pytest.approx(
        compute_roc_auc(labels, scores)
    )
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
    stratum = np.array([labels[groups == g][0] if np.ptp(labels[groups == g]) == 0 else -1 for g in range(40)])
    r = make_resamples(labels, groups, n_boot=100, seed=1)
    counts = r.counts()
    for g in range(40):  # every sample of a group is drawn exactly as often as its group
        member = groups == g
        assert (counts[:, member] == counts[:, member][:, :1]).all()
    group_counts = r.group_counts()
    for s in (-1, 0, 1):  # strata: groups of one label (0 or 1), and the mixed ones (-1)
        assert (group_counts[:, stratum == s].sum(axis=1) == (stratum == s).sum()).all()
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
    assert p_value(boot - boot) == 1.0


def test_well_separated_predictions_differ_significantly_in_the_right_direction():
    labels, good = _binary_case(separation=3.0, seed=1)
    _, weak = _binary_case(separation=0.3, seed=2)
    r = make_resamples(labels, n_boot=1000, seed=0)
    bg, bw = (bootstrap_values(_auc, labels, p, {}, r, batched=_auc_batched) for p in (good, weak))
    pg, pw = _auc(labels, good, {}), _auc(labels, weak, {})
    assert p_value(bg - bw) < 0.01
    d = paired_delta(pg, pw, bg, bw)
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
    assert not paired_delta(_auc(labels, probs, {}), _auc(labels, other, {}), a, b).significant()
    assert p_value(a - b) > 0.05


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
    r = make_resamples(labels, resampling_units(meta), n_boot=20, seed=0)
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


def _detection_case(n_videos=30, frames=4, seed=0):
    """Candidates on frames of videos: 2 patches per candidate, one lesion on half the frames."""
    rng = np.random.default_rng(seed)
    labels, p1, cand, frame, video, lesion = [], [], [], [], [], []
    c = 0
    for v in range(n_videos):
        for f in range(frames):
            fid = v * frames + f
            kinds = [1] * int(rng.random() < 0.5) + [0] * int(rng.integers(1, 5))
            for k in kinds:
                score = rng.normal(1.2 * k)
                for _ in range(2):
                    labels.append(k)
                    p1.append(1 / (1 + np.exp(-(score + 0.3 * rng.normal()))))
                    cand.append(c)
                    frame.append(fid)
                    video.append(v)
                    lesion.append(c if k else -1)
                c += 1
    p1 = np.array(p1)
    meta = {"candidate": np.array(cand), "group": np.array(frame), "split_group": np.array(video),
            "lesion": np.array(lesion)}
    return np.array(labels), np.column_stack([1 - p1, p1]), meta


def test_relabel_gives_every_copy_its_own_ids_and_keeps_negative_lesions():
    copy = np.array([0, 0, 1, 1])
    np.testing.assert_array_equal(relabel("lesion", np.array([5, -1, 5, -1]), copy)[[1, 3]], [-1, -1])
    fresh = relabel("candidate", np.array([7, 8, 7, 8]), copy)
    assert len(np.unique(fresh)) == 4
    np.testing.assert_array_equal(relabel("scale", np.array([1, 2, 1, 2]), copy), [1, 2, 1, 2])


@pytest.mark.parametrize("name", ["polyp-detection", "colonoscopy-frames"])
def test_bootstrap_by_split_unit_is_unbiased_on_a_known_case(name):
    """The bootstrap mean matches the point estimate within one bootstrap standard error (detection: FROC pAUC
    with copies relabelled; classification: frame AUC), resampling whole videos."""
    app = get_app(name)
    labels, probs, meta = _detection_case()
    if name == "colonoscopy-frames":  # frames of videos, 3 crops each, frame label = any lesion
        frame_label = np.zeros(meta["group"].max() + 1, int)
        np.maximum.at(frame_label, meta["group"], labels)
        meta = {"group": meta["group"], "split_group": meta["split_group"]}
        labels = frame_label[meta["group"]]
    units = resampling_units(meta)
    np.testing.assert_array_equal(units, meta["split_group"])
    r = make_resamples(labels, units, n_boot=300, seed=0)
    point = app.compute_metric(labels, probs, meta)
    boot = bootstrap_values(app.compute_metric, labels, probs, meta, r, app.batched_metric)
    se = np.nanstd(boot)
    assert abs(np.nanmean(boot) - point) < se, (np.nanmean(boot), point, se)
    if name == "polyp-detection":  # the old scheme (frames resampled, candidate ids shared by copies) is biased
        old_r = make_resamples(labels, meta["group"], n_boot=300, seed=0)
        old = []
        for b in range(old_r.n_boot):
            idx, copy = old_r.indices(b)
            sub = {k: v[idx] for k, v in meta.items()}
            sub["group"] = copy
            old.append(app.compute_metric(labels[idx], probs[idx], sub))
        assert np.mean(old) - point > se


def test_resampling_whole_videos_widens_the_interval_when_frames_of_a_video_agree():
    rng = np.random.default_rng(2)
    video = np.repeat(np.arange(40), 5)
    labels = np.repeat(rng.integers(0, 2, 40), 5)
    score = np.repeat(rng.normal(size=40), 5) + 0.8 * labels + 0.2 * rng.normal(size=200)
    probs = np.column_stack([1 - 1 / (1 + np.exp(-score)), 1 / (1 + np.exp(-score))])
    width = lambda v: np.subtract(*percentile_ci(v)[::-1])  # noqa: E731
    by_frame = bootstrap_values(_auc, labels, probs, {}, make_resamples(labels, n_boot=400), _auc_batched)
    by_video = bootstrap_values(_auc, labels, probs, {}, make_resamples(labels, video, n_boot=400), _auc_batched)
    assert width(by_video) > 1.5 * width(by_frame)


def test_seed_resampling_adds_seed_to_seed_spread():
    rng = np.random.default_rng(0)
    test_noise = rng.normal(scale=0.01, size=500)
    same = np.vstack([0.8 + test_noise] * 3)
    spread = np.vstack([0.75 + test_noise, 0.80 + test_noise, 0.85 + test_noise])
    np.testing.assert_allclose(combine_seeds(same[:1]), same[0])
    np.testing.assert_allclose(combine_seeds(same), same[0])
    assert np.std(combine_seeds(spread)) > 2 * np.std(test_noise)


def test_holm_and_the_trend_permutation_test():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan]), [0.03, 0.06, 0.06, np.nan])
    rho, p = trend_test([1, 2, 3, 5, 8, 9])
    assert rho == pytest.approx(1.0) and p == pytest.approx(2 / 720)
    assert trend_test([5, 5, 5, 5])[1] == 1.0
    assert trend_test([1, 9, 2])[1] > 0.05  # three budgets can never back a trend at 5%
