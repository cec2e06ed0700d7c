"""Synthetic polyp detection: candidates on colonoscopy-like frames, patches at 3 scales around each.

Frames are the colonoscopy renderer's mucosa (mostly readable: degradation severity <= 0.35) at twice the
network input. Videos of 8 frames share one polyp's appearance (60% of videos hold a polyp, visible in
~85% of their frames, at a new position and pose in each). A polyp is a lit dome: shading that brightens
its top, a shadowed rim, sometimes a specular highlight. Every frame also holds 1-3 *mimics* (folds seen
end-on, bubbles, flat lesion-like patches) whose shading, rim and elongation overlap the polyps' ranges,
and one background candidate. The candidate generator reports the polyp (jittered centre) and every mimic
and background spot; the network classifies each candidate's patches, and a candidate's score is the mean
over its patches.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from tunedepth.apps.colonoscopy import _gaussian_blur, render_frames
from tunedepth.apps.patches import as_float01, crop_patches, to_rgb, to_uint8
from tunedepth.data.units import RawSet, Samples

FRAME_SCALE = 2  # frames at 2x the network input
FRAMES_PER_VIDEO = 8
SCALES = (1.5, 2.25, 3.0)  # patch side = candidate size x scale: the lesion, some context, more context
SHIFT = 0.12  # shifted patches move by up to this fraction of their side
DEFAULT_SIZE = 0.15  # candidate size (pixels) when the data gives none: this fraction of the shorter side
MIMICS_MAX = 3


def _u(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _blob(img, cx, cy, r, aspect, theta, dome, edge, ring, spec, tint, on):
    """Composite one elliptical blob onto each frame of ``img`` (B, 3, F, F) where ``on``; params are (B,).

    Only a window around each blob is computed: gathered from the frame, shaded, scattered back.
    """
    b, c, fh, fw = img.shape
    a = torch.sqrt(aspect)
    half = int(math.ceil(float((r * a).max()) * 1.4)) + 1
    offs = torch.arange(-half, half + 1)
    lx = cx.round().long()[:, None] + offs[None, :]  # (B, W) frame columns of the window
    ly = cy.round().long()[:, None] + offs[None, :]
    valid = ((lx >= 0) & (lx < fw))[:, None, :] & ((ly >= 0) & (ly < fh))[:, :, None]  # (B, W, W)
    flat = torch.where(valid, ly.clamp(0, fh - 1)[:, :, None] * fw + lx.clamp(0, fw - 1)[:, None, :], fh * fw)
    index = flat.reshape(b, 1, -1).expand(b, c, -1)
    frame = torch.cat([img.reshape(b, c, -1), torch.zeros(b, c, 1)], dim=2)  # one spare slot for off-frame pixels
    patch = frame.gather(2, index).reshape(b, c, *valid.shape[1:])
    e = lambda t: t[:, None, None, None]  # noqa: E731
    dx = lx.float()[:, None, None, :] - e(cx)
    dy = ly.float()[:, None, :, None] - e(cy)
    cos, sin = torch.cos(e(theta)), torch.sin(e(theta))
    u = (dx * cos + dy * sin) / (e(r) * e(a))
    v = (-dx * sin + dy * cos) / (e(r) / e(a))
    d = torch.sqrt(u**2 + v**2)
    inside = torch.sigmoid((1 - d) / 0.06)
    h = torch.sqrt((1 - d**2).clamp(min=0))
    shading = 1 + e(dome) * (0.45 * h - 0.25 - 0.30 * (dx + dy) / (math.sqrt(2) * e(r)) * h)
    out = patch + inside * (patch * tint[:, :, None, None] * shading - patch)
    out = out * (1 - e(edge) * 0.5 * torch.exp(-(((d - 1) / 0.13) ** 2)))
    out = out + (1 - out) * e(ring) * 0.55 * torch.exp(-(((d - 0.9) / 0.08) ** 2))
    highlight = e(spec) * torch.exp(-((u + 0.3) ** 2 + (v + 0.3) ** 2) / 0.015)
    out = out + (1.1 - out) * highlight.clamp(max=1)
    out = patch + e(on.float()) * (out - patch)
    frame.scatter_(2, index, out.reshape(b, c, -1))
    return frame[:, :, :-1].reshape(b, c, fh, fw)


def generate(n: int, size: int, seed: int):
    """``n`` frames (``FRAME_SCALE * size`` pixels) with their candidates, as a detection RawSet."""

    fsize = FRAME_SCALE * size
    frames, _, _ = render_frames(n, fsize, seed, max_severity=0.35)
    g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    video = torch.arange(n) // FRAMES_PER_VIDEO
    n_vid = int(video.max()) + 1
    # per-video polyp appearance
    has = torch.rand(n_vid, generator=g) < 0.6
    v_r = _u(g, n_vid, 0.05, 0.10) * fsize
    v_aspect, v_dome, v_edge = _u(g, n_vid, 1.0, 1.5), _u(g, n_vid, 0.3, 1.0), _u(g, n_vid, 0.2, 1.0)
    v_spec = (torch.rand(n_vid, generator=g) < 0.5).float() * _u(g, n_vid, 0.3, 0.9)
    v_tint = torch.stack([_u(g, n_vid, 0.95, 1.15), _u(g, n_vid, 0.8, 1.05), _u(g, n_vid, 0.8, 1.05)], 1)
    visible = has[video] & (torch.rand(n, generator=g) < 0.85)
    img = as_float01(frames)
    rows = []

    def place(lo=0.18, hi=0.82):
        return _u(g, n, lo, hi) * (fsize - 1), _u(g, n, lo, hi) * (fsize - 1)

    # the polyp
    cx, cy = place()
    r = v_r[video] * _u(g, n, 0.85, 1.15)
    img = _blob(img, cx, cy, r, v_aspect[video], _u(g, n, 0, math.pi), v_dome[video], v_edge[video],
                torch.zeros(n), v_spec[video], v_tint[video], visible)
    jx, jy = torch.randn(n, generator=g) * 0.15 * r, torch.randn(n, generator=g) * 0.15 * r
    for i in torch.nonzero(visible).flatten().tolist():
        rows.append((i, float(cx[i] + jx[i]), float(cy[i] + jy[i]), 1, 2 * float(r[i])))
    # mimics: overlapping ranges of dome shading and rim, more elongated, sometimes a bubble's bright ring
    n_mimics = torch.randint(1, MIMICS_MAX + 1, (n,), generator=g)
    for j in range(MIMICS_MAX):
        on = (n_mimics > j).float()
        mx, my = place()
        mr = _u(g, n, 0.04, 0.11) * fsize
        ring = (torch.rand(n, generator=g) < 0.35).float() * _u(g, n, 0.3, 1.0)
        tint = torch.stack([_u(g, n, 0.9, 1.15), _u(g, n, 0.8, 1.1), _u(g, n, 0.75, 1.1)], 1)
        img = _blob(img, mx, my, mr, _u(g, n, 1.0, 3.0), _u(g, n, 0, math.pi), _u(g, n, 0.0, 0.55),
                    _u(g, n, 0.0, 0.6), ring, (torch.rand(n, generator=g) < 0.3).float() * _u(g, n, 0.2, 0.8),
                    tint, on)
        for i in torch.nonzero(on).flatten().tolist():
            rows.append((i, float(mx[i]), float(my[i]), 0, 2 * float(mr[i])))
    # one background candidate per frame
    bx, by = place(0.12, 0.88)
    bs = _u(g, n, 0.08, 0.22) * fsize
    for i in range(n):
        rows.append((i, float(bx[i]), float(by[i]), 0, float(bs[i])))
    # camera: mild defocus and sensor noise over everything
    img = _gaussian_blur(img, _u(g, n, 0.3, 1.3))
    img = img + 0.02 * torch.randn(img.shape, generator=g)
    cand = pd.DataFrame(rows, columns=["unit", "x", "y", "label", "size"]).sort_values("unit", kind="stable")
    cand["lesion"] = np.where(cand["label"].to_numpy() == 1, np.arange(len(cand)), -1)
    labels = np.zeros(n, dtype=np.int64)
    labels[cand.loc[cand.label == 1, "unit"].to_numpy()] = 1
    return RawSet("detection", to_uint8(img), labels, [f"frame{i:05d}" for i in range(n)],
                  groups=np.asarray([f"video{int(v):04d}" for v in video], dtype=object),
                  classes=("background", "polyp"), candidates=cand.reset_index(drop=True))


def candidate_patches(raw, split: str, size: int, seed: int, train_raw=None):
    """Six patches per candidate: at each of 3 scales, one centred and one shifted and mirrored.

    Patch side = candidate size x (1.5, 2.25, 3); without a size, 15% of the frame's shorter side.
    Deterministic from ``seed`` and the split.
    """

    cand = raw.candidates
    rng = np.random.default_rng([int(seed), 101, ("train", "val", "test").index(split)])
    xs, ys, metas = [], [], {"unit": [], "candidate": [], "lesion": [], "scale": [], "missed_lesions": []}
    k = 2 * len(SCALES)
    for unit, rows in cand.groupby("unit", sort=True):
        image = raw.image(int(unit))
        h, w = image.shape[-2:]
        base = rows["size"].to_numpy(dtype=np.float64) if "size" in rows else np.full(len(rows), np.nan)
        base = np.where(np.isfinite(base) & (base > 0), base, DEFAULT_SIZE * min(h, w))
        m = len(rows)
        side = np.outer(base, np.repeat(SCALES, 2)).ravel()  # (m * 6,)
        shift = rng.uniform(-SHIFT, SHIFT, size=(m, k, 2)) * np.array([0, 1] * len(SCALES))[None, :, None]
        cx = (rows["x"].to_numpy()[:, None] + shift[..., 0] * side.reshape(m, k)).ravel()
        cy = (rows["y"].to_numpy()[:, None] + shift[..., 1] * side.reshape(m, k)).ravel()
        flip_h = np.tile(np.array([0, 1] * len(SCALES)), m)
        flip_v = (np.tile(np.array([0, 1] * len(SCALES)), m) * (rng.random(m * k) < 0.5))
        patches = crop_patches(image, cx, cy, side, flip_h, flip_v, out_size=size)
        xs.append(to_uint8(to_rgb(patches)))
        ys.append(np.repeat(rows["label"].to_numpy(), k))
        metas["unit"].append(np.full(m * k, unit))
        metas["candidate"].append(np.repeat(rows.index.to_numpy(), k))
        lesion = rows["lesion"].to_numpy() if "lesion" in rows else np.full(m, -1)
        metas["lesion"].append(np.repeat(lesion, k))
        metas["scale"].append(np.tile(np.repeat(np.arange(len(SCALES)), 2), m))
        metas["missed_lesions"].append(np.repeat(rows["missed"].to_numpy() if "missed" in rows else np.zeros(m), k))
    if not xs:
        return Samples(torch.zeros(0, 3, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long),
                       {key: np.zeros(0, dtype=np.int64) for key in metas})
    return Samples(torch.cat(xs), torch.as_tensor(np.concatenate(ys), dtype=torch.long),
                   {key: np.concatenate(v).astype(np.int64) for key, v in metas.items()})
