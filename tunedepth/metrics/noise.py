"""How far a validation score is from noise: its standard error and its chance level, from the split alone.

For any ``compute_*`` metric, from ``(compute, labels, probs, meta)``:

- ``se`` (``halves_se``): the standard deviation of the metric over random halves of the split's units (``split_group``,
  ``group``, else samples), drawn without replacement. For a mean-like statistic the variance of a half-sample
  mean is sigma^2/n x (n - n/2)/(n - 1), about sigma^2/n: the full split's squared standard error. Halves are
  subsets, so every metric takes them as it takes any smaller split (no duplicated units to confuse
  per-unit grouping, as a bootstrap would).
- ``chance`` (``compute_chance``): the mean metric with the predictions shuffled across samples (the same predictions,
no link to
  the labels), the score a model that learned nothing about the task reaches on this split.

- ``halves``: the metric on each of those halves (``compute_halves``). The halves are drawn from a fixed seed,
  so every trial of a run scores the *same* halves of the same validation split: two trials' half values pair
  up, and the spread of their differences is the standard error of the *difference* of their scores, net of
  what the two share (the same hard and easy validation units). For two models that agree on most units that
  error is much smaller than the unpaired ``hypot(se_a, se_b)``.

The scheduler (``tunedepth.hpo.promotion``) drops a learning rate only when it is behind the best by more than the
noise of the difference (paired on the halves where both trials report them), and decides nothing while every
candidate is still within noise of chance.
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


def compute_halves(compute: Compute, labels: np.ndarray, probs: np.ndarray, meta: Mapping[str, np.ndarray] | None,
                   seed: int = 0, halves: int = HALVES) -> np.ndarray:
    """``compute`` on ``halves`` random halves of the split's units (NaN where a half cannot be scored).

    The halves depend only on ``seed`` and the split's units, never on the predictions: the same seed gives
    every model the same halves, so the values of two models pair up half by half."""
    labels, probs, meta = np.asarray(labels), np.asarray(probs), dict(meta or {})
    n = labels.shape[0]
    if n < 4:
        return np.full(halves, math.nan)
    units = _units(meta, n)
    n_units = int(units.max()) + 1
    rng = np.random.default_rng(seed)
    out = np.empty(halves)
    for i in range(halves):
        chosen = np.zeros(n_units, bool)
        chosen[rng.permutation(n_units)[: n_units // 2]] = True
        out[i] = _safe(compute, *_take(labels, probs, meta, np.flatnonzero(chosen[units])))
    return out


def halves_se(values) -> float:
    """The standard error a vector of half values implies (NaN with fewer than 4 scored halves)."""
    ok = np.asarray([v for v in np.asarray(values, float).ravel() if math.isfinite(v)])
    return float(ok.std(ddof=1)) if ok.size >= 4 else math.nan


def paired_se(a, b) -> float:
    """Standard error of score(a) - score(b) from two trials' values on the same halves (``compute_halves``
    with one seed); NaN unless both have at least 4 halves scored in common."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.shape != b.shape:
        return math.nan
    return halves_se(a - b)


def compute_chance(compute: Compute, labels: np.ndarray, probs: np.ndarray, meta: Mapping[str, np.ndarray] | None,
                   seed: int = 0, shuffles: int = SHUFFLES) -> float:
    """The mean metric with the predictions shuffled across samples (NaN where it cannot be told)."""
    labels, probs, meta = np.asarray(labels), np.asarray(probs), dict(meta or {})
    n = labels.shape[0]
    if n < 4:
        return math.nan
    rng = np.random.default_rng(seed)
    values = [_safe(compute, labels, probs[rng.permutation(n)], meta) for _ in range(shuffles)]
    ok = [v for v in values if math.isfinite(v)]
    return float(np.mean(ok)) if ok else math.nan

