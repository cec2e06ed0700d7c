"""Splits and data budgets: train/validation/test fixed per run, budgets nested and stratified by class.

Vocabulary:

* a *sample* is what the network sees: one 3-channel uint8 image (a crop, a patch);
* a *unit* is what a clinician reads and what a metric scores: a frame, an image, a volume. Every sample
  belongs to one unit (``meta["group"]``); crops/patches of a unit are scored together;
* a *split group* is what must never straddle train/validation/test: a patient, a video, a volume. Near-
  duplicate images (same perceptual hash, within a few bits) are merged into one split group.

A training unit's *budget rank* is its position within its class's random order divided by the class
size (a unit's class is its largest sample label, e.g. "holds a polyp"); budget ``b`` keeps the units with
rank < b, i.e. ``ceil(b * n_c)`` units of every class c, with all their samples. Smaller budgets are
therefore subsets of larger ones, and validation/test are the same for every budget. Without units,
every sample is its own unit.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from trainables.errors import ConfigError

MIN_PER_CLASS = 2
SPLITS = ("train", "val", "test")
HASH_SIZE = 32  # images are reduced to HASH_SIZE x HASH_SIZE grey levels before the DCT
NEAR_DUPLICATE_BITS = 4  # perceptual hashes within this Hamming distance are near-duplicates (max 7)


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
        return budget_indices(self.train_y, self.train_rank, budget)

    def fingerprint(self, split: str) -> str:
        """A content hash of one split's images ("train", "val" or "test"), memoised on the object.

        The driver computes it once before shipping the data to trials, so they receive it with the data
        (a cached feature's key, ``trainables.features``) instead of hashing the images again.
        """
        memo = self.__dict__.setdefault("_fingerprints", {})
        if split not in memo:
            x = getattr(self, f"{split}_x")
            h = hashlib.blake2b(digest_size=16)
            h.update(repr((tuple(x.shape), str(x.dtype))).encode())
            h.update(x.contiguous().numpy().tobytes())
            memo[split] = h.hexdigest()
        return memo[split]

    def targets(self, split: str) -> torch.Tensor:
        """What the network is trained/scored against on ``split``: the masks (long) if any, else the labels."""
        mask = getattr(self, f"{split}_mask")
        return getattr(self, f"{split}_y") if mask is None else mask.long()


# ----------------------------------------------------------------------------------------- splits

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


# ------------------------------------------------------------------------------- near-duplicates

def perceptual_hash(gray: torch.Tensor | np.ndarray) -> np.ndarray:
    """64-bit DCT perceptual hash (pHash) of each grey image in ``gray`` (N, H, W); returns uint64 (N,).

    The image is reduced to 32x32 (area averaging), transformed by a 2-D DCT-II, and bit k says whether the
    k-th of the 8x8 lowest frequencies is above their median (the DC term is left out). Resizing, mild noise,
    re-compression or a brightness change leave it within a few bits; different images differ in ~32.
    """
    from scipy.fft import dctn

    x = torch.as_tensor(np.asarray(gray) if not isinstance(gray, torch.Tensor) else gray).float()
    if x.ndim != 3:
        raise ValueError(f"perceptual_hash takes grey images (N, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        return np.zeros(0, dtype=np.uint64)
    small = F.interpolate(x[:, None], size=(HASH_SIZE, HASH_SIZE), mode="area")[:, 0].numpy().astype(np.float64)
    low = dctn(small, type=2, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(-1, 64)
    med = np.median(low[:, 1:], axis=1, keepdims=True)
    bits = low > med
    bits[:, 0] = False
    weights = (np.uint64(1) << np.arange(64, dtype=np.uint64))
    return (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


# The views a unit is hashed in: (kind, centre-crop scale). "phash" is the DCT hash of the grey thumbnail;
# "rank-phash" that of its rank-normalised thumbnail (blind to gamma, contrast and window changes); the centre
# crops let a copy cut down by a few percent per side meet its original's matching crop. Two units are
# near-duplicates when any view of one is within NEAR_DUPLICATE_BITS of any view of the other.
HASH_VIEWS = (("phash", 1.0), ("rank-phash", 1.0), ("rank-phash", 0.92), ("rank-phash", 0.85))
HASH_KINDS = ("phash", "rank-phash")


def _centre(t: torch.Tensor, scale: float) -> torch.Tensor:
    if scale >= 1.0:
        return t
    h, w = t.shape[-2:]
    ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = (h - ch) // 2, (w - cw) // 2
    return t[..., top : top + ch, left : left + cw]


def _thumbnails(images, scale: float = 1.0) -> torch.Tensor:
    """(N, HASH_SIZE, HASH_SIZE) grey thumbnails (area averaging) of each image's centre ``scale`` crop."""
    def one(batch: torch.Tensor) -> torch.Tensor:
        return F.interpolate(_centre(batch.float(), scale), size=(HASH_SIZE, HASH_SIZE), mode="area")
    if isinstance(images, torch.Tensor):
        return one(images[:, None])[:, 0]
    small = [one(t[None, None])[0, 0] for t in images]
    return torch.stack(small) if small else torch.zeros(0, HASH_SIZE, HASH_SIZE)


def rank_normalise(x: torch.Tensor) -> torch.Tensor:
    """Each image's grey levels replaced by their mid-rank in [0, 1] (histogram equalisation).

    Any increasing change of intensities (gamma, contrast, brightness, an unclipped window) leaves it as it
    is, so a copy that differs only in those hashes like its original.
    """
    from scipy.stats import rankdata

    flat = x.reshape(x.shape[0], -1).numpy()
    ranks = rankdata(flat, axis=1) - 1 if flat.size else flat
    return torch.as_tensor(ranks / max(flat.shape[1] - 1, 1), dtype=torch.float32).reshape(x.shape)


def unit_hash_set(images, views: tuple[tuple[str, float], ...] = HASH_VIEWS) -> np.ndarray:
    """(N, len(views)) uint64: per unit, the pHash of each view (kind, centre-crop scale) of its grey image."""
    out = []
    for kind, scale in views:
        if kind not in HASH_KINDS:
            raise ValueError(f"unknown hash kind {kind!r}; choose from {HASH_KINDS}")
        small = _thumbnails(images, scale)
        out.append(perceptual_hash(rank_normalise(small) if kind == "rank-phash" else small))
    n = len(images)
    return np.stack(out, axis=1) if out else np.zeros((n, 0), dtype=np.uint64)


def near_duplicate_set_pairs(hash_set: np.ndarray, max_distance: int = NEAR_DUPLICATE_BITS) -> np.ndarray:
    """Unit pairs (i < j) with any view of i within ``max_distance`` bits of any view of j; (K, 2) int64."""
    n, k = hash_set.shape
    owner = np.repeat(np.arange(n), k)
    pairs = owner[near_duplicate_pairs(hash_set.reshape(-1), max_distance)]
    pairs = np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), dtype=np.int64)


def near_duplicate_groups(hash_set: np.ndarray, max_distance: int = NEAR_DUPLICATE_BITS) -> np.ndarray:
    """Group label per unit: units linked by chains of near-duplicate pairs share one (union-find)."""
    return merge_groups(np.arange(hash_set.shape[0]), near_duplicate_set_pairs(hash_set, max_distance))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int = NEAR_DUPLICATE_BITS) -> np.ndarray:
    """Index pairs (i < j) whose hashes differ in at most ``max_distance`` bits; (K, 2) int64.

    Exact, without comparing all pairs: split the 64 bits into 8 bands of 8; two hashes within 7 bits agree
    on at least one whole band (pigeonhole), so only items sharing a band value are compared.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    if not 0 <= max_distance <= 7:
        raise ValueError(f"max_distance must be in 0..7 for the banded search, got {max_distance}")
    found: set[tuple[int, int]] = set()
    for band in range(8):
        key = (hashes >> np.uint64(8 * band)) & np.uint64(0xFF)
        order = np.argsort(key, kind="stable")
        bounds = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1], True])
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if hi - lo < 2:
                continue
            members = order[lo:hi]
            d = hamming(hashes[members][:, None], hashes[members][None, :])
            ii, jj = np.nonzero(np.triu(d <= max_distance, k=1))
            for i, j in zip(members[ii].tolist(), members[jj].tolist()):
                found.add((min(i, j), max(i, j)))
    return np.asarray(sorted(found), dtype=np.int64).reshape(-1, 2)


def merge_groups(groups: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Connected components of "same group" plus "near-duplicate pair"; returns a component id per item."""
    _, parent = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(parent.max()) + 1 if parent.size else 0
    root = np.arange(n_groups)

    def find(a: int) -> int:
        while root[a] != a:
            root[a] = root[root[a]]
            a = root[a]
        return a

    for i, j in np.asarray(pairs).reshape(-1, 2):
        a, b = find(parent[i]), find(parent[j])
        if a != b:
            root[max(a, b)] = min(a, b)
    comp = np.array([find(g) for g in range(n_groups)], dtype=np.int64)
    _, dense = np.unique(comp[parent], return_inverse=True)
    return dense.astype(np.int64)


# ---------------------------------------------------------------------------------------- budgets

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


def budget_indices(labels, ranks, budget: float) -> torch.Tensor:
    """Indices of the training samples inside data budget ``budget`` (nested, stratified).

    Every class must keep at least ``MIN_PER_CLASS`` units (a unit's samples share one rank, so units are
    counted as distinct ranks within a class; without units every sample is one).
    """
    labels = torch.as_tensor(labels)
    ranks = torch.as_tensor(ranks)
    if not 0.0 < budget <= 1.0:
        raise ConfigError(f"budget must be in (0, 1], got {budget}")
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
        raise ConfigError(
            f"budget {budget} keeps {kept_units} training units per class {classes} (of {all_units}); "
            f"every class needs >= {MIN_PER_CLASS}: {hint} or more training data"
        )
    return keep


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


# ---------------------------------------------------------------------------------- splits.parquet

def smallest_budget(ranks: np.ndarray, budgets) -> np.ndarray:
    """Smallest budget of ``budgets`` whose subset holds each training sample (rank < budget)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = np.full(ranks.size, np.nan)
    for b in sorted(float(b) for b in budgets)[::-1]:
        out[ranks < b] = b
    return out


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
