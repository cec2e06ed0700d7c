"""Splits and data budgets: train/validation/test fixed per run, budgets nested and stratified by class.

A training sample's *budget rank* is its position within its class's random order divided by the class
size; budget ``b`` keeps the samples with rank < b, i.e. ``ceil(b * n_c)`` samples of every class c.
Smaller budgets are therefore subsets of larger ones, and validation/test are the same for every budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from trainables.config import ConfigError

MIN_PER_CLASS = 2


@dataclass(frozen=True)
class SplitData:
    """Images as uint8 tensors (N, C, H, W) and integer labels, for the three splits of one run.

    ``*_meta`` hold optional per-sample arrays an app's metric needs (e.g. ``group``: the frame, candidate,
    volume or patient a sample belongs to, for per-group scores and group-resampled bootstraps).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    train_rank: torch.Tensor  # budget rank in [0, 1), see module docstring
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    train_meta: dict[str, torch.Tensor] = field(default_factory=dict)
    val_meta: dict[str, torch.Tensor] = field(default_factory=dict)
    test_meta: dict[str, torch.Tensor] = field(default_factory=dict)

    def budget_indices(self, budget: float) -> torch.Tensor:
        return budget_indices(self.train_y, self.train_rank, budget)


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Split sample indices into ``len(fractions)`` parts, stratified by class, deterministic from ``seed``."""
    labels = np.asarray(labels)
    if not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        bounds = np.round(np.cumsum((0.0,) + tuple(fractions)) * idx.size).astype(int)
        for k in range(len(fractions)):
            parts[k].extend(idx[bounds[k] : bounds[k + 1]].tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def budget_ranks(labels: np.ndarray, seed: int) -> np.ndarray:
    """Per-sample budget rank: position in a seeded per-class permutation, divided by the class size."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    rank = np.empty(labels.size, dtype=np.float64)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        rank[idx] = np.arange(idx.size) / idx.size
    return rank


def budget_indices(labels, ranks, budget: float) -> torch.Tensor:
    """Indices of the training samples inside data budget ``budget`` (nested, stratified)."""
    labels = torch.as_tensor(labels)
    ranks = torch.as_tensor(ranks)
    if not 0.0 < budget <= 1.0:
        raise ConfigError(f"budget must be in (0, 1], got {budget}")
    keep = torch.nonzero(ranks < budget).flatten()
    counts = torch.bincount(labels[keep], minlength=int(labels.max()) + 1)
    full = torch.bincount(labels, minlength=counts.numel())
    if counts.min() < MIN_PER_CLASS:
        smallest = int(full.min())
        need = MIN_PER_CLASS / smallest if smallest else float("inf")
        raise ConfigError(
            f"budget {budget} keeps {counts.tolist()} training samples per class (of {full.tolist()}); "
            f"every class needs >= {MIN_PER_CLASS}: use a budget >= {need:.3g} or more training data"
        )
    return keep


def make_splits(images: torch.Tensor, labels: torch.Tensor, seed: int,
                fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> SplitData:
    """Stratified train/validation/test split plus budget ranks for the training part."""
    y = labels.numpy()
    classes = np.unique(y)
    if classes.size < 2:
        raise ConfigError(f"the data has a single class ({classes.tolist()}); a classifier needs at least two")
    tr, va, te = stratified_split(y, fractions, seed)
    ranks = budget_ranks(y[tr], seed + 1)
    return SplitData(
        train_x=images[tr], train_y=labels[tr], train_rank=torch.from_numpy(ranks),
        val_x=images[va], val_y=labels[va], test_x=images[te], test_y=labels[te],
    )
