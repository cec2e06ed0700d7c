"""Real data without code changes: ``--data PATH`` plus the app's kind pick one of these layouts.

| layout | kind | what PATH is |
|---|---|---|
| ``imagefolder`` | classification | a folder ``PATH/<class>/.../<image>`` (class = top folder name) |
| ``csv`` | classification | a CSV manifest with columns ``path,label[,group]`` (paths relative to the CSV) |
| ``medmnist`` | classification | a MedMNIST ``.npz`` on disk (``train_/val_/test_images`` and ``_labels``) |
| ``image-mask-folders`` | segmentation | ``images/`` and ``masks/`` (same file stems), ``spacing.csv`` |
| ``datalist-json`` | segmentation | a MONAI decathlon-style datalist JSON (``"training": [{"image", "label"}]``) |
| ``candidates-csv`` | detection | a CSV ``image,x,y,label[,group][,z][,size][,lesion]`` (paths relative to the CSV) |

Images of any mode (1, L, P, LA, RGB, RGBA, CMYK, 16-bit, float) and size are read as grey or RGB floats in
[0, 1]; the app resizes them or cuts patches at the backbone's input size. A missing or unreadable file is
a one-line ``ConfigError`` naming the file and the fix. Nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

from tunedepth.data.loaders.classification import load_imagefolder, load_manifest, load_medmnist
from tunedepth.data.loaders.detection import load_candidates
from tunedepth.data.loaders.segmentation import find_pair_folders, load_datalist, load_pair_folders
from tunedepth.data.units import RawSet
from tunedepth.errors import ConfigError

LAYOUTS = {
    "imagefolder": ("classification", "a folder PATH/<class>/<image> (class = folder name)"),
    "csv": ("classification", "a CSV manifest path,label[,group] (paths relative to the CSV)"),
    "medmnist": ("classification", "a MedMNIST .npz already on disk (train_/val_/test_images and _labels)"),
    "image-mask-folders": ("segmentation", "a folder with images/ and masks/ (same stems) and spacing.csv"),
    "datalist-json": ("segmentation", "a MONAI decathlon-style datalist JSON with image/label pairs"),
    "candidates-csv": ("detection", "a CSV image,x,y,label[,group][,z][,size][,lesion]"),
}


def detect_layout(path: str | Path, app) -> str:
    """The layout of ``path`` among those the app accepts, or a ConfigError listing them."""
    p = Path(path).expanduser()
    accepted = app.loaders or tuple(k for k, (kind, _) in LAYOUTS.items() if kind == app.kind)
    options = "; ".join(f"{k}: {LAYOUTS[k][1]}" for k in accepted)
    if not p.exists():
        if p.suffix.lower() == ".npz" and "medmnist" in accepted:
            raise ConfigError(f"MedMNIST file {p} not found; nothing is downloaded at run time: fetch it once "
                              "(e.g. `python -m medmnist save` or from Zenodo) and pass its path")
        raise ConfigError(f"--data {path}: no such file or folder; app {app.name} takes {options}")
    suffix = p.suffix.lower()
    guess = None
    if p.is_dir():
        if "image-mask-folders" in accepted and find_pair_folders(p) is not None:
            guess = "image-mask-folders"
        elif "imagefolder" in accepted:
            guess = "imagefolder"
    elif suffix == ".csv":
        guess = "csv" if "csv" in accepted else "candidates-csv" if "candidates-csv" in accepted else None
    elif suffix == ".npz":
        guess = "medmnist"
    elif suffix == ".json":
        guess = "datalist-json"
    if guess is None or guess not in accepted:
        raise ConfigError(f"--data {path}: app {app.name} ({app.kind}) does not read this; it takes {options}")
    return guess


def load_units(path: str | Path, app, masks: str = "auto") -> RawSet:
    """Read ``path`` in the layout detected for ``app`` into units (images/volumes and annotations); ``masks``:
    how a generic segmentation app reads mask values (binary, semantic, or auto: semantic unless instances)."""
    layout = detect_layout(path, app)
    if LAYOUTS[layout][0] == "segmentation":  # intima-media masks give interfaces and need a pixel spacing
        return READERS[layout](Path(path).expanduser(), interfaces=getattr(app, "interfaces", True),
                               masks_mode=masks)
    return READERS[layout](Path(path).expanduser())


READERS = {
    "imagefolder": load_imagefolder, "csv": load_manifest, "medmnist": load_medmnist,
    "image-mask-folders": load_pair_folders, "datalist-json": load_datalist, "candidates-csv": load_candidates,
}
assert set(READERS) == set(LAYOUTS)
