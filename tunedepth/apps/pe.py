"""Synthetic pulmonary-embolism detection in CT-like volumes, with vessel-aligned 2-channel patches.

Each volume (48^3 voxels, Hounsfield-like values) holds lung parenchyma (-850 HU, textured, noisy) and six
contrast-filled vessels (bent tubes, radius 1.5-3.2 voxels, 220-380 HU). 70% of volumes hold 1-3 emboli:
filling defects (20-130 HU) in a vessel, central or against its wall, occluding 45-100% of its radius.
The candidate generator also reports look-alikes: flow artefacts (diffuse, incomplete intensity dips inside
a vessel), lymph nodes (soft-tissue blobs touching a vessel), plain vessel points and lung points.

A candidate's patches follow its vessel: the vessel axis is estimated from the data (principal axis of the
dense voxels around the candidate), and each patch has the cross-section (the plane across the vessel) as
channel 0 and a longitudinal plane (containing the axis) as channel 1, repeated as channel 2; 3 rotations
about the axis x 2 plane sizes give 6 patches, shown in a PE window (-250..450 HU).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from tunedepth.apps.patches import orthonormal_frame, sample_planes, to_uint8
from tunedepth.data.units import RawSet, Samples

SHAPE = (48, 48, 48)  # D, H, W
LUNG_HU, NODE_HU = -850.0, 45.0
WINDOW = (-250.0, 450.0)  # display window of the patches (a PE window: level 100, width 700)
DENSE_HU = -100.0  # voxels above this count as vessel/clot/soft tissue when estimating the vessel axis
AXIS_RADIUS = 4
PLANE_SIDES = (16.0, 24.0)  # voxels
ROTATIONS = 3
VESSELS = 6
CHUNK = 8


def _u(g, shape, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def _dot(pts, vec):
    """pts: tuple of coordinate grids (x, y, z), each (D, H, W); vec (B, 3) -> (B, D, H, W)."""
    e = lambda t: t[:, None, None, None]  # noqa: E731
    return pts[0] * e(vec[:, 0]) + pts[1] * e(vec[:, 1]) + pts[2] * e(vec[:, 2])


def _segment_distance(pts, sq, a, b):
    """Distance (B, D, H, W) of the grid points to segments a->b (B, 3); ``sq`` = |point|^2 (D, H, W)."""
    e = lambda t: t[:, None, None, None]  # noqa: E731
    ab = b - a
    ab2 = (ab * ab).sum(-1).clamp_min(1e-6)
    pa = _dot(pts, ab) - e((a * ab).sum(-1))  # (X - a) . ab
    t = (pa / e(ab2)).clamp(0, 1)
    xa2 = sq - 2 * _dot(pts, a) + e((a * a).sum(-1))  # |X - a|^2
    return (xa2 - 2 * t * pa + t * t * e(ab2)).clamp_min(0).sqrt()


def _render_chunk(b: int, g: torch.Generator, pts: tuple[torch.Tensor, ...]):
    d, h, w = SHAPE
    sq = pts[0] ** 2 + pts[1] ** 2 + pts[2] ** 2
    lo, hi = 5.0, float(min(SHAPE)) - 6.0
    # lung: smooth texture + later noise
    tex = F.interpolate(torch.randn(b, 1, 6, 6, 6, generator=g), size=SHAPE, mode="trilinear", align_corners=False)[
        :, 0
    ]
    vol = LUNG_HU + 35.0 * tex
    contrast = _u(g, (b,), 220, 380)
    # vessels: polylines p0 -> p1 -> p2
    ctrl = _u(g, (b, VESSELS, 3, 3), lo, hi)  # (b, vessel, point, xyz)
    radius = _u(g, (b, VESSELS), 1.5, 3.2)
    vessel = torch.zeros(b, d, h, w)
    for k in range(VESSELS):
        for s in range(2):
            dist = _segment_distance(pts, sq, ctrl[:, k, s], ctrl[:, k, s + 1])
            vessel = torch.maximum(vessel, torch.sigmoid((radius[:, k, None, None, None] - dist) / 0.5))
    vol = vol + (contrast[:, None, None, None] - vol) * vessel
    cands: list[tuple[int, float, float, float, int]] = []

    def on_vessel(n_max):
        """Random points on vessel axes: (vessel, segment, t) per slot, with the axis point and direction."""
        k = torch.randint(0, VESSELS, (b, n_max), generator=g)
        s = torch.randint(0, 2, (b, n_max), generator=g)
        t = _u(g, (b, n_max), 0.2, 0.8)
        bi = torch.arange(b)[:, None].expand(b, n_max)
        a, c = ctrl[bi, k, s], ctrl[bi, k, s + 1]
        return a + t[..., None] * (c - a), F.normalize(c - a, dim=-1), radius[bi, k]

    def ellipsoid(center, axis, half_len, rad, soft):
        """Soft ellipsoid (B, D, H, W) elongated along unit vector ``axis``."""
        e = lambda t: t[:, None, None, None]  # noqa: E731
        along = _dot(pts, axis) - e((center * axis).sum(-1))
        r2 = sq - 2 * _dot(pts, center) + e((center * center).sum(-1))  # |X - c|^2
        q = along**2 / e(half_len) ** 2 + (r2 - along**2).clamp_min(0) / e(rad) ** 2
        return torch.sigmoid((1 - q) / soft)

    def perpendicular(axis):
        u, v = orthonormal_frame(axis)
        phi = _u(g, (axis.shape[0], 1), 0, 2 * math.pi)
        return torch.cos(phi) * u + torch.sin(phi) * v

    # emboli: 0 (30%) or 1-3 per volume
    n_emb = torch.where(torch.rand(b, generator=g) < 0.3, 0, torch.randint(1, 4, (b,), generator=g))
    p, ax, r = on_vessel(3)
    for j in range(3):
        on = (n_emb > j).float()[:, None, None, None]
        rho = _u(g, (b,), 0.45, 1.0)
        off = perpendicular(ax[:, j]) * ((1 - rho) * r[:, j] * _u(g, (b,), 0, 1))[:, None]
        center = p[:, j] + off
        clot = ellipsoid(center, ax[:, j], _u(g, (b,), 2.5, 6.0), rho * r[:, j] + 0.3, 0.15) * vessel
        strength = _u(g, (b,), 0.6, 1.0)[:, None, None, None]
        hu = _u(g, (b,), 20, 130)[:, None, None, None]
        vol = vol + on * strength * clot * (hu - vol)
        for i in torch.nonzero(on.flatten()).flatten().tolist():
            cands.append((i, *center[i].tolist(), 1))
    # flow artefacts: diffuse, incomplete dips inside a vessel
    p, ax, r = on_vessel(2)
    n_flow = torch.randint(1, 3, (b,), generator=g)
    for j in range(2):
        on = (n_flow > j).float()[:, None, None, None]
        art = ellipsoid(p[:, j], ax[:, j], _u(g, (b,), 2.5, 6.0), r[:, j] * _u(g, (b,), 0.5, 1.0), 0.6) * vessel
        strength = _u(g, (b,), 0.25, 0.7)[:, None, None, None]
        vol = vol + on * strength * art * (80.0 - vol)
        for i in torch.nonzero(on.flatten()).flatten().tolist():
            cands.append((i, *p[i, j].tolist(), 0))
    # lymph nodes: soft-tissue blobs touching a vessel
    p, ax, r = on_vessel(2)
    n_node = torch.randint(1, 3, (b,), generator=g)
    for j in range(2):
        on = (n_node > j).float()[:, None, None, None]
        size = _u(g, (b,), 2.0, 3.5)
        center = p[:, j] + perpendicular(ax[:, j]) * (r[:, j] + 0.8 * size)[:, None]
        node = ellipsoid(center, ax[:, j], size * _u(g, (b,), 1.0, 1.6), size, 0.2) * (1 - vessel)
        vol = vol + on * node * (NODE_HU + 15 * torch.randn(b, generator=g)[:, None, None, None] - vol)
        for i in torch.nonzero(on.flatten()).flatten().tolist():
            cands.append((i, *center[i].tolist(), 0))
    # plain vessel points and lung points
    p, _, _ = on_vessel(4)
    for i in range(b):
        for j in range(int(torch.randint(2, 5, (1,), generator=g))):
            cands.append((i, *p[i, j].tolist(), 0))
    lung = _u(g, (b, 2, 3), lo, hi)
    for i in range(b):
        for j in range(int(torch.randint(1, 3, (1,), generator=g))):
            cands.append((i, *lung[i, j].tolist(), 0))
    # partial-volume blur and CT noise
    vol = F.avg_pool3d(F.pad(vol[:, None], (1, 1, 1, 1, 1, 1), mode="replicate"), 3, stride=1)[:, 0] * 0.5 + vol * 0.5
    vol = vol + _u(g, (b, 1, 1, 1), 25, 45) * torch.randn(vol.shape, generator=g)
    return vol, cands


def generate(n: int, size: int, seed: int):
    """``n`` CT-like volumes (float32 HU, (D, H, W)) with candidates (x, y, z in voxels) as a detection RawSet."""

    g = torch.Generator().manual_seed(int(seed) * 104729 + 5)
    d, h, w = SHAPE
    zz, yy, xx = torch.meshgrid(torch.arange(d), torch.arange(h), torch.arange(w), indexing="ij")
    pts = (xx.float(), yy.float(), zz.float())  # coordinate grids (D, H, W) of x, y, z
    vols, rows = [], []
    for start in range(0, n, CHUNK):
        b = min(CHUNK, n - start)
        vol, cands = _render_chunk(b, g, pts)
        vols.append(vol)
        rows += [(start + i, x, y, z, lab) for i, x, y, z, lab in cands]
    cand = pd.DataFrame(rows, columns=["unit", "x", "y", "z", "label"])
    jitter = torch.randn(len(cand), 3, generator=g).numpy() * 0.5
    cand[["x", "y", "z"]] += jitter
    cand = cand.sort_values("unit", kind="stable").reset_index(drop=True)
    cand["lesion"] = np.where(cand["label"].to_numpy() == 1, np.arange(len(cand)), -1)
    labels = np.zeros(n, dtype=np.int64)
    labels[cand.loc[cand.label == 1, "unit"].to_numpy()] = 1
    return RawSet("detection", torch.cat(vols).float(), labels, [f"volume{i:04d}" for i in range(n)],
                  classes=("no embolus", "embolus"), candidates=cand)


def vessel_axis(volume: torch.Tensor, centers) -> torch.Tensor:
    """Principal axis (P, 3) (x, y, z) of the dense voxels (> -100 HU) within 4 voxels of each centre.

    The weighted covariance of the voxel positions (weights rise with density) has its largest eigenvector
    along a tube; candidates with no dense voxel around them get the z axis.
    """
    d, h, w = volume.shape
    c = torch.tensor(np.asarray(centers, dtype=np.float32)).reshape(-1, 3)
    r = AXIS_RADIUS
    o = torch.arange(-r, r + 1, dtype=torch.float32)
    oz, oy, ox = torch.meshgrid(o, o, o, indexing="ij")
    offs = torch.stack([ox, oy, oz], dim=-1).reshape(-1, 3)
    offs = offs[offs.norm(dim=1) <= r]
    pos = c.round()[:, None, :] + offs[None]  # (P, K, 3)
    xi = pos[..., 0].long().clamp(0, w - 1)
    yi = pos[..., 1].long().clamp(0, h - 1)
    zi = pos[..., 2].long().clamp(0, d - 1)
    val = volume[zi, yi, xi]
    wgt = ((val - DENSE_HU) / 300.0).clamp(0, 1)
    tot = wgt.sum(1, keepdim=True)
    mean = (wgt[..., None] * offs[None]).sum(1) / tot.clamp_min(1e-6)
    rel = offs[None] - mean[:, None]
    cov = torch.einsum("pk,pki,pkj->pij", wgt, rel, rel) / tot.clamp_min(1e-6)[..., None]
    _, vecs = torch.linalg.eigh(cov + 1e-6 * torch.eye(3))
    axis = vecs[..., -1]
    axis[tot[:, 0] < 1.0] = torch.tensor([0.0, 0.0, 1.0])
    return F.normalize(axis, dim=1)


def to_hu(volume: torch.Tensor) -> torch.Tensor:
    """Volumes already in Hounsfield units pass; others are scaled so their 0.5-99.5 percentiles span -1000..1000."""
    v = volume.float()
    if float(v.min()) < -500:
        return v
    flat = v.flatten()
    sample = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:100_000]]
    lo, hi = torch.quantile(sample, 0.005), torch.quantile(sample, 0.995)
    return (v - lo) / (hi - lo).clamp_min(1e-6) * 2000.0 - 1000.0


def vessel_patches(raw, split: str, size: int, seed: int, train_raw=None):
    """Six vessel-aligned patches per candidate: channel 0 the cross-section, channels 1-2 a longitudinal
    plane; 3 rotations about the estimated vessel axis x 2 plane sizes (16 and 24 voxels)."""

    cand = raw.candidates
    k = ROTATIONS * len(PLANE_SIDES)
    xs, ys, metas = [], [], {"unit": [], "candidate": [], "lesion": [], "missed_lesions": []}
    for unit, rows in cand.groupby("unit", sort=True):
        vol = to_hu(raw.image(int(unit)))
        centers = rows[["x", "y", "z"]].to_numpy(dtype=np.float32)
        m = len(rows)
        axis = vessel_axis(vol, centers)
        u0, v0 = orthonormal_frame(axis)
        per = []
        for side in PLANE_SIDES:
            for rot in range(ROTATIONS):
                phi = math.pi * rot / ROTATIONS
                u = math.cos(phi) * u0 + math.sin(phi) * v0
                v = -math.sin(phi) * u0 + math.cos(phi) * v0
                sides = np.full(m, side)
                cross = sample_planes(vol, centers, u, v, sides, size)
                longi = sample_planes(vol, centers, u, axis, sides, size)
                per.append(torch.stack([cross, longi, longi], dim=1))
        patches = torch.stack(per, dim=1).reshape(m * k, 3, size, size)
        xs.append(to_uint8((patches - WINDOW[0]) / (WINDOW[1] - WINDOW[0])))
        ys.append(np.repeat(rows["label"].to_numpy(), k))
        metas["unit"].append(np.full(m * k, unit))
        metas["candidate"].append(np.repeat(rows.index.to_numpy(), k))
        metas["lesion"].append(np.repeat(rows["lesion"].to_numpy() if "lesion" in rows else np.full(m, -1), k))
        metas["missed_lesions"].append(np.repeat(rows["missed"].to_numpy() if "missed" in rows else np.zeros(m), k))
    if not xs:
        return Samples(torch.zeros(0, 3, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long),
                       {key: np.zeros(0, dtype=np.int64) for key in metas})
    return Samples(torch.cat(xs), torch.as_tensor(np.concatenate(ys), dtype=torch.long),
                   {key: np.concatenate(v).astype(np.int64) for key, v in metas.items()})
