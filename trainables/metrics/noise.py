"""How far a validation score is from noise: its standard error and its chance level, from the split alone.

``compute_noise(compute, labels, probs, meta)`` returns ``(se, chance)`` for any ``compute_*`` metric:

- ``se``: the standard deviation of the metric over random halves of the split's units (``split_group``,
  ``group``, else samples), drawn without replacement. For a mean-like statistic the variance of a half-sample
  mean is sigma^2/n x (n - n/2)/(n - 1), about sigma^2/n: the full split's squared standard error. Halves are
  subsets, so every metric takes them as it takes any smaller split (no duplicated units to confuse
  per-unit grouping, as a bootstrap would).
- ``chance``: the mean metric with the predictions shuffled across samples (the same predictions, no link to
  the labels), the score a model that learned nothing about the task reaches on this split.

The scheduler (``search.promotion``) drops a learning rate only when it is behind the best by more than the
noise, and decides nothing while every candidate is still within noise of chance.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

Compute = Callable[[np.ndarray, np.ndarray, dict], float]
HALVES, SHUFFLES = 24, 6


def _units(meta: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    for key in ("split_group", "group"):
        if key in meta and np.asarray(meta[key]).shape[:1] == (n,):
            return np.unique(np.asarray(meta[key]).ravel(), return_inverse=True)[1]
    return np.arange(n)


def _take(labels, probs, meta, idx: np.ndarray):
    n = labels.shape[0]
    sub = {k: (np.asarray(v)[idx] if np.ndim(v) and np.asarray(v).shape[0] == n else v) for k, v in meta.items()}
    return labels[idx], probs[idx], sub


def _safe(compute: Compute, labels, probs, meta) -> float:
    try:
        value = float(compute(labels, probs, meta))
    except (ValueError, ZeroDivisionError, IndexError, FloatingPointError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def compute_noise(compute: Compute, labels: np.ndarray, probs: np.ndarray, meta: Mapping[str, np.ndarray] | None,
                  seed: int = 0, halves: int = HALVES, shuffles: int = SHUFFLES) -> tuple[float, float]:
    """(standard error of ``compute`` on this split, its chance level); NaN where it cannot be told."""
    labels, probs, meta = np.asarray(labels), np.asarray(probs), dict(meta or {})
    n = labels.shape[0]
    if n < 4:
        return math.nan, math.nan
    units = _units(meta, n)
    n_units = int(units.max()) + 1
    rng = np.random.default_rng(seed)
    half_values = []
    for _ in range(halves):
        chosen = np.zeros(n_units, bool)
        chosen[rng.permutation(n_units)[: n_units // 2]] = True
        half_values.append(_safe(compute, *_take(labels, probs, meta, np.flatnonzero(chosen[units]))))
    ok = np.asarray([v for v in half_values if math.isfinite(v)])
    se = float(ok.std(ddof=1)) if ok.size >= 4 else math.nan
    chance_values = [_safe(compute, labels, probs[rng.permutation(n)], meta) for _ in range(shuffles)]
    ch = [v for v in chance_values if math.isfinite(v)]
    return se, (float(np.mean(ch)) if ch else math.nan)
