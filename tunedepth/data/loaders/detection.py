"""Detection units from a CSV of candidates: ``image,x,y,label[,group][,z][,size][,lesion]``.

One row per candidate; ``image`` is a path relative to the CSV (a 2-D image, or with a ``z`` column a 3-D
volume: ``.npy`` indexed [z, y, x] in Hounsfield units, or NIfTI/MHA through MONAI). ``x``, ``y`` (``z``) are
the candidate's pixel (voxel) coordinates, column first; ``label`` 1 = lesion, 0 = not. Optional: ``group``
(patient/video: never split), ``size`` (lesion diameter in pixels: sets the patch scales), ``lesion`` (an id
shared by candidates on the same lesion, so FROC counts it once). A unit is an image (frame or volume).

A lesion the candidate generator missed is a row with label 1 and empty coordinates: it has no patch, but
FROC divides by all lesions, so it lowers every sensitivity (rows sharing a ``lesion`` id count once; an id
that also has candidates is not missed). An image needs at least one candidate to be scored at all.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tunedepth.data.loaders.files import read_image, read_table, read_volume
from tunedepth.data.units import RawSet
from tunedepth.errors import ConfigError


def load_candidates(csv_path: Path) -> RawSet:
    table = read_table(csv_path, "image,x,y,label[,group]", "candidate", {"image": str, "group": str})
    missing = [c for c in ("image", "x", "y", "label") if c not in table.columns]
    if missing:
        raise ConfigError(f"{csv_path} lacks column(s) {missing}; its header must read image,x,y,label[,group] "
                          f"(found {list(table.columns)})")
    if table.empty:
        raise ConfigError(f"{csv_path} lists no candidates")
    three_d = "z" in table.columns
    coords = ["x", "y", "z"] if three_d else ["x", "y"]
    table, missed = _split_missed(table, coords)
    for c in coords + ["label"]:
        values = pd.to_numeric(table[c], errors="coerce")
        if values.isna().any():
            line = int(np.flatnonzero(values.isna())[0]) + 2
            raise ConfigError(f"{csv_path} line {line}: column {c} must be a number; fix or remove the row")
        table[c] = values
    if not table["label"].isin([0, 1]).all():
        raise ConfigError(f"{csv_path}: label must be 0 (not a lesion) or 1 (lesion) in every row")
    if table["label"].nunique() < 2:
        raise ConfigError(f"{csv_path}: every candidate has label {int(table['label'].iloc[0])}; "
                          "detection needs lesion (1) and non-lesion (0) candidates")
    units = list(dict.fromkeys(table["image"].astype(str)))
    index = {name: i for i, name in enumerate(units)}
    base = csv_path.parent
    images = []
    for name in units:
        p = Path(name).expanduser()
        p = p if p.is_absolute() else base / p
        where = f" (listed in {csv_path})"
        images.append(read_volume(p, where) if three_d else read_image(p, where=where))
    for name, img in zip(units, images):
        rows = table[table["image"].astype(str) == name]
        shape = img.shape if three_d else img.shape[-2:]
        limits = (shape[2], shape[1], shape[0]) if three_d else (shape[1], shape[0])
        for c, lim in zip(coords, limits):
            if ((rows[c] < 0) | (rows[c] > lim - 1)).any():
                raise ConfigError(f"{csv_path}: a candidate of {name} has {c} outside 0..{lim - 1}; "
                                  "coordinates are pixel indices, column (x) first")
    cand = pd.DataFrame({"unit": table["image"].astype(str).map(index).to_numpy()})
    for c in coords:
        cand[c] = table[c].to_numpy(dtype=np.float64)
    cand["label"] = table["label"].to_numpy(dtype=np.int64)
    cand["size"] = pd.to_numeric(table["size"], errors="coerce").to_numpy() if "size" in table else np.nan
    if "lesion" in table:
        codes = pd.factorize(table["lesion"].astype(str))[0]
        cand["lesion"] = np.where(cand["label"] == 1, codes, -1)
    else:
        cand["lesion"] = np.where(cand["label"] == 1, np.arange(len(cand)), -1)
    cand["missed"] = np.array([missed.get(units[u], 0) for u in cand["unit"]], dtype=np.int64)
    cand = cand.sort_values("unit", kind="stable").reset_index(drop=True)
    labels = np.zeros(len(units), dtype=np.int64)
    labels[cand.loc[cand.label == 1, "unit"].to_numpy()] = 1
    groups = None
    if "group" in table.columns:
        first = table.groupby(table["image"].astype(str), sort=False)["group"].first()
        groups = np.asarray([str(first[u]) for u in units], dtype=object)
    return RawSet("detection", images, labels, units, groups=groups, classes=("non-lesion", "lesion"),
                  candidates=cand)


def _split_missed(table: pd.DataFrame, coords: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Candidate rows, and per image the number of lesions without a candidate (label 1, no coordinates)."""
    empty = table[coords].isna().all(axis=1)
    label = pd.to_numeric(table["label"], errors="coerce")
    rows = table[empty & (label == 1)]
    table = table[~(empty & (label == 1))].reset_index(drop=True)
    if rows.empty:
        return table, {}
    if "lesion" in rows:
        found = set(table["lesion"].dropna().astype(str)) if "lesion" in table else set()
        ids = (
            rows["lesion"]
            .astype(str)
            .where(rows["lesion"].notna(), pd.Series(rows.index.astype(str), index=rows.index))
        )
        rows = rows[~ids.isin(found)].assign(_id=ids).drop_duplicates(["image", "_id"])
    return table, rows.groupby(rows["image"].astype(str)).size().to_dict()
