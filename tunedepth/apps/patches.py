"""Cutting network-sized samples out of units: 2-D crops/patches and vessel-aligned planes through volumes.

All sampling is one ``torch.nn.functional.grid_sample`` per unit (bilinear / trilinear); patches larger
than the output are supersampled and box-filtered (no aliasing). Resizing whole images uses MONAI.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def as_float01(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(C, H, W) or (N, C, H, W) with C in {1, 3} -> 3 channels (grey repeated)."""
    c = x.shape[-3]
    if c == 3:
        return x
    if c == 1:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    raise ValueError(f"expected 1 or 3 channels, got {c}")


def plain_tensor(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a plain ``torch.Tensor`` (MONAI's ``MetaTensor`` and other subclasses stripped, no copy)."""
    return t if type(t) is torch.Tensor else torch.Tensor.as_subclass(torch.as_tensor(t), torch.Tensor)


def resize_2d(img: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize a (C, H, W) float image with MONAI (area averaging when shrinking, bilinear when enlarging)."""
    from monai.transforms import Resize

    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(img.shape[-2:]) == size:
        return img.float()
    shrink = img.shape[-2] >= size[0] and img.shape[-1] >= size[1]
    mode = "area" if shrink else "bilinear"
    out = Resize(spatial_size=size, mode=mode, **({} if shrink else {"align_corners": False}))(img.float())
    return plain_tensor(out).float()  # MONAI returns a MetaTensor: keep plain tensors past the data boundary


def crop_patches(image: torch.Tensor, cx, cy, side, flip_h=None, flip_v=None, out_size: int = 64,
                 padding_mode: str = "zeros") -> torch.Tensor:
    """Square patches of ``image`` (C, H, W) centred at pixel (cx, cy) with side ``side`` pixels -> (P, C, S, S).

    Pixel i's centre is at coordinate i. ``flip_h``/``flip_v`` mirror a patch. A patch larger than
    ``out_size`` is sampled at up to 4x the output resolution and box-filtered down.
    """
    img = as_float01(image)
    c, h, w = img.shape
    cx, cy, side = (torch.tensor(np.asarray(a, dtype=np.float32)).reshape(-1) for a in (cx, cy, side))
    p = cx.numel()
    if p == 0:
        return torch.zeros(0, c, out_size, out_size)
    fh = torch.ones(p) if flip_h is None else 1 - 2 * torch.tensor(np.asarray(flip_h, dtype=np.float32)).reshape(-1)
    fv = torch.ones(p) if flip_v is None else 1 - 2 * torch.tensor(np.asarray(flip_v, dtype=np.float32)).reshape(-1)
    k = int(min(4, max(1, math.ceil(float(side.max()) / (1.5 * out_size)))))  # supersampling factor
    n = out_size * k
    base = (torch.arange(n, dtype=torch.float32) + 0.5) / n - 0.5
    gx = cx[:, None, None] + (fh * side)[:, None, None] * base[None, None, :]
    gy = cy[:, None, None] + (fv * side)[:, None, None] * base[None, :, None]
    grid = torch.stack([((2 * gx + 1) / w - 1).expand(p, n, n), ((2 * gy + 1) / h - 1).expand(p, n, n)], dim=-1)
    out = F.grid_sample(img[None], grid.reshape(1, p * n, n, 2), mode="bilinear", padding_mode=padding_mode,
                        align_corners=False)
    if k > 1:  # box filter; patches are stacked along rows and n is a multiple of k, so pooling stays inside them
        out = F.avg_pool2d(out, k)
    return out.reshape(c, p, out_size, out_size).permute(1, 0, 2, 3)


def sample_planes(volume: torch.Tensor, centers, u, v, side, out_size: int = 64) -> torch.Tensor:
    """Planes through ``volume`` (D, H, W): centre (x, y, z) voxels, in-plane unit axes ``u``, ``v`` (P, 3) in
    (x, y, z) order, side ``side`` voxels; trilinear, border values outside. Returns (P, S, S); rows follow
    ``v``, columns ``u``."""
    vol = volume.float()
    d, h, w = vol.shape
    centers, u, v = (torch.tensor(np.asarray(a, dtype=np.float32)).reshape(-1, 3) for a in (centers, u, v))
    side = torch.tensor(np.asarray(side, dtype=np.float32)).reshape(-1)
    p = centers.shape[0]
    if p == 0:
        return torch.zeros(0, out_size, out_size)
    base = (torch.arange(out_size, dtype=torch.float32) + 0.5) / out_size - 0.5
    a = (side[:, None] * base[None, :])  # (P, S)
    pts = (centers[:, None, None, :] + a[:, None, :, None] * u[:, None, None, :]
           + a[:, :, None, None] * v[:, None, None, :])  # (P, S rows, S cols, 3)
    scale = torch.tensor([w, h, d], dtype=torch.float32)
    grid = (2 * pts + 1) / scale - 1
    out = F.grid_sample(vol[None, None], grid[None], mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, 0]


def orthonormal_frame(axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit vectors (P, 3) perpendicular to each other and to ``axis`` (P, 3)."""
    axis = F.normalize(axis.float(), dim=1)
    helper = torch.tensor([1.0, 0.0, 0.0]).expand_as(axis).clone()
    near = axis[:, 0].abs() > 0.9
    helper[near] = torch.tensor([0.0, 1.0, 0.0])
    u = F.normalize(torch.cross(axis, helper, dim=1), dim=1)
    v = torch.cross(axis, u, dim=1)
    return u, v


RESIZE_POLICIES = ("resize", "pad", "crop")


def fit_square(img: torch.Tensor, size: int, policy: str = "resize", label: bool = False,
               fill: float = 0.0) -> torch.Tensor:
    """A (C, H, W) float image as (C, size, size): ``resize`` stretches it; ``pad`` keeps its aspect ratio, the
    longer side becoming ``size``, and pads the rest with ``fill`` (centred); ``crop`` keeps its aspect ratio,
    the shorter side becoming ``size``, and cuts the centre square. ``label``: a label map, resampled by nearest
    neighbour (the same geometry as its image)."""
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"unknown resize policy {policy!r}; choose one of {RESIZE_POLICIES}")
    h, w = img.shape[-2:]
    scale = size / (max(h, w) if policy == "pad" else min(h, w))
    nh, nw = (size, size) if policy == "resize" or h == w else (max(1, round(h * scale)), max(1, round(w * scale)))
    out = F.interpolate(img[None].float(), size=(nh, nw), mode="nearest")[0] if label else resize_2d(img, (nh, nw))
    if (nh, nw) == (size, size):
        return out
    if policy == "crop":
        top, left = (nh - size) // 2, (nw - size) // 2
        return out[:, top : top + size, left : left + size].contiguous()
    top, left = (size - nh) // 2, (size - nw) // 2
    return F.pad(out, (left, size - nw - left, top, size - nh - top), value=fill)
