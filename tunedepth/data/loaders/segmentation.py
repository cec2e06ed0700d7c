"""Segmentation units (intima-media) from image/mask folder pairs or a MONAI decathlon-style datalist JSON.

A mask marks the intima-media complex (any non-zero label): in each column that has mask pixels, the
lumen-intima interface is the first such row and the media-adventitia interface the last. Pixel spacing
(micrometres per pixel) is required, since errors are reported in um:

* folders: ``PATH/spacing.csv`` with columns ``image,spacing_um[,group]`` (``image`` = file name or stem;
  a row with image ``*`` sets the default);
* datalist: ``"spacing_um"`` in an item, or at the top level of the JSON as the default; ``"group"`` too.

Images and masks may be NIfTI (``.nii``/``.nii.gz``, read with nibabel): 2-D, or 3-D volumes cut into 2-D
slices along the last axis, each annotated slice a unit whose split group is the volume (or the item's
``group``), so a volume's slices never straddle train/validation/test (see ``_slices``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tunedepth.data.loaders.files import is_image, is_nifti, read_image, read_mask, read_nifti
from tunedepth.data.units import RawSet
from tunedepth.errors import ConfigError

if TYPE_CHECKING:
    import torch

IMAGE_DIRS = ("images", "imagesTr", "image", "img", "imgs")
MASK_DIRS = ("masks", "labelsTr", "mask", "labels", "label", "annotations")
CLASSES = ("background", "lumen-intima", "media-adventitia")
MASK_SUFFIXES = ("_mask", "-mask", "_label", "-label", "_seg", "_gt")


def find_pair_folders(root: Path) -> tuple[Path, Path] | None:
    imgs = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)
    masks = next((root / d for d in MASK_DIRS if (root / d).is_dir()), None)
    return (imgs, masks) if imgs is not None and masks is not None else None


def boundaries_from_mask(mask: np.ndarray) -> np.ndarray:
    """(2, W) rows of the first and last foreground pixel in each column; NaN where a column has none."""
    fg = np.asarray(mask) > 0
    has = fg.any(axis=0)
    first = np.argmax(fg, axis=0).astype(np.float64)
    last = (fg.shape[0] - 1 - np.argmax(fg[::-1], axis=0)).astype(np.float64)
    first[~has] = np.nan
    last[~has] = np.nan
    return np.stack([first, last])


def _stem(name: str) -> str:
    s = Path(name).name
    s = s[: -len(".nii.gz")] if s.lower().endswith(".nii.gz") else Path(s).stem
    for suf in MASK_SUFFIXES:
        if s.lower().endswith(suf):
            return s[: -len(suf)]
    return s


def _slices(img_path: Path, mask_path: Path) -> list[tuple[str, "torch.Tensor", np.ndarray]]:
    """(name suffix, image (1, H, W) in [0, 1], mask (H, W)) of one pair: one 2-D image, or the slices of a volume.

    NIfTI images/masks (``.nii``, ``.nii.gz``) may be 2-D or 3-D; a 3-D volume is cut into 2-D slices along
    its last axis (k), each slice a unit named ``<image>#k<index>``; its intensities are scaled to [0, 1] from
    the volume's own min..max, and slices whose mask is empty (nothing annotated) are skipped.
    """
    import torch

    if is_nifti(img_path) or is_nifti(mask_path):
        vol = read_nifti(img_path) if is_nifti(img_path) else read_image(img_path, grey=True)[0].numpy()
        mask = np.rint(read_nifti(mask_path)).astype(np.int64) if is_nifti(mask_path) else read_mask(mask_path)
        if vol.shape != mask.shape:
            raise ConfigError(f"mask {mask_path} is {mask.shape} but image {img_path} is {vol.shape}; "
                              "give masks of the image's size")
        lo, hi = float(vol.min()), float(vol.max())
        vol = (vol - lo) / (hi - lo) if hi > lo else np.zeros_like(vol)
        if vol.ndim == 2:
            return [("", torch.as_tensor(vol, dtype=torch.float32)[None], mask)]
        out = [(f"#k{k}", torch.as_tensor(vol[k], dtype=torch.float32)[None], mask[k])
               for k in range(vol.shape[0]) if (mask[k] > 0).any()]
        if not out:
            raise ConfigError(
                f"mask {mask_path} is empty in every slice; mark the intima-media region or remove the pair"
            )
        return out
    img = read_image(img_path, grey=True)
    mask = read_mask(mask_path)
    if mask.shape != tuple(img.shape[-2:]):
        raise ConfigError(f"mask {mask_path} is {mask.shape} but image {img_path} is {tuple(img.shape[-2:])}; "
                          "give masks of the image's size")
    return [("", img, mask)]


INSTANCE_MIN_LABELS = 5  # a mask with at least this many labels, each one connected blob, reads as instances
INSTANCE_CHECKED = 20  # masks with >= 2 labels looked at by the instance check (each label labelled separately)


def instance_evidence(masks: list[np.ndarray], names: list[str]) -> str:
    """Why ``masks`` look like instance labels ("126 labels in images/a.png, each one connected blob"), or "".

    Instance masks: some mask holds at least ``INSTANCE_MIN_LABELS`` non-zero labels, and in every mask looked
    at (the first ``INSTANCE_CHECKED`` with two or more labels) each non-zero label is one 8-connected blob. A
    semantic mask has few classes, or a class in pieces somewhere.
    """
    from scipy import ndimage

    most, where, looked = 0, "", 0
    for m, name in zip(masks, names):
        labels = np.unique(m[m > 0]) if m.size else np.zeros(0)
        if len(labels) < 2:
            continue
        if looked >= INSTANCE_CHECKED:
            break
        looked += 1
        objects = ndimage.find_objects(np.where(m > 0, m, 0).astype(np.int64))
        for v in labels:  # each label within its own bounding box: cheap for many small blobs
            if ndimage.label(m[objects[int(v) - 1]] == v, structure=np.ones((3, 3)))[1] != 1:
                return ""
        if len(labels) > most:
            most, where = len(labels), name
    return f"{most} labels in {where}, each one connected blob" if most >= INSTANCE_MIN_LABELS else ""


def read_as(masks: list[np.ndarray], names: list[str], mode: str, where: str) -> list[np.ndarray]:
    """Mask values as the run reads them: ``binary`` (0 = background, any other value foreground), ``semantic``
    (each value a class), ``auto`` (semantic; a ConfigError naming the choice when they look like instances)."""
    if mode == "binary":
        return [(np.asarray(m) > 0).astype(np.int64) for m in masks]
    if mode == "auto":
        evidence = instance_evidence(masks, names)
        if evidence:
            raise ConfigError(f"masks in {where} look like instance labels ({evidence}); choose --masks binary "
                              "(foreground vs background) or --masks semantic (each value is a class)")
    elif mode != "semantic":
        raise ConfigError(f"unknown masks {mode!r}; choose one of: auto, binary, semantic")
    return masks


def _units(pairs: list[tuple[Path, Path]], spacing: list[float], groups: list[str] | None, names: list[str],
           where: str, interfaces: bool = True, masks_mode: str = "auto") -> RawSet:
    """Units of the pairs; a volume's slices share its group (given, else the volume itself) and its spacing.

    ``interfaces``: the masks mark the intima-media region (each must hold some; boundaries per column, the
    intima classes); else they are label maps of any classes, read as ``masks_mode`` says (``read_as``) and
    coded 0..K-1 in the order of their values.
    """
    images, masks, bounds, unit_names, unit_groups, unit_spacing = [], [], [], [], [], []
    for (img_path, mask_path), name, s, g in zip(pairs, names, spacing, groups or names):
        for suffix, img, mask in _slices(img_path, mask_path):
            b = boundaries_from_mask(mask)
            if interfaces and not np.isfinite(b).any():
                raise ConfigError(f"mask {mask_path} is empty; mark the intima-media region or remove the pair")
            images.append(img)
            masks.append(mask)
            bounds.append(b)
            unit_names.append(name + suffix)
            unit_groups.append(g)
            unit_spacing.append(s)
    if len(images) < 3:
        raise ConfigError(f"{where} holds {len(images)} image/mask pair(s); train/validation/test need at least 3")
    if not interfaces:
        masks = read_as(masks, unit_names, masks_mode, where)
    values = np.unique(np.concatenate([np.unique(m) for m in masks]))
    coded = [np.searchsorted(values, m).astype(np.int64) for m in masks]
    labels = np.asarray([int(m.max() > 0) for m in coded], dtype=np.int64)  # holds foreground: stratifies splits
    return RawSet("segmentation", images, np.zeros(len(images), dtype=np.int64) if interfaces else labels,
                  unit_names, groups=unit_groups, classes=CLASSES if interfaces else tuple(str(v) for v in values),
                  boundaries=bounds, spacing_um=np.asarray(unit_spacing, dtype=np.float64), masks=coded)


def load_pair_folders(root: Path, interfaces: bool = True, masks_mode: str = "auto") -> RawSet:
    found = find_pair_folders(root)
    if found is None:
        raise ConfigError(f"{root} needs an images/ and a masks/ folder (same file stems)")
    img_dir, mask_dir = found
    masks = {_stem(p.name): p for p in sorted(mask_dir.iterdir())
             if is_image(p) or is_nifti(p) or p.name.endswith((".npy",))}
    pairs, names, unmatched = [], [], []
    for p in sorted(img_dir.iterdir()):
        if not (is_image(p) or is_nifti(p)):
            continue
        m = masks.get(_stem(p.name))
        if m is None:
            unmatched.append(p.name)
        else:
            pairs.append((p, m))
            names.append(str(p.relative_to(root)))
    if unmatched:
        raise ConfigError(f"no mask in {mask_dir} for {len(unmatched)} image(s), e.g. {unmatched[0]}; "
                          "give every image a mask with the same stem")
    if not pairs:
        raise ConfigError(f"no images in {img_dir}")
    table = _spacing_table(root)
    spacing, groups = [], []
    for p, _ in pairs:
        row = _lookup(table, p.name)
        if row is None and not interfaces:
            spacing.append(float("nan"))
            groups.append(p.name)
            continue
        if row is None:
            raise ConfigError(f"no pixel spacing for {p.name}: add {root / 'spacing.csv'} with columns "
                              "image,spacing_um (a row with image * sets a default)")
        spacing.append(float(row["spacing_um"]))
        groups.append(str(row["group"]) if "group" in row and pd.notna(row["group"]) else p.name)
    return _units(pairs, spacing, groups, names, str(root), interfaces, masks_mode)


def _spacing_table(root: Path) -> pd.DataFrame | None:
    f = root / "spacing.csv"
    if not f.is_file():
        return None
    t = pd.read_csv(f, dtype={"image": str, "group": str})
    if not {"image", "spacing_um"} <= set(t.columns):
        raise ConfigError(f"{f} needs columns image,spacing_um[,group]; found {list(t.columns)}")
    if not (pd.to_numeric(t["spacing_um"], errors="coerce") > 0).all():
        raise ConfigError(f"{f}: spacing_um must be a positive number of micrometres per pixel in every row")
    return t


def _lookup(table: pd.DataFrame | None, name: str):
    if table is None:
        return None
    for key in (name, _stem(name)):
        hit = table[table["image"] == key]
        if len(hit):
            return hit.iloc[0]
    star = table[table["image"] == "*"]
    return star.iloc[0] if len(star) else None


def load_datalist(json_path: Path, interfaces: bool = True, masks_mode: str = "auto") -> RawSet:
    """A decathlon-style datalist: ``{"training": [{"image": ..., "label": ..., "spacing_um"?, "group"?}], ...}``;
    items under ``"validation"`` are pooled with ``"training"``; paths are relative to the JSON."""
    from monai.data import load_decathlon_datalist

    try:
        top = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {json_path} as JSON ({str(e).splitlines()[0]}); fix the file") from None
    if not isinstance(top, dict) or "training" not in top:
        raise ConfigError(f"{json_path} needs a \"training\" list of {{\"image\": ..., \"label\": ...}} items")
    items = []
    for key in ("training", "validation"):
        if key in top:
            try:
                items += load_decathlon_datalist(json_path, is_segmentation=True, data_list_key=key,
                                                 base_dir=json_path.parent)
            except (ValueError, KeyError) as e:
                raise ConfigError(
                    f"{json_path} [{key}]: {str(e).splitlines()[0]}; every item needs image and label"
                ) from None
    default = top.get("spacing_um")
    pairs, spacing, groups, names = [], [], [], []
    for i, it in enumerate(items):
        if "image" not in it or "label" not in it:
            raise ConfigError(f"{json_path}: item {i} lacks image or label; give both paths")
        s = it.get("spacing_um", default)
        if s is None and not interfaces:
            s = float("nan")
        elif s is None or not float(s) > 0:
            raise ConfigError(f"{json_path}: no positive spacing_um for {it['image']}; add \"spacing_um\" to the "
                              "item or at the top level (micrometres per pixel)")
        pairs.append((Path(it["image"]), Path(it["label"])))
        spacing.append(float(s))
        groups.append(str(it.get("group", it["image"])))
        names.append(
            str(Path(it["image"]).relative_to(json_path.parent))
            if Path(it["image"]).is_relative_to(json_path.parent)
            else str(it["image"])
        )
    return _units(pairs, spacing, groups, names, str(json_path), interfaces, masks_mode)
