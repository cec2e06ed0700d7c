"""Metrics as pure ``compute_*`` functions of labels and scores; tested against scikit-learn."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


class MetricError(ValueError):
    """The data cannot support the metric (e.g. one class only); the message names the fix."""


def compute_roc_auc(labels, scores) -> float:
    """Area under the ROC curve of ``scores`` for the positive class ``labels == 1``."""
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise MetricError(f"labels and scores differ in length ({labels.size} vs {scores.size})")
    classes = np.unique(labels)
    if classes.size < 2:
        raise MetricError(
            f"ROC AUC needs both classes but the evaluated split has only class {classes.tolist()}; "
            "enlarge the split or check the labels"
        )
    if not np.all(np.isfinite(scores)):
        raise MetricError("scores contain NaN or inf: the model diverged; lower the learning rate")
    return float(roc_auc_score(labels, scores))


def compute_roc_auc_weighted(labels, scores, weights) -> np.ndarray:
    """ROC AUC of ``scores`` under each row of sample ``weights`` (B, N) at once, e.g. bootstrap counts.

    Row b equals ``roc_auc_score(labels, scores, sample_weight=weights[b])`` (ties count one half); a row
    without weight on both classes gives NaN. Vectorised: one sort, then cumulative sums over score levels.
    """
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if labels.shape != scores.shape or weights.shape[1] != labels.size:
        raise MetricError(f"labels ({labels.size}), scores ({scores.size}) and weights ({weights.shape[1]}) differ")
    if not np.all(np.isfinite(scores)):
        raise MetricError("scores contain NaN or inf: the model diverged; lower the learning rate")
    order = np.argsort(scores, kind="mergesort")
    s, pos = scores[order], labels[order] == 1
    w = weights[:, order]
    levels = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first index of every distinct score
    p = np.add.reduceat(w * pos, levels, axis=1)
    q = np.add.reduceat(w * ~pos, levels, axis=1)
    below = np.cumsum(q, axis=1) - q  # negative weight strictly below each score level
    denom = p.sum(axis=1) * q.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (p * (below + 0.5 * q)).sum(axis=1) / denom, np.nan)
