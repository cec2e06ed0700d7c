"""Splits: train/validation/test fixed per run, by split group (patient, video, near-duplicates merged),
stratified by class; ``SplitData``, a run's samples of the three splits; ``splits_frame``, splits.parquet.

See ``tunedepth.data`` for the vocabulary (sample, unit, split group).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from tunedepth.data.budgets import budget_indices, budget_ranks, smallest_budget
from tunedepth.errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitData:
    """Images as uint8 tensors (N, C, H, W) and integer labels, for the three splits of one run.

    ``*_meta`` hold per-sample arrays an app's metric needs. ``group`` is the sample's unit (frame,
    candidate frame, volume, image: the thing a clinician reads), used for per-unit scores and
    unit-resampled bootstraps; apps add e.g. ``candidate``, ``lesion``, ``column``, ``row``,
    ``spacing_um``. ``sample_id`` numbers every sample of the run. ``units`` describes every unit
    (name, source group, merged split group, split); ``dropped_meta`` the training samples removed by
    negative down-sampling.
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
    num_classes: int = 0  # 0 = infer from the labels
    classes: tuple[str, ...] = ()  # class names, when the data has them
    units: pd.DataFrame | None = None  # unit_id, unit, source_group, group, split, label
    dropped_meta: dict[str, torch.Tensor] = field(default_factory=dict)
    # whole-image segmentation apps: per-pixel targets (N, H, W) uint8 of each split (255 = not annotated); the
    # labels above stay one class per sample (what budgets, splits.parquet and the bootstrap strata use)
    train_mask: torch.Tensor | None = None
    val_mask: torch.Tensor | None = None
    test_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name, value in vars(self).items():  # the data boundary: plain tensors only (no MONAI MetaTensor)
            if isinstance(value, torch.Tensor) and type(value) is not torch.Tensor:
                object.__setattr__(self, name, torch.Tensor.as_subclass(value, torch.Tensor))
            elif isinstance(value, dict):
                object.__setattr__(self, name, {k: torch.Tensor.as_subclass(v, torch.Tensor)
                                                if isinstance(v, torch.Tensor) and type(v) is not torch.Tensor else v
                                                for k, v in value.items()})
        if not self.num_classes:
            top = max(int(y.max()) if y.numel() else 0 for y in (self.train_y, self.val_y, self.test_y))
            object.__setattr__(self, "num_classes", max(top + 1, len(self.classes), 2))

    def budget_indices(self, budget: float) -> torch.Tensor:
        return budget_indices(self.train_y, self.train_rank, budget, self.classes)

    def fingerprint(self, split: str) -> str:
        """A content hash of one split's images ("train", "val" or "test"), memoised on the object.

        The driver computes it once before shipping the data to trials, so they receive it with the data
        (a cached feature's key, ``tunedepth.training.features``) instead of hashing the images again.
        """
        memo = self.__dict__.setdefault("_fingerprints", {})
        if split not in memo:
            x = getattr(self, f"{split}_x")
            if hasattr(x, "fingerprint"):  # images on disk (tunedepth.data.stream): hashed chunk by chunk, same digest
                memo[split] = x.fingerprint()
                return memo[split]
            h = hashlib.blake2b(digest_size=16)
            h.update(repr((tuple(x.shape), str(x.dtype))).encode())
            h.update(x.contiguous().numpy().tobytes())
            memo[split] = h.hexdigest()
        return memo[split]

    def targets(self, split: str) -> torch.Tensor:
        """What the network is trained/scored against on ``split``: the masks (long) if any, else the labels."""
        mask = getattr(self, f"{split}_mask")
        return getattr(self, f"{split}_y") if mask is None else mask.long()


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


def grouped_split(labels: np.ndarray, groups: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Split item indices into parts so that no group is in two parts, stratified by the groups' class.

    A group's class is the largest label among its items (e.g. "this patient has a lesion"). Within a class,
    groups are taken in a seeded random order and each goes to the part furthest below its target share of
    that class's items. Without any group holding two items this is ``stratified_split``.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    if not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    codes, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if sizes.max(initial=0) <= 1:
        return stratified_split(labels, fractions, seed)
    group_label = np.full(codes.size, labels.min(initial=0))
    np.maximum.at(group_label, inverse, labels)
    rng = np.random.default_rng(seed)
    target = np.asarray(fractions, dtype=np.float64)
    assignment = np.empty(codes.size, dtype=np.int64)
    for c in np.unique(group_label):
        members = rng.permutation(np.flatnonzero(group_label == c))
        total = sizes[members].sum()
        filled = np.zeros(len(fractions))
        for g in members:
            k = int(np.argmax(target * total - filled))  # the part most below its share
            assignment[g] = k
            filled[k] += sizes[g]
    # a part left empty (few, large groups) takes the smallest group of the part holding the most groups
    for k in range(len(fractions)):
        counts = np.bincount(assignment, minlength=len(fractions))
        if counts[k] == 0 and counts.max() > 1:
            donor = int(np.argmax(counts))
            members = np.flatnonzero(assignment == donor)
            assignment[members[np.argmin(sizes[members])]] = k
    part_of_item = assignment[inverse]
    return [np.flatnonzero(part_of_item == k) for k in range(len(fractions))]


def assign_splits(labels: np.ndarray, groups: np.ndarray, seed: int,
                  fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
                  preassigned: np.ndarray | None = None) -> np.ndarray:
    """Split name ("train"/"val"/"test") per unit; units of one group always share a split.

    ``preassigned`` (e.g. MedMNIST's official split) is kept, except that a group spanning several splits
    (near-duplicates across them) moves entirely to its most held-out split (test, then val).
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    if preassigned is not None:
        out = np.asarray(preassigned, dtype=object).copy()
        rank = np.vectorize({"train": 0, "val": 1, "test": 2}.__getitem__, otypes=[np.int64])(out)
        _, inverse = np.unique(groups, return_inverse=True)
        worst = np.zeros(inverse.max() + 1, dtype=np.int64)
        np.maximum.at(worst, inverse, rank)
        return np.asarray(SPLITS, dtype=object)[worst[inverse]]
    parts = grouped_split(labels, groups, fractions, seed)
    out = np.empty(labels.size, dtype=object)
    for name, idx in zip(SPLITS, parts):
        out[idx] = name
    n_groups = np.unique(groups).size
    empty = [name for name, idx in zip(SPLITS, parts) if idx.size == 0]
    if empty:
        raise ConfigError(
            f"the data has {labels.size} units in {n_groups} split group(s) (patients/videos, near-duplicates merged): "
            f"too few to fill the {', '.join(empty)} split(s); add data from more groups (at least 3, better 10+)"
        )
    return out


def make_splits(images: torch.Tensor, labels: torch.Tensor, seed: int,
                fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> SplitData:
    """Stratified train/validation/test split of independent samples plus budget ranks for the training part."""
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


def splits_frame(data: SplitData, budgets) -> pd.DataFrame:
    """One row per sample: sample_id, unit_id, unit, group, source_group, split, label, budget.

    ``budget`` is the smallest of ``budgets`` containing the sample (training samples only, NaN otherwise);
    split ``unused`` marks training samples removed by negative down-sampling.
    """
    parts = []
    for split, y, meta in (("train", data.train_y, data.train_meta), ("val", data.val_y, data.val_meta),
                           ("test", data.test_y, data.test_meta),
                           ("unused", data.dropped_meta.get("label"), data.dropped_meta)):
        if y is None or len(y) == 0:
            continue
        n = len(y)
        ids = meta.get("sample_id", torch.arange(n)).numpy()
        unit = meta.get("group", torch.as_tensor(ids)).numpy()
        parts.append(pd.DataFrame({
            "sample_id": ids.astype(np.int64), "unit_id": unit.astype(np.int64), "split": split,
            "label": torch.as_tensor(y).numpy().astype(np.int64),
            "budget": smallest_budget(data.train_rank.numpy(), budgets) if split == "train" else np.nan,
        }))
    frame = pd.concat(parts, ignore_index=True)
    if data.units is not None:
        info = data.units.set_index("unit_id")[["unit", "group", "source_group"]]
        frame = frame.join(info, on="unit_id")
    else:
        frame["unit"] = frame["unit_id"].astype(str)
        frame["group"] = frame["unit_id"]
        frame["source_group"] = frame["unit_id"].astype(str)
    cols = ["sample_id", "unit_id", "unit", "group", "source_group", "split", "label", "budget"]
    return frame[cols].sort_values("sample_id", ignore_index=True)
