"""What every metric family shares: the finite-score check and per-unit averaging of sample scores."""
from __future__ import annotations

import numpy as np

from tunedepth.errors import MetricError


def check_finite(scores: np.ndarray) -> None:
    if not np.all(np.isfinite(scores)):
        raise MetricError("scores contain NaN or inf: the model diverged; lower the learning rate")


def aggregate_mean(ids, values, labels=None):
    """Mean of ``values`` (N,) or (N, C) per distinct ``ids``; returns ``(ids, means, labels)``.

    A unit's label is the largest label of its samples (a frame's crops all carry the frame's label).
    """
    ids = np.asarray(ids).ravel()
    values = np.asarray(values, dtype=np.float64)
    uniq, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    flat = values.reshape(values.shape[0], -1)
    sums = np.zeros((uniq.size, flat.shape[1]))
    np.add.at(sums, inverse, flat)
    means = (sums / counts[:, None]).reshape((uniq.size,) + values.shape[1:])
    if labels is None:
        return uniq, means, None
    lab = np.full(uniq.size, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(lab, inverse, np.asarray(labels, dtype=np.int64).ravel())
    return uniq, means, lab
