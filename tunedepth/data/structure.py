"""Near-duplicates by structure, blind to intensity mapping and tolerant of small crops and shifts.

A unit's *signature* is its grey thumbnail (SIGNATURE x SIGNATURE, area averaging) with every grey level
replaced by its rank (``near_duplicates.rank_normalise``): any increasing change of intensities (contrast,
gamma, brightness, an unclipped window) leaves it as it is. Two units are compared by the structure left
after a band-pass (a difference of Gaussians: the shared overall shape of a family of look-alike images and
the pixel-level changes of sharpening or JPEG both fall mostly outside the band), divided by its local energy
(so a shared outline, such as a skull's rim, does not outweigh the interior) and Hann-windowed: their *score* is the
best normalised cross-correlation over shifts of up to SHIFT pixels of COMPARE (about 9% of the image) and the
centre crops SCALES of either one (a copy cut down by up to 5% per side). Near-duplicates score at least
MIN_SCORE.

Pairs are found without scoring all of them in full: every unit's coarse band-passed view (16 x 16) is
compared with every other's, shifted by up to one coarse pixel, by matrix products (in row blocks; quadratic
in the units but cheap: 256 numbers a unit), and per unit the CANDIDATES most similar ones are scored.
Measured by ``bench/near_duplicates.py`` (docs/data.md).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SIGNATURE = 40  # side of the stored rank thumbnail (uint8)
COMPARE = 32  # side of the band-passed views that are scored
SCALES = (1.0, 0.95, 0.9)  # centre crops compared (either side), for copies cut down by up to 5% per side
SHIFT = 3  # pixels of COMPARE a copy may be shifted by
BAND = (1.0, 3.0)  # Gaussian sigmas (pixels of COMPARE) of the difference-of-Gaussians band-pass
LOCAL = 3.0  # sigma (pixels of COMPARE) of the local energy the band is divided by; 0 = none
MIN_SCORE = 0.94  # near-duplicates: best aligned correlation at least this
CANDIDATES, COARSE_MIN, COARSE_BLUR = 8, 0.3, 1.0  # per unit, its most similar coarse views (blurred) are scored
BLOCK = 256  # rows of the coarse similarity matrix computed at once (256 x N floats)


def unit_signatures(images) -> np.ndarray:
    """(N, SIGNATURE, SIGNATURE) uint8: each grey image's rank-normalised thumbnail (``images``: a (N, H, W)
    tensor or a list of (H, W) ones of any sizes)."""
    def small(batch: torch.Tensor) -> torch.Tensor:
        return F.interpolate(batch.float(), size=(SIGNATURE, SIGNATURE), mode="area")

    if isinstance(images, torch.Tensor):
        thumbs = small(images[:, None])[:, 0] if len(images) else torch.zeros(0, SIGNATURE, SIGNATURE)
    else:
        parts = [small(torch.as_tensor(t)[None, None])[0, 0] for t in images]
        thumbs = torch.stack(parts) if parts else torch.zeros(0, SIGNATURE, SIGNATURE)
    return (ranks(thumbs.numpy()) * 255).round().astype(np.uint8)


def ranks(x: np.ndarray) -> np.ndarray:
    """Each image's grey levels replaced by their mid-rank in [0, 1] (ties share one), as
    ``near_duplicates.rank_normalise`` but by one sort of all images at once (values in [0, 256))."""
    n = len(x)
    flat = x.reshape(n, -1).astype(np.float64)
    if not flat.size:
        return flat.reshape(x.shape)
    keys = (flat + 512.0 * np.arange(n)[:, None]).ravel()  # each image's values in a range of their own
    ordered = np.sort(keys)
    low, high = np.searchsorted(ordered, keys, "left"), np.searchsorted(ordered, keys, "right")
    start = (np.arange(n) * flat.shape[1]).repeat(flat.shape[1])
    mid = (low + high - 1) / 2 - start
    return (mid / max(flat.shape[1] - 1, 1)).reshape(x.shape)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of each (H, W) image of (N, H, W), edges extended (scipy's C filter: faster than conv2d)."""
    from scipy.ndimage import gaussian_filter

    out = gaussian_filter(x.numpy(), sigma=(0, sigma, sigma), mode="nearest", truncate=3.0)
    return torch.from_numpy(out)


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    return x / x.flatten(1).norm(dim=1).clamp_min(1e-6)[:, None, None]


_WINDOW = torch.hann_window(COMPARE, periodic=False)[:, None] * torch.hann_window(COMPARE, periodic=False)[None]


def views(signatures: np.ndarray, scale: float) -> torch.Tensor:
    """(N, COMPARE, COMPARE): the band-passed, windowed, unit-norm view of each signature's centre ``scale``."""
    x = torch.as_tensor(np.asarray(signatures)).float() / 255
    side = x.shape[-1]
    c = max(2, round(side * scale))
    lo = (side - c) // 2
    x = F.interpolate(x[:, None, lo:lo + c, lo:lo + c], size=(COMPARE, COMPARE), mode="bilinear",
                      antialias=True, align_corners=False)[:, 0]
    band = _blur(x, BAND[0]) - _blur(x, BAND[1])
    if LOCAL:  # every region's structure counts alike: a shared outline (a skull's rim) does not dominate
        band = band / (_blur(band * band, LOCAL) + 1e-4).sqrt()
    return _unit(band * _WINDOW)


def candidate_pairs(full: torch.Tensor) -> np.ndarray:
    """(K, 2) pairs i < j: per unit its CANDIDATES most similar coarse views above COARSE_MIN (16 x 16, the
    best of the 9 shifts by one coarse pixel, about 6% of the image)."""
    n = len(full)
    k = min(CANDIDATES, n - 1)
    if k < 1:
        return np.zeros((0, 2), dtype=np.int64)
    coarse = F.avg_pool2d(_blur(full, COARSE_BLUR)[:, None], 2)[:, 0]
    flat = _unit(coarse).flatten(1)
    moved = [_unit(torch.roll(coarse, (dy, dx), dims=(1, 2))).flatten(1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    out = []
    for lo in range(0, n, BLOCK):
        rows = torch.arange(lo, min(lo + BLOCK, n))
        sim = flat[rows] @ moved[0].T
        for m in moved[1:]:
            torch.maximum(sim, flat[rows] @ m.T, out=sim)
        sim[torch.arange(len(rows)), rows] = -1  # not itself
        val, idx = sim.topk(k, dim=1)
        keep = val >= COARSE_MIN
        out.append(torch.stack([rows[:, None].expand_as(idx)[keep], idx[keep]], dim=1))
    pairs = torch.sort(torch.cat(out), dim=1).values.numpy().astype(np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), dtype=np.int64)


def _best_correlation(fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """Per row, the largest circular cross-correlation of two unit-norm views within SHIFT pixels (rfft2s given)."""
    c = torch.fft.irfft2(fa * fb.conj(), s=(COMPARE, COMPARE))
    near = torch.cat([torch.arange(0, SHIFT + 1), torch.arange(COMPARE - SHIFT, COMPARE)])
    return c[:, near][:, :, near].flatten(1).max(dim=1).values


def pair_scores(signatures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The aligned correlation of each pair (best over shifts and the centre crops of either unit)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if not len(pairs):
        return np.zeros(0)
    spectra = {s: torch.fft.rfft2(views(signatures, s)) for s in SCALES}
    i, j = torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1])
    best = torch.full((len(pairs),), -1.0)
    for a, b in [(1.0, 1.0)] + [(1.0, s) for s in SCALES[1:]] + [(s, 1.0) for s in SCALES[1:]]:
        best = torch.maximum(best, _best_correlation(spectra[a][i], spectra[b][j]))
    return best.numpy()


def structure_pairs(signatures: np.ndarray, min_score: float = MIN_SCORE) -> np.ndarray:
    """(K, 2) unit pairs i < j that are near-duplicates by structure (candidates scored at least ``min_score``)."""
    if len(signatures) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = candidate_pairs(views(signatures, 1.0))
    return pairs[pair_scores(signatures, pairs) >= min_score]
