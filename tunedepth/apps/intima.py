"""Synthetic carotid ultrasound (far wall, longitudinal B-mode) for intima-media thickness measurement.

Each 96x96 image shows, top to bottom: near-wall tissue, the dark lumen (with blood echoes of varying
strength), a thin bright intima line at the lumen-intima (LI) interface, the hypoechoic media, the bright
adventitia starting at the media-adventitia (MA) interface, and deeper tissue. Interfaces are smooth
curves (tilt + undulation), the intima-media thickness 0.5-0.95 mm at 55-75 um per pixel (about 7-17 px),
shared by the two images of a patient. Speckle is Rayleigh noise shaped by an anisotropic point-spread
function; some images have acoustic shadowing or a faint intima. Ground truth: LI and MA rows per column.

Samples are per-pixel patches (3 classes: background, LI interface, MA interface), as in the paper. For
training, a few columns per image give one LI pixel, one MA pixel and three background pixels (lumen,
inside the media, below MA). For evaluation, every pixel of a region of interest (a band of rows around
the wall, like a user-drawn ROI) in 6 columns is classified; per column the LI boundary is the row of
highest P(LI), the MA boundary the row of highest P(MA).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from tunedepth.apps.colonoscopy import _gaussian_blur
from tunedepth.apps.patches import as_float01, crop_patches, resize_2d, to_rgb, to_uint8
from tunedepth.data.units import IGNORE, RawSet, Samples

SHAPE = (96, 96)
TRAIN_COLUMNS = 8
EVAL_COLUMNS = 6
ROI_MARGIN = (3, 8)  # the ROI extends this many pixels (random in range) above LI and below MA
PATCH_RANGE = (16, 96)  # native patch side: 3x the median training thickness, clipped to this range


def _u(g, shape, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def _step(y, edge, width=0.6):
    return torch.sigmoid((y - edge) / width)


def generate(n: int, size: int, seed: int):
    """``n`` ultrasound images (1, 96, 96) in [0, 1] with LI/MA rows per column, as a segmentation RawSet."""

    g = torch.Generator().manual_seed(int(seed) * 15485863 + 3)
    h, w = SHAPE
    patient = torch.arange(n) // 2
    n_pat = int(patient.max()) + 1
    spacing = _u(g, n_pat, 55, 75)[patient]  # um per pixel
    imt_px = (_u(g, n_pat, 500, 950)[patient] / spacing) * _u(g, n, 0.92, 1.08)
    x = torch.arange(w, dtype=torch.float32)[None, :]
    y = torch.arange(h, dtype=torch.float32)[None, :, None]
    col = lambda t: t[:, None]  # noqa: E731
    li = (col(_u(g, n, 42, 54)) + col(_u(g, n, -0.12, 0.12)) * (x - w / 2)
          + col(_u(g, n, 0, 2.5)) * torch.sin(2 * math.pi * x / col(_u(g, n, 60, 160)) + col(_u(g, n, 0, 6.3))))
    ma = li + col(imt_px) * (1 + 0.08 * torch.sin(2 * math.pi * x / col(_u(g, n, 40, 120)) + col(_u(g, n, 0, 6.3))))
    lumen_top = li - col(_u(g, n, 24, 34))
    adv = col(_u(g, n, 6, 12))
    li3, ma3, top3 = li[:, None, :], ma[:, None, :], lumen_top[:, None, :]
    e = lambda t: t[:, None, None]  # noqa: E731
    near, lumen, intima = e(_u(g, n, 0.45, 0.65)), e(_u(g, n, 0.02, 0.16)), e(_u(g, n, 0.25, 0.85))
    media, advent, deep = e(_u(g, n, 0.10, 0.28)), e(_u(g, n, 0.70, 1.00)), e(_u(g, n, 0.30, 0.50))
    echo = near * (1 - _step(y, top3, 1.0))
    echo = echo + lumen * _step(y, top3, 1.0) * (1 - _step(y, li3))
    echo = echo + media * _step(y, li3) * (1 - _step(y, ma3))
    echo = echo + intima * torch.exp(-(((y - li3 - 0.9) / 0.9) ** 2))  # thin bright intima just below LI
    echo = echo + advent * _step(y, ma3) * (1 - _step(y, ma3 + adv[:, :, None], 1.5))
    echo = echo + deep * _step(y, ma3 + adv[:, :, None], 1.5) * torch.exp(
        -(y - ma3 - adv[:, :, None]).clamp(min=0) / 40
    )
    # acoustic shadow in some images: a band of columns attenuated below the near wall
    shadow = torch.rand(n, generator=g) < 0.3
    c0, cw = _u(g, n, 0, w - 16), _u(g, n, 6, 16)
    band = ((x >= col(c0)) & (x < col(c0 + cw))).float()[:, None, :] * shadow.float()[:, None, None]
    echo = echo * (1 - band * e(_u(g, n, 0.4, 0.7)) * _step(y, top3 + 4, 2.0))
    # speckle: complex Gaussian field through an anisotropic PSF, envelope, normalised to unit mean
    field = torch.complex(torch.randn(n, 1, h, w, generator=g), torch.randn(n, 1, h, w, generator=g))
    re = _aniso_blur(field.real, 0.7, 1.6)
    im = _aniso_blur(field.imag, 0.7, 1.6)
    env = torch.sqrt(re**2 + im**2)[:, 0]
    env = env / env.mean(dim=(1, 2), keepdim=True)
    strength = e(_u(g, n, 0.6, 1.0))
    img = _gaussian_blur(echo[:, None], torch.full((n,), 0.6))[:, 0] * env**strength
    img = torch.log1p(12 * img.clamp(min=0)) / math.log1p(12) * e(_u(g, n, 0.85, 1.15))
    img = (img + 0.02 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    bounds = [np.stack([li[i].numpy(), ma[i].numpy()]).astype(np.float64) for i in range(n)]
    margins = torch.randint(ROI_MARGIN[0], ROI_MARGIN[1] + 1, (n, 2), generator=g).numpy()
    return RawSet("segmentation", to_uint8(img[:, None]), np.zeros(n, dtype=np.int64),
                  [f"image{i:04d}" for i in range(n)],
                  groups=np.asarray([f"patient{int(p):04d}" for p in patient], dtype=object),
                  classes=("background", "lumen-intima", "media-adventitia"), boundaries=bounds,
                  spacing_um=spacing.numpy().astype(np.float64), extra={"roi_margin": margins})


def _aniso_blur(x: torch.Tensor, sigma_y: float, sigma_x: float) -> torch.Tensor:
    def kernel(s):
        r = int(math.ceil(3 * s))
        t = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-(t**2) / (2 * s * s))
        return k / k.sum(), r

    ky, ry = kernel(sigma_y)
    kx, rx = kernel(sigma_x)
    x = F.conv2d(F.pad(x, (rx, rx, 0, 0), mode="circular"), kx[None, None, None, :])
    return F.conv2d(F.pad(x, (0, 0, ry, ry), mode="circular"), ky[None, None, :, None])


def patch_side(train_raw) -> int:
    """Native patch side: 3x the median intima-media thickness of the training images, clipped."""
    thick = [b[1] - b[0] for b in (train_raw.boundaries or [])]
    values = np.concatenate([t[np.isfinite(t)] for t in thick]) if thick else np.zeros(0)
    med = float(np.median(values)) if values.size else 10.0
    return int(np.clip(round(3 * med), *PATCH_RANGE))


def _annotated_columns(bounds: np.ndarray, side: int) -> np.ndarray:
    ok = np.flatnonzero(np.isfinite(bounds).all(axis=0))
    inner = ok[(ok >= side // 4) & (ok < bounds.shape[1] - side // 4)]
    return inner if inner.size else ok


def interface_patches(raw, split: str, size: int, seed: int, train_raw=None):
    """Per-pixel patches with labels 0 background, 1 LI interface, 2 MA interface (see module docstring)."""

    side = patch_side(train_raw if train_raw is not None else raw)
    rng = np.random.default_rng([int(seed), 202, ("train", "val", "test").index(split)])
    xs, ys = [], []
    meta: dict[str, list] = {k: [] for k in ("unit", "column", "row", "li_true", "ma_true", "spacing_um")}
    for unit in range(len(raw)):
        bounds = raw.boundaries[unit]
        image = raw.image(unit)
        h = image.shape[-2]
        cols_ok = _annotated_columns(bounds, side)
        if cols_ok.size == 0:
            continue
        li_t, ma_t = bounds[0], bounds[1]
        if split == "train":
            cols = np.sort(rng.choice(cols_ok, size=min(TRAIN_COLUMNS, cols_ok.size), replace=False))
            rows_l, cols_l, labs = [], [], []
            for c in cols:
                li, ma = int(round(li_t[c])), int(round(ma_t[c]))
                bg = [li - int(rng.integers(2, 9)), ma + int(rng.integers(2, 11))]
                bg.append(int(rng.integers(li + 2, ma - 1)) if ma - li >= 4 else li - int(rng.integers(9, 16)))
                for r, lab in ((li, 1), (ma, 2), *((b, 0) for b in bg)):
                    rows_l.append(min(max(r, 0), h - 1))
                    cols_l.append(c)
                    labs.append(lab)
            rows_a, cols_a, labs_a = np.array(rows_l), np.array(cols_l), np.array(labs)
            flip = (np.arange(rows_a.size) // 5) % 2  # every other column mirrored left-right
        else:
            cols = cols_ok[np.unique(np.linspace(0, cols_ok.size - 1, EVAL_COLUMNS).round().astype(int))]
            m = (
                raw.extra["roi_margin"][unit]
                if "roi_margin" in raw.extra
                else rng.integers(*ROI_MARGIN, size=2, endpoint=True)
            )
            top = max(int(math.floor(np.nanmin(li_t[cols_ok]))) - int(m[0]), 0)
            bottom = min(int(math.ceil(np.nanmax(ma_t[cols_ok]))) + int(m[1]), h - 1)
            rows = np.arange(top, bottom + 1)
            rows_a, cols_a = np.repeat(rows[None, :], cols.size, 0).ravel(), np.repeat(cols, rows.size)
            labs_a = np.where(rows_a == np.round(li_t[cols_a]), 1, np.where(rows_a == np.round(ma_t[cols_a]), 2, 0))
            flip = np.zeros(rows_a.size, dtype=int)
        patches = crop_patches(image, cols_a, rows_a, np.full(rows_a.size, side), flip, None, out_size=size,
                               padding_mode="border")
        xs.append(to_uint8(to_rgb(patches)))
        ys.append(labs_a)
        meta["unit"].append(np.full(rows_a.size, unit))
        meta["column"].append(cols_a)
        meta["row"].append(rows_a)
        meta["li_true"].append(li_t[cols_a])
        meta["ma_true"].append(ma_t[cols_a])
        meta["spacing_um"].append(np.full(rows_a.size, float(raw.spacing_um[unit])))
    if not xs:
        return Samples(torch.zeros(0, 3, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long),
                       {k: np.zeros(0) for k in meta})
    out = {k: np.concatenate(v) for k, v in meta.items()}
    for k in ("unit", "column", "row"):
        out[k] = out[k].astype(np.int64)
    return Samples(torch.cat(xs), torch.as_tensor(np.concatenate(ys), dtype=torch.long), out)


# ------------------------------------------------------------------ whole-image masks (intima-media-seg)
# The alternative head of the paper's intima-media task: a segmentation network (monai-unet) reads the whole
# image and labels every pixel 0 = above the lumen-intima interface (lumen, near wall), 1 = intima-media
# complex (rows LI..MA of the column, inclusive), 2 = below the media-adventitia interface. Per column the
# interfaces are the two class transitions (``tunedepth.metrics.mask_boundaries``), scored with the same
# per-column boundary error in um and intima-media Dice as the patch head.

MASK_CLASSES = ("above-LI", "intima-media", "below-MA")


def image_masks(raw, split: str, size: int, seed: int, train_raw=None):
    """Each unit as one sample: the image resized to ``size`` x ``size`` (3 channels) and its class mask.

    Input column j shows original column ``floor((j + 0.5) * W / size)``; input row i is centred on original
    row ``y_i = (i + 0.5) * H / size - 0.5`` and is class 1 where ``round(LI) - 0.5 <= y_i < round(MA) + 0.5``
    (rows LI..MA as the patch head labels them), 0 above, 2 below; columns without annotation are ``IGNORE``.
    meta: ``li_true``/``ma_true`` (N, size) original rows per input column (NaN = not annotated), ``row_scale``
    (original rows per input row, to map predicted rows back) and ``spacing_um``.
    """

    xs, masks = [], []
    meta: dict[str, list] = {k: [] for k in ("unit", "li_true", "ma_true", "row_scale", "spacing_um")}
    for unit in range(len(raw)):
        image = as_float01(raw.image(unit))
        h, w = image.shape[-2:]
        bounds = np.asarray(raw.boundaries[unit], dtype=np.float64)
        cols = np.minimum(((np.arange(size) + 0.5) * w / size).astype(np.int64), w - 1)
        li, ma = bounds[0][cols], bounds[1][cols]
        y = (np.arange(size) + 0.5) * h / size - 0.5
        ok = np.isfinite(li) & np.isfinite(ma)
        top = np.where(ok, np.round(np.nan_to_num(li)) - 0.5, 0.0)
        bottom = np.where(ok, np.round(np.nan_to_num(ma)) + 0.5, 0.0)
        mask = np.where(y[:, None] < top[None, :], 0, np.where(y[:, None] < bottom[None, :], 1, 2))
        mask[:, ~ok] = IGNORE
        xs.append(to_uint8(to_rgb(resize_2d(image, size))))
        masks.append(torch.as_tensor(mask.astype(np.uint8)))
        meta["unit"].append(unit)
        meta["li_true"].append(li)
        meta["ma_true"].append(ma)
        meta["row_scale"].append(h / size)
        meta["spacing_um"].append(float(raw.spacing_um[unit]))
    if not xs:
        return Samples(torch.zeros(0, 3, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long),
                       {"unit": np.zeros(0, dtype=np.int64)}, mask=torch.zeros(0, size, size, dtype=torch.uint8))
    out = {k: np.asarray(v, dtype=np.int64 if k == "unit" else np.float64) for k, v in meta.items()}
    return Samples(torch.stack(xs), torch.zeros(len(xs), dtype=torch.long), out, mask=torch.stack(masks))


_DICE_CE = None


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MONAI's DiceCELoss (softmax, one-hot target) of per-pixel logits (N, C, H, W) and class ids (N, H, W).

    Pixels marked ``IGNORE`` (columns without annotation) count for neither term: MONAI's MaskedDiceLoss plus
    cross-entropy with ``ignore_index``, which equals DiceCELoss when nothing is ignored.
    """
    from monai.losses import DiceCELoss, MaskedDiceLoss


    global _DICE_CE
    target = target.long()
    ignored = target == IGNORE
    if not bool(ignored.any()):
        if _DICE_CE is None:
            _DICE_CE = DiceCELoss(to_onehot_y=True, softmax=True)
        return _DICE_CE(logits, target[:, None])
    valid = ~ignored
    dice = MaskedDiceLoss(to_onehot_y=True, softmax=True)(logits, target.masked_fill(ignored, 0)[:, None],
                                                           mask=valid[:, None].float())
    return dice + F.cross_entropy(logits, target, ignore_index=IGNORE)
