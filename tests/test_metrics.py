"""The apps' metrics: against scikit-learn / MONAI on random inputs, and FROC / boundary error by hand."""
import numpy as np
import pandas as pd
import pytest
import torch
from monai.metrics import DiceMetric
from sklearn.metrics import roc_auc_score

from tunedepth.errors import MetricError
from tunedepth.metrics import (
    aggregate_mean,
    boundary_rows,
    classification_metrics,
    compute_boundary_error,
    compute_dice,
    compute_froc,
    compute_multiclass_auc,
    compute_sensitivity_at_fpr,
    detection_metrics,
    froc_partial_area,
    froc_sensitivity,
    interface_metrics,
)


def _brute_sensitivity(labels, scores, max_fpr):
    """Independent reference: try every threshold (plus +inf) and keep the best TPR with FPR <= max_fpr."""
    pos, neg = labels == 1, labels == 0
    best = 0.0
    for t in np.r_[np.inf, np.unique(scores)]:
        marked = scores >= t
        fpr = (marked & neg).sum() / neg.sum()
        if fpr <= max_fpr + 1e-12:
            best = max(best, (marked & pos).sum() / pos.sum())
    return best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fpr", [0.10, 0.15, 0.20])
def test_sensitivity_at_fpr_matches_a_threshold_sweep(seed, fpr):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 150)
    s = np.round(rng.normal(size=150) + y, 1)  # rounding makes ties
    assert compute_sensitivity_at_fpr(y, s, fpr) == pytest.approx(_brute_sensitivity(y, s, fpr))


def test_sensitivity_at_fpr_by_hand():
    # negatives 0.9, 0.5, 0.4, 0.1 (4), positives 0.95, 0.8, 0.3 (3)
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    s = np.array([0.9, 0.5, 0.4, 0.1, 0.95, 0.8, 0.3])
    assert compute_sensitivity_at_fpr(y, s, 0.0) == pytest.approx(1 / 3)  # only 0.95 above every negative
    assert compute_sensitivity_at_fpr(y, s, 0.25) == pytest.approx(2 / 3)  # threshold 0.8: 1 FP of 4
    assert compute_sensitivity_at_fpr(y, s, 0.74) == pytest.approx(2 / 3)
    assert compute_sensitivity_at_fpr(y, s, 0.75) == pytest.approx(1.0)  # threshold 0.3: 3 FP of 4


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_auc_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 200)
    p = rng.dirichlet(np.ones(4), 200) + np.eye(4)[y] * rng.random((200, 1))
    p /= p.sum(1, keepdims=True)
    assert compute_multiclass_auc(y, p) == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    two = np.c_[1 - p[:, 0], p[:, 0]]
    assert compute_multiclass_auc(y == 0, two) == pytest.approx(roc_auc_score(y == 0, p[:, 0]))


def test_aggregate_mean_matches_pandas():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, 300)
    v = rng.random((300, 3))
    lab = (ids % 2).astype(int)
    uniq, means, labels = aggregate_mean(ids, v, lab)
    ref = pd.DataFrame(v).groupby(ids).mean()
    assert np.array_equal(uniq, ref.index.to_numpy())
    assert np.allclose(means, ref.to_numpy())
    assert np.array_equal(labels, uniq % 2)


def test_frame_score_is_the_mean_over_its_crops():
    rng = np.random.default_rng(1)
    frames = np.repeat(np.arange(60), 3)
    y = np.repeat(rng.integers(0, 2, 60), 3)
    p1 = rng.random(180)
    probs = np.c_[1 - p1, p1]
    out = classification_metrics(y, probs, {"group": frames})
    frame_score = p1.reshape(60, 3).mean(1)
    assert out["auc"] == pytest.approx(roc_auc_score(y[::3], frame_score))
    assert out["sens@fpr0.10"] == pytest.approx(_brute_sensitivity(y[::3], frame_score, 0.10))
    assert out["n_units"] == 60


def _brute_froc(scores, labels, units, lesions, n_units):
    """Independent reference: for each threshold count FPs and lesions with any marked positive."""
    pts = [(0.0, 0.0)]
    lesion_ids = {les if les >= 0 else ("own", i) for i, les in enumerate(lesions) if labels[i]}
    for t in sorted(set(scores), reverse=True):
        marked = scores >= t
        fp = int((marked & ~labels).sum())
        found = {les if les >= 0 else ("own", i) for i, les in enumerate(lesions) if labels[i] and marked[i]}
        pts.append((fp / n_units, len(found) / len(lesion_ids)))
    return np.array(pts)


def test_froc_by_hand():
    # 2 frames. Frame A: lesion 7 seen by two candidates (0.9, 0.4), negatives 0.8, 0.3. Frame B: lesion 8 (0.6),
    # negative 0.7.
    scores = np.array([0.9, 0.4, 0.8, 0.3, 0.6, 0.7])
    labels = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    units = np.array([0, 0, 0, 0, 1, 1])
    lesions = np.array([7, 7, -1, -1, 8, -1])
    fps, sens = compute_froc(scores, labels, units, lesions)
    # thresholds 0.9, 0.8, 0.7, 0.6, 0.4, 0.3
    assert np.allclose(fps, [0, 0, 0.5, 1.0, 1.0, 1.0, 1.5])
    assert np.allclose(sens, [0, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0])
    assert np.allclose(froc_sensitivity(fps, sens, [0.25, 0.5, 1.0, 2.0]), [0.5, 0.5, 1.0, 1.0])
    # step curve on [0, 1]: 0.5 up to fp 1.0, where it reaches 1.0 -> area 0.5; on [0, 1.5]: 0.5 + 0.5 = 1.0 -> 2/3
    assert froc_partial_area(fps, sens, 1.0) == pytest.approx(0.5)
    assert froc_partial_area(fps, sens, 1.5) == pytest.approx(1.0 / 1.5)
    # a lesion the candidate generator missed counts against sensitivity
    _, sens3 = compute_froc(scores, labels, units, lesions, n_lesions=3)
    assert sens3.max() == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(4))
def test_froc_matches_a_threshold_sweep(seed):
    rng = np.random.default_rng(seed)
    n = 120
    labels = rng.random(n) < 0.3
    scores = np.round(rng.random(n) + 0.5 * labels, 2)
    units = rng.integers(0, 25, n)
    lesions = np.where(labels, rng.integers(-1, 20, n), -1)
    fps, sens = compute_froc(scores, labels, units, lesions, n_units=25)
    ref = _brute_froc(scores, labels, units, lesions, 25)
    assert np.allclose(np.c_[fps, sens], ref)
    # normalised partial area = mean of the step curve on a fine grid
    grid = np.linspace(0, 2, 200001)[:-1]
    step = np.array([sens[fps <= f + 1e-12].max() for f in grid[::1000]])
    assert froc_partial_area(fps, sens, 2.0) == pytest.approx(step.mean(), abs=0.01)


def test_detection_metrics_average_a_candidates_patches():
    rng = np.random.default_rng(3)
    cand = np.repeat(np.arange(40), 6)
    frames = np.repeat(rng.integers(0, 10, 40), 6)
    y = np.repeat(rng.random(40) < 0.3, 6).astype(int)
    y[:6] = 1
    p1 = rng.random(240)
    out = detection_metrics(y, np.c_[1 - p1, p1], {"candidate": cand, "group": frames}, points=(0.5, 1.0, 2.0))
    fps, sens = compute_froc(p1.reshape(40, 6).mean(1), y[::6] == 1, frames[::6], n_units=np.unique(frames).size)
    assert out["froc_pauc"] == pytest.approx(froc_partial_area(fps, sens, 2.0))
    assert out["sens@1fp"] == pytest.approx(froc_sensitivity(fps, sens, [1.0])[0])


def test_boundary_rows_and_error_by_hand():
    # image 0, columns 3 and 5, rows 10..12; highest score in column 3 at row 11, column 5 a tie at 10 and 12
    units = np.array([0, 0, 0, 0, 0, 0])
    cols = np.array([3, 3, 3, 5, 5, 5])
    rows = np.array([10, 11, 12, 10, 11, 12])
    s = np.array([0.1, 0.9, 0.2, 0.7, 0.1, 0.7])
    u, c, r = boundary_rows(s, units, cols, rows)
    assert c.tolist() == [3, 5] and r.tolist() == [11, 10]  # ties go to the topmost row
    # true rows 10.5 and 12, spacing 60 um: errors 30 and 120 um -> mean 75
    assert compute_boundary_error(r, [10.5, 12], 60.0) == pytest.approx(75.0)
    # per-image means first: image A errors (10, 30) -> 20, image B (100) -> 100; mean 60 (not 140/3)
    assert compute_boundary_error([1, 3, 10], [0, 0, 0], [10, 10, 10], units=[0, 0, 1]) == pytest.approx(60.0)


@pytest.mark.parametrize("seed", range(3))
def test_dice_matches_numpy_and_monai_dicemetric(seed):
    rng = np.random.default_rng(seed)
    pred = rng.random((4, 9, 7)) < 0.4
    true = rng.random((4, 9, 7)) < 0.5
    ref = np.mean([2 * (p & t).sum() / (p.sum() + t.sum()) for p, t in zip(pred, true)])
    assert compute_dice(pred, true) == pytest.approx(ref)
    metric = DiceMetric(include_background=True, reduction="mean")
    metric(torch.as_tensor(pred[:, None]).float(), torch.as_tensor(true[:, None]).float())
    assert compute_dice(pred, true) == pytest.approx(float(metric.aggregate()))


def test_interface_metrics_by_hand():
    # one image, spacing 50 um, columns 0 and 1, ROI rows 0..5; truth LI 1.0 / 2.0, MA 4.0 / 4.4
    rows = np.tile(np.arange(6), 2)
    cols = np.repeat([0, 1], 6)
    probs = np.full((12, 3), [0.8, 0.1, 0.1])
    probs[[1, 6 + 3], 1] = 0.9  # predicted LI: row 1 in column 0, row 3 in column 1
    probs[[4, 6 + 4], 2] = 0.9  # predicted MA: row 4 in both
    meta = {"group": np.zeros(12, int), "column": cols, "row": rows, "li_true": np.repeat([1.0, 2.0], 6),
            "ma_true": np.repeat([4.0, 4.4], 6), "spacing_um": np.full(12, 50.0)}
    out = interface_metrics(np.zeros(12, int), probs, meta)
    assert out["li_mae_um"] == pytest.approx((0 + 1) / 2 * 50)
    assert out["ma_mae_um"] == pytest.approx((0 + 0.4) / 2 * 50)
    assert out["mae_um"] == pytest.approx((25 + 10) / 2)
    # region: true rows 1-4 (col 0) and 2-4 (col 1) = 7 px; predicted 1-4 and 3-4 = 6 px; overlap 6 -> 12/13
    assert out["dice"] == pytest.approx(12 / 13)


def test_metrics_refuse_impossible_inputs():
    with pytest.raises(MetricError, match="both classes"):
        compute_sensitivity_at_fpr(np.ones(5), np.random.random(5), 0.1)
    with pytest.raises(MetricError, match="at least one lesion"):
        compute_froc(np.random.random(5), np.zeros(5, bool), np.zeros(5))
    with pytest.raises(MetricError, match="NaN"):
        compute_froc(np.array([np.nan, 1.0]), np.array([True, False]), np.zeros(2))


def test_missed_lesions_count_in_froc_on_a_hand_made_case():
    """Two frames: frame 0 has a lesion candidate (0.9) and a negative (0.8); frame 1 a negative (0.7) and a
    lesion the candidate generator missed. Sensitivity tops out at 1/2, not 1; FP per frame as before."""
    labels = np.array([1, 1, 0, 0])  # two patches for the lesion candidate
    p1 = np.array([0.9, 0.9, 0.8, 0.7])
    meta = {"candidate": np.array([0, 0, 1, 2]), "group": np.array([0, 0, 0, 1]), "lesion": np.array([0, 0, -1, -1])}
    counted = detection_metrics(labels, np.c_[1 - p1, p1], meta, points=(0.5, 1.0))
    assert counted["sens@0.5fp"] == 1.0 and counted["froc_pauc"] == 1.0
    meta["missed_lesions"] = np.array([0, 0, 0, 1])  # per patch: the missed lesions of its frame
    missed = detection_metrics(labels, np.c_[1 - p1, p1], meta, points=(0.5, 1.0))
    assert missed["sens@0.5fp"] == 0.5 and missed["sens@1fp"] == 0.5 and missed["froc_pauc"] == 0.5
    fps, sens = compute_froc([0.9, 0.8], [True, False], [0, 0], missed=3)
    np.testing.assert_allclose(sens, [0, 0.25, 0.25])
