"""Classification metrics: ROC AUC (vectorised, bootstrap weights), one-vs-rest AUC, sensitivity at a false-
positive rate, per-unit scores. ROC curves come from scikit-learn; the vectorised AUC equals its
``roc_auc_score`` (tested)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from tunedepth.errors import MetricError
from tunedepth.metrics.common import aggregate_mean
from tunedepth.metrics.common import check_finite as _finite


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
    _finite(scores)
    return float(compute_roc_auc_weighted(labels == classes.max(), scores, np.ones((1, labels.size)))[0])


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


def compute_multiclass_auc(labels, probs) -> float:
    """ROC AUC: of ``probs[:, 1]`` for two classes; macro one-vs-rest over the classes present otherwise."""
    labels = np.asarray(labels).ravel()
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[1] == 2:
        return compute_roc_auc(labels, probs[:, 1])
    _finite(probs)
    present = np.unique(labels)
    if present.size < 2:
        raise MetricError(f"ROC AUC needs two classes but the evaluated split has only {present.tolist()}")
    aucs = [roc_auc_score(labels == c, probs[:, c]) for c in present]
    return float(np.mean(aucs))


def compute_sensitivity_at_fpr(labels, scores, max_fpr: float) -> float:
    """Largest true-positive rate of ``scores`` at any threshold whose false-positive rate is <= ``max_fpr``."""
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if np.unique(labels).size < 2:
        raise MetricError("sensitivity at a false-positive rate needs both classes in the evaluated split")
    _finite(scores)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def classification_metrics(labels, probs, meta, fprs=(0.10, 0.15, 0.20)) -> dict[str, float]:
    """Per-unit (frame) scores = mean over the unit's crops; ROC AUC and sensitivity at each FPR in ``fprs``.

    Two classes: the positive class is 1. More classes: macro one-vs-rest AUC and macro sensitivities.
    """
    probs = np.asarray(probs, dtype=np.float64)
    units = meta["group"] if meta is not None and "group" in meta else np.arange(len(labels))
    _, unit_probs, unit_labels = aggregate_mean(units, probs, labels)
    out = {"auc": compute_multiclass_auc(unit_labels, unit_probs)}
    classes = [1] if probs.shape[1] == 2 else list(np.unique(unit_labels))
    for f in fprs:
        sens = [compute_sensitivity_at_fpr(unit_labels == c, unit_probs[:, c], f) for c in classes]
        out[f"sens@fpr{f:.2f}"] = float(np.mean(sens))
    out["n_units"] = float(unit_labels.size)
    return out


def _predicted(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).ravel().astype(np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != labels.size:
        raise MetricError(f"labels ({labels.size}) and class probabilities {probs.shape} do not match")
    _finite(probs)
    return labels, probs.argmax(axis=1)


def compute_balanced_accuracy(labels, probs) -> float:
    """Mean over the classes present in ``labels`` of the fraction predicted right (argmax of ``probs``)."""
    labels, pred = _predicted(labels, probs)
    present = np.unique(labels)
    if present.size < 2:
        raise MetricError(f"balanced accuracy needs two classes but the evaluated split has only {present.tolist()}")
    return float(np.mean([(pred[labels == c] == c).mean() for c in present]))


def compute_macro_f1(labels, probs) -> float:
    """Unweighted mean over the classes of F1 = 2 TP / (2 TP + FP + FN) of the argmax prediction.

    The classes are those in ``labels`` or predicted (scikit-learn's ``f1_score(average="macro")``); a class
    with no true, no predicted sample does not count.
    """
    labels, pred = _predicted(labels, probs)
    if np.unique(labels).size < 2:
        raise MetricError(f"macro-F1 needs two classes but the evaluated split has only {np.unique(labels).tolist()}")
    scores = []
    for c in np.union1d(labels, pred):
        tp = np.sum((pred == c) & (labels == c))
        denom = 2 * tp + np.sum((pred == c) & (labels != c)) + np.sum((pred != c) & (labels == c))
        scores.append(2 * tp / denom)
    return float(np.mean(scores))


def label_metrics(labels, probs, meta) -> dict[str, float]:
    """The generic classification app's metrics on per-unit scores (mean of the unit's samples): ROC AUC (two
    classes: of class 1; more: macro one-vs-rest), balanced accuracy and macro-F1 of the argmax."""
    probs = np.asarray(probs, dtype=np.float64)
    units = meta["group"] if meta is not None and "group" in meta else np.arange(len(labels))
    _, unit_probs, unit_labels = aggregate_mean(units, probs, labels)
    return {"auc": compute_multiclass_auc(unit_labels, unit_probs),
            "balanced-accuracy": compute_balanced_accuracy(unit_labels, unit_probs),
            "macro-f1": compute_macro_f1(unit_labels, unit_probs), "n_units": float(unit_labels.size)}
