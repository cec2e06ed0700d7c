"""What an app's data looks like before patches are cut: units (frames, images, volumes) and their annotations.

An embedded generator and a real-data loader both produce a ``RawSet``; the app's ``make_samples`` turns
the units of one split into network-sized samples (crops, patches) with per-sample ``meta``. Splitting
happens on units, before any patch exists, so a unit's patches never straddle train/validation/test.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd
import torch

KINDS = ("classification", "detection", "segmentation")
IGNORE = 255  # mask value of pixels without annotation (no loss, no metric)


@dataclass
class RawSet:
    """Units of one data set.

    ``images``: per unit a float32 tensor, (C, H, W) in [0, 1] for 2-D images (C = 1 or 3) or (D, H, W) in
    Hounsfield-like units for CT volumes; a single stacked tensor when all units have the same shape.
    ``labels``: per unit class used to stratify splits (the image's class; 1 if a detection unit holds a
    lesion; 0 for segmentation). ``groups``: per unit split group (patient/video; default: the unit itself).
    """

    kind: str
    images: torch.Tensor | list[torch.Tensor]
    labels: np.ndarray
    names: list[str]
    groups: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    split: np.ndarray | None = None  # preassigned "train"/"val"/"test" per unit (e.g. MedMNIST), or None
    # detection: one row per candidate: unit, x, y, [z], label, lesion (-1 = own lesion), size (px, NaN = default)
    candidates: pd.DataFrame | None = None
    # segmentation: per unit (2, W) float rows of the two interfaces (NaN where not annotated), spacing in um
    boundaries: list[np.ndarray] | None = None
    spacing_um: np.ndarray | None = None
    extra: dict = field(default_factory=dict)  # generator-specific per-unit arrays (e.g. ROI margins)
    # segmentation: per unit its label mask (H, W) int64 of class codes 0..K-1 (``classes`` names them)
    masks: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.groups is None:
            self.groups = np.asarray(self.names, dtype=object)
        self.groups = np.asarray(self.groups, dtype=object)
        if not (len(self.images) == self.labels.size == len(self.names) == self.groups.size):
            raise ValueError("RawSet: images, labels, names and groups must have one entry per unit")

    def __len__(self) -> int:
        return self.labels.size

    def image(self, i: int) -> torch.Tensor:
        return self.images[i]

    def thumbnails(self) -> torch.Tensor | list[torch.Tensor]:
        """Grey 2-D views for near-duplicate hashing: the image's channel mean, or a volume's middle slice."""
        if isinstance(self.images, torch.Tensor):
            x = self.images
            return x[:, x.shape[1] // 2].float() if self.is_3d else x.float().mean(dim=1)
        out = []
        for x in self.images:
            out.append(x[x.shape[0] // 2].float() if self.is_3d else x.float().mean(dim=0))
        return out

    @property
    def is_3d(self) -> bool:
        return self.candidates is not None and "z" in self.candidates.columns

    def subset(self, idx: Sequence[int]) -> "RawSet":
        """The units ``idx`` (in that order), with their candidates/boundaries; unit ids renumbered 0..k-1."""
        idx = np.asarray(idx, dtype=np.int64)
        images = self.images[torch.as_tensor(idx)] if isinstance(self.images, torch.Tensor) else \
            self.images.subset(idx) if hasattr(self.images, "subset") else [self.images[i] for i in idx]
        candidates = None
        if self.candidates is not None:
            remap = pd.Series(np.arange(idx.size), index=idx)
            candidates = self.candidates[self.candidates["unit"].isin(idx)].copy()
            candidates["unit"] = remap.loc[candidates["unit"].to_numpy()].to_numpy()
            candidates = candidates.sort_values(["unit"], kind="stable").reset_index(drop=True)
        return replace(
            self, images=images, labels=self.labels[idx], names=[self.names[i] for i in idx], groups=self.groups[idx],
            split=None if self.split is None else np.asarray(self.split, dtype=object)[idx], candidates=candidates,
            boundaries=None if self.boundaries is None else [self.boundaries[i] for i in idx],
            spacing_um=None if self.spacing_um is None else np.asarray(self.spacing_um)[idx],
            extra={k: np.asarray(v)[idx] for k, v in self.extra.items()},
            masks=None if self.masks is None else [self.masks[i] for i in idx],
        )


@dataclass
class Samples:
    """Network-sized samples of one split: uint8 (N, 3, S, S), labels (N,), per-sample meta arrays.

    ``meta["unit"]`` is the index of the sample's unit in the ``RawSet`` it was cut from. ``mask``: the
    per-pixel targets (N, S, S) of whole-image segmentation samples (uint8 class ids, ``IGNORE`` where not
    annotated); None for apps whose target is the label.
    """

    x: torch.Tensor
    y: torch.Tensor
    meta: dict[str, np.ndarray]
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.x.dtype != torch.uint8 or self.x.ndim != 4 or self.x.shape[1] != 3:
            raise ValueError(f"samples must be uint8 (N, 3, S, S), got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.shape != (n,) or any(len(v) != n for v in self.meta.values()):
            raise ValueError("samples: labels and every meta array need one entry per sample")
        if "unit" not in self.meta:
            raise ValueError("samples: meta['unit'] (the sample's unit) is required")
        if self.mask is not None and (
            self.mask.dtype != torch.uint8 or tuple(self.mask.shape) != (n, *self.x.shape[-2:])
        ):
            raise ValueError(f"sample masks must be uint8 (N, S, S), got {self.mask.dtype} {tuple(self.mask.shape)}")
