"""The generic applications: your own images with no app-specific protocol.

``classification``: one image per unit, fitted to the network's square input by the run's resize policy
(``--resize resize|pad|crop``), scored per image by the run's metric (``--metric auc|balanced-accuracy|
macro-f1``); binary or multi-class, from an image folder, a CSV manifest or a MedMNIST ``.npz``. Its
embedded data (for tests and a first try) is three classes of generated shapes in images of varying aspect.

``detection``: candidates of a ``candidates-csv`` on 2-D images, one centred patch each, scored by FROC over
the images (``froc``: normalised partial area to 1 false positive per image). Embedded data: the polyp
generator's frames and candidates.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tunedepth.apps.patches import RESIZE_POLICIES, as_float01, crop_patches, fit_square, to_rgb, to_uint8
from tunedepth.data.units import IGNORE, RawSet, Samples
from tunedepth.errors import ConfigError
from tunedepth.metrics import detection_metrics

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


# ------------------------------------------------------------------------------------- detection

PATCH_SCALE = 2.0  # a candidate's patch spans twice its size (context around it)
DEFAULT_SIZE = 0.15  # a candidate without a size: 15% of the image's shorter side
FP_PER_IMAGE = (0.125, 0.25, 0.5, 1.0)  # FROC points (false positives per image); partial area to the last


def candidate_patch(raw: RawSet, split: str, size: int, seed: int, train_raw=None, resize: str = "resize") -> Samples:
    """One centred patch per candidate (side ``PATCH_SCALE`` x its size), resampled to ``size`` px: no scales,
    shifts or mirrors (the polyp protocol's six patches are ``polyp-detection``'s)."""
    if raw.is_3d:
        raise ConfigError("the generic detection app takes 2-D images; candidates with z (CT volumes): "
                          "use --app pe-detection")
    keys = ("unit", "candidate", "lesion", "missed_lesions")
    xs, ys, meta = [], [], {k: [] for k in keys}
    for unit, rows in raw.candidates.groupby("unit", sort=True):
        image = raw.image(int(unit))
        h, w = image.shape[-2:]
        base = rows["size"].to_numpy(dtype=np.float64) if "size" in rows else np.full(len(rows), np.nan)
        side = PATCH_SCALE * np.where(np.isfinite(base) & (base > 0), base, DEFAULT_SIZE * min(h, w))
        xs.append(to_uint8(to_rgb(crop_patches(image, rows["x"].to_numpy(), rows["y"].to_numpy(), side,
                                               out_size=size))))
        ys.append(rows["label"].to_numpy())
        m = len(rows)
        meta["unit"].append(np.full(m, unit))
        meta["candidate"].append(rows.index.to_numpy())
        meta["lesion"].append(rows["lesion"].to_numpy() if "lesion" in rows else np.full(m, -1))
        meta["missed_lesions"].append(rows["missed"].to_numpy() if "missed" in rows else np.zeros(m))
    if not xs:
        return Samples(torch.zeros(0, 3, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long),
                       {k: np.zeros(0, dtype=np.int64) for k in keys})
    return Samples(torch.cat(xs), torch.as_tensor(np.concatenate(ys), dtype=torch.long),
                   {k: np.concatenate(v).astype(np.int64) for k, v in meta.items()})


def froc_metrics(labels, probs, meta) -> dict[str, float]:
    """FROC of the candidates over the images: ``froc`` = its normalised partial area to 1 FP per image, and the
    sensitivity at each of ``FP_PER_IMAGE``."""
    out = detection_metrics(labels, probs, meta, FP_PER_IMAGE)
    return {"froc": out.pop("froc_pauc"), **out}


# ---------------------------------------------------------------------------------- segmentation

def generate_shape_masks(n: int, size: int, seed: int) -> RawSet:
    """``n`` grey images of varying aspect, each with one shape (disc, square or cross) and its label map
    (1 = the shape, 0 = background): an image/mask folder in memory."""
    raw = generate_shapes(n, size, seed)
    masks = [(np.asarray(im[0]) > 0.55).astype(np.int64) for im in _shapes_clean(n, size, seed)]
    return RawSet("segmentation", raw.images, np.asarray([int(m.any()) for m in masks]), raw.names,
                  classes=("0", "1"), masks=masks)


def _shapes_clean(n: int, size: int, seed: int) -> list[torch.Tensor]:
    """The shapes of ``generate_shapes(n, size, seed)`` without noise (the same draws), for their masks."""
    rng = np.random.default_rng([int(seed), 1789])
    out = []
    for k in np.arange(n) % len(SHAPES):
        h, w = size, max(8, int(size * rng.uniform(0.6, 1.6)))
        rng.normal(size=(h, w))  # the noise draw of generate_shapes, keeping the streams in step
        out.append(torch.as_tensor(0.35 + 0.35 * _shape_mask(int(k), h, w, rng), dtype=torch.float32)[None])
    return out


def image_masks(raw: RawSet, split: str, size: int, seed: int, train_raw=None, resize: str = "resize") -> Samples:
    """Whole images and their label maps, fitted to ``size`` x ``size`` by the ``resize`` policy (the same
    geometry; padding is not annotated: ``IGNORE``)."""
    if raw.masks is None:
        raise ConfigError("the generic segmentation app needs label masks (image-mask-folders or datalist-json)")
    xs, ms = [], []
    for i in range(len(raw)):
        xs.append(to_uint8(to_rgb(fit_square(as_float01(raw.image(i)), size, resize))))
        m = torch.as_tensor(raw.masks[i], dtype=torch.float32)[None]
        ms.append(fit_square(m, size, resize, label=True, fill=IGNORE)[0].round().to(torch.uint8))
    empty = torch.zeros(0, size, size, dtype=torch.uint8)
    return Samples(x=torch.stack(xs) if xs else torch.zeros(0, 3, size, size, dtype=torch.uint8),
                   y=torch.as_tensor(raw.labels), meta={"unit": np.arange(len(raw))},
                   mask=torch.stack(ms) if ms else empty)


def write_mask_folder(root, n: int, size: int, seed: int, instances: bool = False) -> "Path":
    """A generated image/mask folder on disk (``root/images``, ``root/masks``, PNG; for tests, benches and a first
    try of ``--data``): each grey image holds a disc (class 1) and a square (class 2) on noise, its mask the
    two classes (8-bit). ``instances``: masks of 6-9 small discs instead, each its own label (1, 2, ...), as an
    instance-segmentation tool writes them (16-bit)."""
    from pathlib import Path

    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([int(seed), 2025])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for i in range(n):
        mask = np.zeros((size, size), dtype=np.int64)
        if instances:
            for label in range(1, int(rng.integers(6, 10))):
                r = size * 0.05
                for _ in range(50):  # a free spot: blobs never touch, so each label is one blob
                    cy, cx = rng.uniform(r + 1, size - r - 1, size=2)
                    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
                    grown = (yy - cy) ** 2 + (xx - cx) ** 2 <= (r + 2) ** 2
                    if not (mask[grown] > 0).any():
                        mask[disc] = label
                        break
        else:
            r = rng.uniform(0.12, 0.2) * size
            cy, cx = rng.uniform(r, size / 2 - 1), rng.uniform(r, size - r)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2] = 1
            s = rng.uniform(0.1, 0.18) * size
            cy, cx = rng.uniform(size / 2 + s, size - s), rng.uniform(s, size - s)
            mask[(np.abs(yy - cy) <= s) & (np.abs(xx - cx) <= s)] = 2
        img = rng.normal(0.3, 0.08, size=(size, size)) + 0.25 * (mask > 0) + 0.15 * (mask == 2)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(root / "images" / f"img{i:03d}.png")
        if instances:
            Image.fromarray(mask.astype(np.uint16)).save(root / "masks" / f"img{i:03d}.png")
        else:
            Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"img{i:03d}.png")
    return root
