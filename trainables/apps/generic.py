"""The generic applications: your own images with no app-specific protocol.

``classification``: one image per unit, fitted to the network's square input by the run's resize policy
(``--resize resize|pad|crop``), scored per image by the run's metric (``--metric auc|balanced-accuracy|
macro-f1``); binary or multi-class, from an image folder, a CSV manifest or a MedMNIST ``.npz``. Its
embedded data (for tests and a first try) is three classes of generated shapes in images of varying aspect.
"""
from __future__ import annotations

import numpy as np
import torch

from trainables.apps.patches import RESIZE_POLICIES, as_float01, fit_square, to_rgb, to_uint8
from trainables.data.units import RawSet, Samples

SHAPES = ("disc", "square", "cross")


def _shape_mask(kind: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = rng.uniform(0.18, 0.3) * min(h, w)
    cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
    dy, dx = np.abs(yy - cy), np.abs(xx - cx)
    if kind == 0:
        return dy ** 2 + dx ** 2 <= r ** 2
    if kind == 1:
        return (dy <= r) & (dx <= r)
    bar = r / 3
    return ((dy <= r) & (dx <= bar)) | ((dx <= r) & (dy <= bar))


def generate_shapes(n: int, size: int, seed: int) -> RawSet:
    """``n`` grey images of one of three shapes (disc, square, cross) on a noisy background, each image of a
    random aspect ratio (height ``size``, width 0.6-1.6 x ``size``): a multi-class folder in memory."""
    rng = np.random.default_rng([int(seed), 1789])
    labels = np.arange(n) % len(SHAPES)
    images = []
    for k in labels:
        h, w = size, max(8, int(size * rng.uniform(0.6, 1.6)))
        img = rng.normal(0.35, 0.08, size=(h, w)) + 0.35 * _shape_mask(int(k), h, w, rng)
        images.append(torch.as_tensor(np.clip(img, 0, 1), dtype=torch.float32)[None])
    names = [f"{SHAPES[k]}/img{i:05d}.png" for i, k in enumerate(labels)]
    return RawSet("classification", images, labels, names, classes=SHAPES)


def image_samples(raw: RawSet, split: str, size: int, seed: int, train_raw=None, resize: str = "resize") -> Samples:
    """One sample per image: the image as RGB, fitted to ``size`` x ``size`` by the ``resize`` policy."""
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"unknown resize policy {resize!r}")
    images = raw.images if isinstance(raw.images, torch.Tensor) else list(raw.images)
    x = torch.stack([to_uint8(to_rgb(fit_square(as_float01(im), size, resize))) for im in images]) \
        if len(raw) else torch.zeros(0, 3, size, size, dtype=torch.uint8)
    return Samples(x=x.contiguous(), y=torch.as_tensor(raw.labels), meta={"unit": np.arange(len(raw))})
