"""Data budgets: nested, stratified subsets of the training split, by unit.

A training unit's *budget rank* is its position within its class's random order divided by the class size
(a unit's class is its largest sample label); budget ``b`` keeps the units with rank < b, i.e.
``ceil(b * n_c)`` units of every class c, with all their samples. Smaller budgets are therefore subsets of
larger ones. Without units, every sample is its own unit.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from tunedepth.errors import ConfigError

# a data budget: a fraction of the training split, in (0, 1]. Declared once: SearchConfig's ``budgets`` setting
# takes it as its range, TrialConfig and the subsets check against it (``check_budget``)
BUDGET_RANGE = {"above": 0.0, "at_most": 1.0}


def check_budget(budget: float) -> None:
    if not BUDGET_RANGE["above"] < budget <= BUDGET_RANGE["at_most"]:
        raise ConfigError(f"budget must be in (0, 1] (a fraction of the training split), got {budget}")

MIN_PER_CLASS = 2


def unit_labels(labels: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(unit ids, unit class = largest label of its samples, inverse index sample -> unit)``."""
    ids, inverse = np.unique(np.asarray(units), return_inverse=True)
    cls = np.full(ids.size, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(cls, inverse, np.asarray(labels, dtype=np.int64))
    return ids, cls, inverse


def budget_ranks(labels: np.ndarray, seed: int, units: np.ndarray | None = None) -> np.ndarray:
    """Per-sample budget rank: its unit's position in a seeded per-class permutation, over the class size."""
    labels = np.asarray(labels)
    if units is None:
        units = np.arange(labels.size)
    _, cls, inverse = unit_labels(labels, units)
    rng = np.random.default_rng(seed)
    rank = np.empty(cls.size, dtype=np.float64)
    for c in np.unique(cls):
        idx = rng.permutation(np.flatnonzero(cls == c))
        rank[idx] = np.arange(idx.size) / idx.size
    return rank[inverse]


def _round_up(x: float, digits: int = 3) -> float:
    if x <= 0:
        return 0.0
    scale = 10 ** (digits - 1 - math.floor(math.log10(x)))
    return math.ceil(x * scale * (1 + 1e-12)) / scale


def budget_indices(labels, ranks, budget: float, names: tuple[str, ...] = ()) -> torch.Tensor:
    """Indices of the training samples inside data budget ``budget`` (nested, stratified).

    Every class must keep at least ``MIN_PER_CLASS`` units (a unit's samples share one rank, so units are
    counted as distinct ranks within a class; without units every sample is one). ``names``: the class names,
    for the error message (the labels' codes otherwise).
    """
    labels = torch.as_tensor(labels)
    ranks = torch.as_tensor(ranks)
    check_budget(budget)
    keep = torch.nonzero(ranks < budget).flatten()
    classes = torch.unique(labels).tolist()
    kept_units, all_units, need = [], [], 0.0
    for c in classes:
        r = torch.unique(ranks[labels == c])  # sorted distinct ranks = the class's units
        all_units.append(int(r.numel()))
        kept_units.append(int((r < budget).sum()))
        need = max(need, float(r[MIN_PER_CLASS - 1]) if r.numel() >= MIN_PER_CLASS else float("inf"))
    if min(kept_units) < MIN_PER_CLASS:
        hint = f"use a budget >= {_round_up(need + 1e-9):.3g}" if need < 1 else "add training data"
        short = [i for i, k in enumerate(kept_units) if k < MIN_PER_CLASS]
        named = ", ".join(f"{_name(classes[i], names)!r} ({kept_units[i]} of its {all_units[i]})" for i in short)
        raise ConfigError(
            f"budget {budget} keeps too few training units of class(es) {named} (the training split is 60% of the "
            f"data); every class needs >= {MIN_PER_CLASS} at the smallest budget: {hint} or add images of class(es) "
            f"{', '.join(repr(_name(classes[i], names)) for i in short)}"
        )
    return keep


def _name(code: int, names: tuple[str, ...]) -> str:
    return str(names[code]) if 0 <= code < len(names) else str(code)


def balance_classes(labels: np.ndarray, bundles: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Negative down-sampling: indices to keep so that no class exceeds ``ratio`` x the rarest class.

    Whole bundles (a candidate's patches, a frame's crops) are kept or dropped together, in a seeded
    random order. ``ratio <= 0`` keeps everything.
    """
    labels, bundles = np.asarray(labels), np.asarray(bundles)
    if ratio <= 0 or labels.size == 0:
        return np.arange(labels.size)
    counts = np.bincount(labels)
    present = counts[counts > 0]
    cap = ratio * present.min()
    ids, first, inverse = np.unique(bundles, return_index=True, return_inverse=True)
    size = np.bincount(inverse)
    bundle_label = labels[first]
    rng = np.random.default_rng(seed)
    keep_bundle = np.ones(ids.size, dtype=bool)
    for c in np.flatnonzero(counts > cap):
        members = rng.permutation(np.flatnonzero(bundle_label == c))
        total = np.cumsum(size[members])
        keep_bundle[members[total > cap]] = False
    return np.flatnonzero(keep_bundle[inverse])


def smallest_budget(ranks: np.ndarray, budgets) -> np.ndarray:
    """Smallest budget of ``budgets`` whose subset holds each training sample (rank < budget)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = np.full(ranks.size, np.nan)
    for b in sorted(float(b) for b in budgets)[::-1]:
        out[ranks < b] = b
    return out
