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
