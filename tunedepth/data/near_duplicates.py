"""Near-duplicate units: perceptual hashes of several views of each unit's grey image, pairs within a few bits
(exact banded search), and the union-find that merges them into one split group."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

HASH_SIZE = 32  # images are reduced to HASH_SIZE x HASH_SIZE grey levels before the DCT
NEAR_DUPLICATE_BITS = 4  # perceptual hashes within this Hamming distance are near-duplicates (max 7)


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
