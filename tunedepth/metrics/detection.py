"""Detection metrics: FROC (sensitivity per false positives per unit) and its normalised partial area."""
from __future__ import annotations

import numpy as np

from tunedepth.errors import MetricError
from tunedepth.metrics.common import aggregate_mean
from tunedepth.metrics.common import check_finite as _finite


def compute_froc(scores, labels, units, lesions=None, n_units: int | None = None, n_lesions: int | None = None,
                 missed: int = 0):
    """FROC curve of candidate ``scores``: ``(false positives per unit, sensitivity)`` at every threshold.

    A threshold t marks every candidate with score >= t. False positives are marked negative candidates,
    divided by ``n_units`` (default: the distinct ``units``, i.e. frames or volumes). Sensitivity is the
    fraction of lesions with at least one marked positive candidate; ``lesions`` gives each positive
    candidate's lesion id (-1 or absent: the candidate is its own lesion), ``n_lesions`` the total (default:
    the distinct lesions among the candidates) plus ``missed``, the lesions the candidate generator missed
    (never found at any threshold, but counted in every sensitivity).
    The curve starts at (0, 0) and its points are ordered by decreasing threshold.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    _finite(scores)
    n_units = int(np.unique(np.asarray(units)).size) if n_units is None else int(n_units)
    if n_units < 1:
        raise MetricError("FROC needs at least one frame/volume")
    pos = np.flatnonzero(labels)
    lesion = (
        np.full(scores.size, -1, dtype=np.int64) if lesions is None else np.asarray(lesions, dtype=np.int64).ravel()
    )
    lesion_key = np.where(lesion[pos] >= 0, lesion[pos], -1 - pos)  # own lesion for unlabelled positives
    keys, inverse = np.unique(lesion_key, return_inverse=True)
    best = np.full(keys.size, -np.inf)
    np.maximum.at(best, inverse, scores[pos])
    total = (keys.size if n_lesions is None else int(n_lesions)) + int(missed)
    if total < 1:
        raise MetricError("FROC needs at least one lesion (positive candidate) in the evaluated split")
    thresholds = np.unique(scores)[::-1]
    neg_sorted = np.sort(scores[~labels])
    fp = neg_sorted.size - np.searchsorted(neg_sorted, thresholds, side="left")
    best_sorted = np.sort(best)
    tp = best_sorted.size - np.searchsorted(best_sorted, thresholds, side="left")
    return np.r_[0.0, fp / n_units], np.r_[0.0, tp / total]


def froc_sensitivity(fps, sens, points) -> np.ndarray:
    """Sensitivity at each false-positives-per-unit point: the best sensitivity with fps <= point."""
    fps, sens = np.asarray(fps, dtype=np.float64), np.asarray(sens, dtype=np.float64)
    return np.array([sens[fps <= p + 1e-12].max() for p in points])


def froc_partial_area(fps, sens, max_fp: float) -> float:
    """Area under the FROC step curve from 0 to ``max_fp`` false positives per unit, divided by ``max_fp``.

    The curve is a step function: at f it is the best sensitivity reachable with at most f false positives
    per unit. 1.0 = every lesion found before the first false positive; 0.0 = none found within ``max_fp``.
    """
    fps, sens = np.asarray(fps, dtype=np.float64), np.asarray(sens, dtype=np.float64)
    if max_fp <= 0:
        raise ValueError("max_fp must be > 0")
    levels = np.unique(np.r_[0.0, fps[fps < max_fp]])
    heights = froc_sensitivity(fps, sens, levels)
    widths = np.diff(np.r_[levels, max_fp])
    return float((heights * widths).sum() / max_fp)


def detection_metrics(labels, probs, meta, points) -> dict[str, float]:
    """Candidate score = mean of its patches' P(class 1); FROC over the split's units (frames or volumes).

    ``meta``: ``candidate`` (patch -> candidate), ``group`` (patch -> frame/volume), optional ``lesion`` and
    ``missed_lesions`` (per patch: the lesions of its frame/volume that have no candidate; counted once per unit).
    Returns sensitivity at each of ``points`` false positives per unit and ``froc_pauc``, the normalised
    partial area up to the largest point.
    """
    probs = np.asarray(probs, dtype=np.float64)
    cand = meta["candidate"] if "candidate" in meta else np.arange(len(labels))
    ids, cand_scores, cand_labels = aggregate_mean(cand, probs[:, 1], labels)
    _, first = np.unique(np.asarray(cand).ravel(), return_index=True)
    units = np.asarray(meta["group"]).ravel()[first] if "group" in meta else ids
    lesions = np.asarray(meta["lesion"]).ravel()[first] if "lesion" in meta else None
    n_units = int(np.unique(np.asarray(meta["group"])).size) if "group" in meta else None
    missed = 0
    if "missed_lesions" in meta:
        per_unit = np.asarray(meta["group"]).ravel() if "group" in meta else np.asarray(cand).ravel()
        _, first_of_unit = np.unique(per_unit, return_index=True)
        missed = int(np.asarray(meta["missed_lesions"]).ravel()[first_of_unit].sum())
    fps, sens = compute_froc(cand_scores, cand_labels == 1, units, lesions, n_units=n_units, missed=missed)
    out = {f"sens@{p:g}fp": float(s) for p, s in zip(points, froc_sensitivity(fps, sens, points))}
    out["froc_pauc"] = froc_partial_area(fps, sens, max(points))
    out["n_units"] = float(n_units if n_units is not None else len(ids))
    return out
