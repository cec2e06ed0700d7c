"""Classification units from an ImageFolder tree, a CSV manifest or a MedMNIST ``.npz``."""
from __future__ import annotations

import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tunedepth.data.loaders.files import is_image, read_image, read_images, read_table
from tunedepth.data.stream import LazyImages
from tunedepth.data.units import RawSet
from tunedepth.errors import ConfigError

MEDMNIST_SPLITS = {"train": "train", "val": "val", "test": "test"}


def _class_codes(labels: list) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes and names; numeric labels keep their numeric order."""
    values = pd.Series(labels)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and (numeric == numeric.round()).all():
        uniq = np.sort(numeric.astype(np.int64).unique())
        codes = np.searchsorted(uniq, numeric.astype(np.int64).to_numpy())
        return codes, tuple(str(u) for u in uniq)
    names = sorted(values.astype(str).unique())
    return np.searchsorted(np.asarray(names), values.astype(str).to_numpy()), tuple(names)


def _need_two_classes(classes: tuple[str, ...], where: Path) -> None:
    if len(classes) < 2:
        raise ConfigError(f"{where} holds a single class {list(classes)}; a classifier needs at least two")


def load_imagefolder(root: Path) -> RawSet:
    """``root/<class>/**/<image>``: every image below a top-level folder has that folder's class."""
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels = [], []
    for d in class_dirs:
        for f in sorted(d.rglob("*")):
            if is_image(f):
                paths.append(f)
                labels.append(d.name)
    empty = [d.name for d in class_dirs if d.name not in set(labels)]
    if paths and empty:
        raise ConfigError(f"class folder(s) {', '.join(empty)} under {root} hold no images; add images or remove "
                          f"the folder(s)")
    if not paths:
        raise ConfigError(f"no images found under {root}/<class>/ (extensions .png .jpg .tif ...); "
                          "put each class's images in a folder named after the class")
    codes, classes = _class_codes(labels)
    _need_two_classes(classes, root)
    names = [str(p.relative_to(root)) for p in paths]
    images = _listed([(p, n, "") for p, n in zip(paths, names)], f" under {root}")
    return RawSet("classification", images, codes, names, classes=classes)


def _read_item(item: tuple[Path, str, str]) -> torch.Tensor:
    return read_image(item[0], where=item[2])


def _read_items(items: list[tuple[Path, str, str]], what: str) -> list[torch.Tensor]:
    return read_images([i[0] for i in items], [i[1] for i in items], where=lambda k: items[k][2], what=what)


def _listed(items: list[tuple[Path, str, str]], what: str) -> LazyImages:
    """(path, name, where) items, decoded when used: all at once in memory (unreadable files listed with a
    count), or a chunk at a time when streamed (``tunedepth.data.stream``)."""
    return LazyImages(items, _read_item, partial(_read_items, what=what))


def load_manifest(csv_path: Path) -> RawSet:
    """A CSV with columns ``path,label`` and optionally ``group`` (patient/video); paths relative to the CSV."""
    table = read_table(csv_path, "path,label[,group]", "image", {"path": str, "group": str})
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise ConfigError(f"{csv_path} lacks column(s) {missing}; its header must read path,label[,group] "
                          f"(found {list(table.columns)})")
    if table.empty:
        raise ConfigError(f"{csv_path} lists no images; add rows path,label[,group]")
    bad = table[table["path"].isna() | table["label"].isna()]
    if len(bad):
        raise ConfigError(f"{csv_path} line {int(bad.index[0]) + 2}: empty path or label; fill it in or remove the row")
    codes, classes = _class_codes(table["label"].tolist())
    _need_two_classes(classes, csv_path)
    base = csv_path.parent
    paths = [Path(rel).expanduser() for rel in table["path"]]
    items = [(p if p.is_absolute() else base / p, str(rel), f" (line {i + 2} of {csv_path})")
             for i, (p, rel) in enumerate(zip(paths, table["path"]))]
    images = _listed(items, f" listed in {csv_path}")
    groups = table["group"].astype(str).to_numpy() if "group" in table.columns else None
    return RawSet("classification", images, codes, table["path"].astype(str).tolist(), groups=groups,
                  classes=classes)


def load_medmnist(npz_path: Path) -> RawSet:
    """A MedMNIST ``.npz`` (``{train,val,test}_images`` uint8 (N, H, W[, 3]), ``_labels`` (N, 1)).

    The official train/val/test split is kept (near-duplicates across it move to the most held-out split).
    """
    if not npz_path.is_file():
        raise ConfigError(f"MedMNIST file {npz_path} not found; nothing is downloaded at run time: fetch it once "
                          "(e.g. `python -m medmnist save` or from Zenodo) and pass its path")
    try:
        z = np.load(npz_path, allow_pickle=False)
        keys = set(z.keys())
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ConfigError(f"cannot read {npz_path} as .npz ({str(e).splitlines()[0]}); download it again") from None
    with z:
        present = [s for s in MEDMNIST_SPLITS if f"{s}_images" in keys and f"{s}_labels" in keys]
        if not present:
            raise ConfigError(f"{npz_path} has keys {sorted(keys)}; a MedMNIST file has train_images/train_labels, "
                              "val_images/val_labels and test_images/test_labels")
        images, labels, split = [], [], []
        for s in present:
            x, y = np.asarray(z[f"{s}_images"]), np.asarray(z[f"{s}_labels"])
            if y.ndim == 2 and y.shape[1] > 1:
                raise ConfigError(f"{npz_path} is multi-label ({y.shape[1]} labels per image, e.g. ChestMNIST); "
                                  "tunedepth classifies one label per image: keep one column")
            if x.ndim == 4 and x.shape[-1] not in (1, 3) or x.ndim not in (3, 4):
                raise ConfigError(f"{npz_path}: {s}_images has shape {x.shape}; 3-D MedMNIST volumes are not "
                                  "supported by the classification apps (give 2-D images)")
            if len(x) != len(y):
                raise ConfigError(f"{npz_path}: {s}_images and {s}_labels differ in length ({len(x)} vs {len(y)})")
            t = torch.as_tensor(x)
            t = t[:, None] if t.ndim == 3 else t.permute(0, 3, 1, 2)
            images.append(
                t if t.dtype == torch.uint8 else (t.float() / max(float(t.max()), 1.0) * 255).round().to(torch.uint8)
            )
            labels.append(y.reshape(-1).astype(np.int64))
            split += [MEDMNIST_SPLITS[s]] * len(y)
    stacked = torch.cat(images)
    if stacked.shape[1] == 1:
        stacked = stacked.expand(-1, 3, -1, -1).contiguous()
    codes, classes = _class_codes(np.concatenate(labels).tolist())
    _need_two_classes(classes, npz_path)
    names = [f"{s}/{i}" for s in present for i in range(int((np.asarray(split) == s).sum()))]
    preassigned = np.asarray(split, dtype=object) if set(split) >= {"train", "val", "test"} else None
    return RawSet("classification", stacked, codes, names, classes=classes, split=preassigned)
