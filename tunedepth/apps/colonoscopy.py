"""Synthetic colonoscopy frames: informative (readable mucosa) vs non-informative (ruined) frames.

Every frame is textured mucosa with folds, vessels, a dark lumen and vignetting. Each frame has a latent
severity s in [0, 1] and one main degradation (blur, specular glare, darkness or water) of strength s,
plus a mild secondary one; frames with s < 0.5 are informative (label 1), the rest non-informative (0).
Frames near s = 0.5 are genuinely ambiguous, so the task is neither trivial nor impossible.

Deterministic from ``seed``; vectorised in torch (a few thousand 64x64 frames take about a second).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from tunedepth.apps.patches import as_float01, resize_2d, to_rgb, to_uint8
from tunedepth.data.units import RawSet, Samples

DEGRADATIONS = ("blur", "glare", "dark", "water")


def _curves(xx, yy, n, rand, count, width_range, amp_range, freq_range):
    """Sum of ``count`` sinusoidal curves per image, each a Gaussian ridge of the given width."""
    out = torch.zeros(n, 1, *xx.shape[-2:])
    for _ in range(count):
        theta = rand(n) * math.pi
        u = xx * torch.cos(theta)[:, None, None, None] + yy * torch.sin(theta)[:, None, None, None]
        v = -xx * torch.sin(theta)[:, None, None, None] + yy * torch.cos(theta)[:, None, None, None]
        amp = _lerp(amp_range, rand(n))[:, None, None, None]
        freq = _lerp(freq_range, rand(n))[:, None, None, None]
        phase = (rand(n) * 2 * math.pi)[:, None, None, None]
        offset = ((rand(n) * 2 - 1) * 0.8)[:, None, None, None]
        width = _lerp(width_range, rand(n))[:, None, None, None]
        d = v - (amp * torch.sin(freq * math.pi * u + phase) + offset)
        out = out + torch.exp(-((d / width) ** 2))
    return out


def _lerp(rng: tuple[float, float], t: torch.Tensor) -> torch.Tensor:
    return rng[0] + (rng[1] - rng[0]) * t


def _gaussian_blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own sigma (pixels), via one grouped convolution."""
    n, c, h, w = img.shape
    radius = int(math.ceil(3 * float(sigma.max())))
    t = torch.arange(-radius, radius + 1, dtype=img.dtype)
    k1 = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None].clamp_min(1e-3) ** 2))
    k1 = k1 / k1.sum(dim=1, keepdim=True)  # (n, K)
    k1 = k1.repeat_interleave(c, dim=0)  # (n*c, K)
    x = F.pad(img.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k1[:, None, None, :], groups=n * c)
    x = F.conv2d(x, k1[:, None, :, None], groups=n * c)
    return x.reshape(n, c, h, w)


def _blobs(xx, yy, n, rand, counts: torch.Tensor, radius_range):
    """Union of up to max(counts) Gaussian blobs per image (image i gets counts[i] of them)."""
    out = torch.zeros(n, 1, *xx.shape[-2:])
    for j in range(int(counts.max()) if n else 0):
        on = (counts > j).float()[:, None, None, None]
        cx = (rand(n) * 2 - 1)[:, None, None, None]
        cy = (rand(n) * 2 - 1)[:, None, None, None]
        r = _lerp(radius_range, rand(n))[:, None, None, None]
        out = torch.maximum(out, on * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / r**2))
    return out


CHUNK = 256


def render_frames(n: int, size: int = 64, seed: int = 0,
                  max_severity: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(images uint8 (n,3,size,size), labels int64 (n,), severity float (n,))``; label 1 = informative.

    ``max_severity`` < 1 renders mostly readable frames (the background of the polyp-detection app).
    Frames are rendered in fixed-size chunks, each from its own generator, which keeps the work cache-sized.
    """
    if n < 1:
        raise ValueError(f"need at least one frame, got n={n}")
    parts = [_render_chunk(min(CHUNK, n - start), size, (int(seed), start // CHUNK), max_severity)
             for start in range(0, n, CHUNK)]
    return tuple(torch.cat(p) for p in zip(*parts))  # type: ignore[return-value]


def _render_chunk(n: int, size: int, key: tuple[int, int], max_severity: float = 1.0):
    g = torch.Generator().manual_seed(key[0] * 1_000_003 + key[1])

    def rand(*shape):
        return torch.rand(*shape, generator=g)

    lin = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    yy, xx = yy[None, None], xx[None, None]

    base = torch.tensor([0.80, 0.42, 0.36]) + (rand(n, 3) - 0.5) * torch.tensor([0.16, 0.14, 0.12])
    texture = F.interpolate(
        torch.randn(n, 1, 6, 6, generator=g), size=(size, size), mode="bicubic", align_corners=False
    )
    img = base[:, :, None, None] * (1 + 0.08 * texture)
    folds = _curves(xx, yy, n, rand, 3, (0.05, 0.10), (0.05, 0.35), (0.5, 2.0))
    img = img * (1 - 0.30 * folds.clamp(max=1))
    vessels = _curves(xx, yy, n, rand, 5, (0.018, 0.035), (0.02, 0.15), (1.5, 4.0)).clamp(max=1)
    img = img * (1 - 0.45 * vessels * torch.tensor([0.35, 1.0, 1.0])[None, :, None, None])
    cx, cy = ((rand(n) * 1.2 - 0.6)[:, None, None, None] for _ in range(2))
    r = (0.15 + 0.25 * rand(n))[:, None, None, None]
    img = img * (1 - 0.8 * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / r**2))
    img = img * (1 - 0.18 * (xx**2 + yy**2))

    severity = rand(n) * max_severity
    labels = (severity < 0.5).long()
    main = torch.randint(0, len(DEGRADATIONS), (n,), generator=g)
    second = torch.randint(0, len(DEGRADATIONS), (n,), generator=g)
    mild = 0.35 * rand(n)  # secondary degradation, always mild
    strength = {
        k: severity * (main == i).float() + mild * (second == i).float() * (main != i).float()
        for i, k in enumerate(DEGRADATIONS)
    }

    s = strength["blur"]
    img = _gaussian_blur(img, 0.3 + 2.6 * s**1.3)
    s = strength["glare"]
    glare = _blobs(xx, yy, n, rand, torch.round(1 + 18 * s**2).long(), (0.03, 0.12))
    img = img + (1.15 - img) * (glare * (0.6 + 0.4 * s[:, None, None, None])).clamp(max=1)
    s = strength["dark"][:, None, None, None]
    img = img * (1 - 0.8 * s) + 0.04 * s * torch.randn(img.shape, generator=g)
    s = strength["water"][:, None, None, None]
    water = torch.tensor([0.35, 0.52, 0.58])[None, :, None, None] * (1 + 0.1 * torch.sin(9 * xx + 5 * yy))
    img = img * (1 - 0.85 * s) + water * 0.85 * s
    img = img + 0.02 * torch.randn(img.shape, generator=g)

    images = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels, severity


# ------------------------------------------------------------------------------ the app's samples

FRAMES_PER_VIDEO = 10
CROP_MARGIN = 9 / 8  # frames are rendered/resized to 9/8 of the network input; crops cut the input size


def generate(n: int, size: int, seed: int):
    """``n`` synthetic frames at 9/8 of ``size`` as a RawSet; consecutive blocks of 10 frames form a video."""

    full = round(size * CROP_MARGIN)
    images, labels, _ = render_frames(n, full, seed)
    names = [f"frame{i:05d}" for i in range(n)]
    return RawSet("classification", images, labels.numpy(), names,
                  groups=np.asarray([f"video{i // FRAMES_PER_VIDEO:04d}" for i in range(n)], dtype=object),
                  classes=("non-informative", "informative"))


def frame_crops(raw, split: str, size: int, seed: int, train_raw=None):
    """Three crops per frame: the centre, the top-left corner mirrored left-right, the bottom-right corner
    mirrored top-bottom. A frame's score is the mean over its crops (the issue's frame-level protocol).

    Frames of any size/channels (real images) are first resized to 9/8 of ``size`` with MONAI.
    """

    full = round(size * CROP_MARGIN)
    if isinstance(raw.images, torch.Tensor) and tuple(raw.images.shape[1:]) == (3, full, full):
        frames = raw.images if raw.images.dtype == torch.uint8 else to_uint8(raw.images)
    elif isinstance(raw.images, torch.Tensor):  # a stack of equal-size images (e.g. MedMNIST): batched resize
        frames = torch.cat([
            to_uint8(to_rgb(F.interpolate(as_float01(raw.images[i : i + 1024]), size=(full, full), mode="bilinear",
                                          antialias=True, align_corners=False)))
            for i in range(0, len(raw), 1024)
        ]) if len(raw) else torch.zeros(0, 3, full, full, dtype=torch.uint8)
    else:
        frames = torch.stack([to_uint8(to_rgb(resize_2d(as_float01(im), full))) for im in raw.images]) \
            if len(raw) else torch.zeros(0, 3, full, full, dtype=torch.uint8)
    off = full - size
    c = off // 2
    crops = [
        frames[:, :, c : c + size, c : c + size],
        frames[:, :, :size, :size].flip(-1),
        frames[:, :, off:, off:].flip(-2),
    ]
    k = len(crops)
    x = torch.stack(crops, dim=1).reshape(-1, 3, size, size)
    n = len(raw)
    return Samples(
        x=x.contiguous(), y=torch.as_tensor(raw.labels).repeat_interleave(k),
        meta={"unit": np.repeat(np.arange(n), k), "crop": np.tile(np.arange(k), n)},
    )
