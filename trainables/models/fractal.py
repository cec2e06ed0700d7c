"""Formula-driven images: FractalDB-style categories of iterated-function-system fractals.

Kataoka et al. (ACCV 2020) pretrain CNNs on fractal categories instead of natural images: a category is
an IFS (a few random affine maps, kept if its attractor fills enough of the canvas), its instances are
renderings with one parameter re-weighted, in a random colour, randomly flipped. Everything here is
deterministic from a seed and needs no files or network.
"""
from __future__ import annotations

import numpy as np
import torch

MAX_MAPS = 4
FILL_MIN = 0.08  # minimum fraction of a 32x32 canvas covered: FractalDB's filling-rate filter
WEIGHTS = (0.8, 0.9, 1.1, 1.2)  # FractalDB-style instance variation: one parameter re-weighted


def random_ifs(rng: np.random.Generator) -> np.ndarray:
    """An IFS of 2-4 contractive affine maps as a (MAX_MAPS, 7) array: rows (a, b, c, d, e, f, p).

    x' = [[a b][c d]] x + (e, f), chosen with probability p (proportional to |det|; 0 for unused rows).
    """
    n_maps = int(rng.integers(2, MAX_MAPS + 1))
    maps = np.zeros((MAX_MAPS, 7))
    maps[:n_maps, :6] = rng.uniform(-1.0, 1.0, size=(n_maps, 6))
    for m in maps[:n_maps]:  # contractive linear parts (spectral norm 0.35-0.85): the attractor exists
        lin = m[:4].reshape(2, 2)
        m[:4] = (lin * rng.uniform(0.35, 0.85) / max(np.linalg.norm(lin, 2), 1e-6)).ravel()
    det = np.abs(maps[:n_maps, 0] * maps[:n_maps, 3] - maps[:n_maps, 1] * maps[:n_maps, 2]) + 1e-3
    maps[:n_maps, 6] = det / det.sum()
    return maps


def render_ifs(maps: np.ndarray, size: int, points: int, rng: np.random.Generator) -> np.ndarray:
    """Render a batch of IFS ``maps`` (N, MAX_MAPS, 7) as binary point images (N, size, size).

    The chaos game runs for all images at once: vectorised over images, sequential over points.
    """
    n = maps.shape[0]
    cum = np.cumsum(maps[:, :, 6], axis=1)
    rows = np.arange(n)
    xy = np.zeros((n, 2))
    coords = np.empty((points, n, 2), dtype=np.float32)
    burn_in = 20
    for t in range(points + burn_in):
        choice = (rng.random(n)[:, None] > cum).sum(axis=1).clip(max=MAX_MAPS - 1)
        m = maps[rows, choice]
        xy = np.stack([m[:, 0] * xy[:, 0] + m[:, 1] * xy[:, 1] + m[:, 4],
                       m[:, 2] * xy[:, 0] + m[:, 3] * xy[:, 1] + m[:, 5]], axis=1)
        if t >= burn_in:
            coords[t - burn_in] = xy
    lo = coords.min(axis=0)
    span = np.maximum((coords.max(axis=0) - lo).max(axis=1, keepdims=True), 1e-6)  # keep the aspect ratio
    pix = ((coords - lo) / span * (size - 1)).round().astype(np.int64).clip(0, size - 1)
    flat = rows[None, :] * size * size + pix[..., 1] * size + pix[..., 0]
    img = np.bincount(flat.ravel(), minlength=n * size * size).reshape(n, size, size)
    return (img > 0).astype(np.float32)


def fractal_categories(num_classes: int, rng: np.random.Generator) -> list[np.ndarray]:
    categories: list[np.ndarray] = []
    while len(categories) < num_classes:
        maps = random_ifs(rng)
        if render_ifs(maps[None], 32, 1000, rng).mean() >= FILL_MIN:
            categories.append(maps)
    return categories


def fractal_dataset(num_classes: int, per_class: int, size: int, seed: int,
                    points: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_classes`` IFS categories x ``per_class`` instances: uint8 images (N, 3, size, size), labels (N,)."""
    rng = np.random.default_rng(seed)
    categories = fractal_categories(num_classes, rng)
    labels = np.repeat(np.arange(num_classes), per_class)
    maps = np.stack([categories[c] for c in labels])
    n = labels.size
    n_maps = (maps[:, :, 6] > 0).sum(axis=1)
    which_map = (rng.random(n) * n_maps).astype(int)
    which_param = rng.integers(0, 6, size=n)
    maps[np.arange(n), which_map, which_param] *= rng.choice(WEIGHTS, size=n)
    shape = render_ifs(maps, size, points, rng)
    shape = np.where(rng.random(n)[:, None, None] < 0.5, shape[:, :, ::-1], shape)
    colour = rng.uniform(0.35, 1.0, size=(n, 3, 1, 1))
    images = (shape[:, None] * colour * 255).round().astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)
