"""From units to a run's ``SplitData``, in named steps, the same for embedded and real data.

The caller (``tunedepth.apps.build``) supplies the units: the app's generator, or the loader for the data
path chosen by the app's kind. Then:

1. groups: each unit's split group (patient/video/volume), merged with its near-duplicates (``structure``:
   aligned correlation of rank-normalised thumbnails, blind to contrast/gamma/window, tolerant of small crops);
2. splits: train/validation/test by group, stratified by the units' class (or a split given by the data);
3. samples: the app cuts crops/patches out of each split's units (``app.make_samples``), with per-sample meta;
4. training part: optional negative down-sampling, then nested budget ranks by unit, stratified by class;
5. checks: every split non-empty and the validation split able to give the app's metric.

``app`` is any object with the ``tunedepth.apps.App`` fields used here (name, unit, make_samples,
neg_per_pos, num_classes, compute_metric, metric): this layer does not import the apps.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from tunedepth.data.budgets import balance_classes, budget_ranks
from tunedepth.data.near_duplicates import merge_groups
from tunedepth.data.splits import SPLITS, SplitData, assign_splits
from tunedepth.data.stream import is_lazy, stream_samples, stream_signatures, take
from tunedepth.data.structure import SIGNATURE, structure_pairs, unit_signatures
from tunedepth.data.units import RawSet
from tunedepth.errors import ConfigError, MetricError

Log = Callable[[str], None]
LOCAL_IDS = ("candidate", "lesion")  # meta ids numbered per split by make_samples; made unique per run
Part = tuple  # (x uint8 (N, 3, S, S), y (N,), meta dict of numpy arrays, mask (N, S, S) or None)


def subsample_units(raw: RawSet, cap: int, seed: int) -> RawSet:
    """At most ``cap`` units, keeping the class proportions (a seeded draw per class)."""
    rng = np.random.default_rng([int(seed), 303])
    keep = []
    classes, counts = np.unique(raw.labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts / counts.sum() * cap)).astype(int)
    for c, q in zip(classes, quota):
        keep.append(rng.permutation(np.flatnonzero(raw.labels == c))[:q])
    return raw.subset(np.sort(np.concatenate(keep)))


def unit_signatures_of(raw: RawSet) -> np.ndarray:
    """The signature (``structure.unit_signatures``) of every unit's grey thumbnail (a volume's middle slice)."""
    if is_lazy(raw.images):  # files listed, not read: a chunk of units at a time, in worker processes
        return stream_signatures(raw)
    thumbs = raw.thumbnails()
    if isinstance(thumbs, torch.Tensor):
        parts = [unit_signatures(thumbs[i : i + 512]) for i in range(0, len(thumbs), 512)]
        return np.concatenate(parts) if parts else np.zeros((0, SIGNATURE, SIGNATURE), dtype=np.uint8)
    return unit_signatures(thumbs)


def split_groups(raw: RawSet, unit: str, log: Log) -> np.ndarray:
    """Step 1: per unit its split group, the source group (patient/video) merged with its near-duplicates."""
    _, source_codes = np.unique(raw.groups.astype(str), return_inverse=True)
    pairs = structure_pairs(unit_signatures_of(raw))
    groups = merge_groups(source_codes, pairs)
    if len(pairs):
        cross = int(np.sum(source_codes[pairs[:, 0]] != source_codes[pairs[:, 1]]))
        merged = len(np.unique(source_codes)) - len(np.unique(groups))
        log(f"data: near-duplicates merged {merged} split group(s) into others ({len(pairs)} near-duplicate pair(s) "
            f"of {unit}s, {cross} across groups)")
    largest = int(np.bincount(groups).max())
    if len(raw) >= 20 and largest > 0.2 * len(raw):
        log(f"data: warning: one split group holds {largest} of {len(raw)} {unit}s (a patient/video, or a chain of "
            f"near-duplicates); check the group column and duplicate images")
    return groups


def cut_samples(app, raw: RawSet, split: np.ndarray, groups: np.ndarray, image_size: int,
                seed: int, store: Path | None = None) -> dict[str, Part]:
    """Step 3: each split's samples with meta ``group`` (unit id), ``split_group``, ``sample_id``, run-unique ids;
    with ``store`` (a folder) each split's samples are written there and read back per batch
    (``tunedepth.data.stream``)."""
    train_raw = raw.subset(np.flatnonzero(split == "train"))
    parts: dict[str, Part] = {}
    next_id, id_offset = 0, {k: 0 for k in LOCAL_IDS}
    for name in SPLITS:
        units = np.flatnonzero(split == name)
        s = stream_samples(app, raw.subset(units), name, image_size, seed, train_raw, store / f"{name}.u8") \
            if store is not None else app.make_samples(raw.subset(units), name, image_size, seed, train_raw)
        meta = {k: np.asarray(v) for k, v in s.meta.items()}
        local = meta.pop("unit").astype(np.int64)
        meta["group"] = units[local] if local.size else np.zeros(0, dtype=np.int64)
        meta["split_group"] = groups[meta["group"]]
        meta["sample_id"] = next_id + np.arange(len(s.y), dtype=np.int64)
        next_id += len(s.y)
        for k in LOCAL_IDS:
            if k in meta and meta[k].size:
                v = meta[k].astype(np.int64)
                meta[k] = np.where(v >= 0, v + id_offset[k], -1) if k == "lesion" else v + id_offset[k]
                id_offset[k] += int(v.max(initial=-1)) + 1
        parts[name] = (s.x, s.y, meta, s.mask)
    return parts


def downsample_train(part: Part, ratio: float, seed: int, log: Log) -> tuple[Part, dict[str, torch.Tensor]]:
    """Step 4a: negative down-sampling of the training part; returns it and the dropped samples' meta."""
    x, y, meta, mask = part
    keep = balance_classes(y.numpy(), _bundles(y.numpy(), meta), ratio, seed)
    dropped = np.setdiff1d(np.arange(len(y)), keep)
    if dropped.size:
        log(f"data: negative down-sampling kept {keep.size} of {len(y)} training samples (<= {ratio:g} per "
            f"rarest-class sample)")
    dropped_meta = {k: torch.as_tensor(v[dropped]) for k, v in meta.items()}
    dropped_meta["label"] = y[dropped]
    keep_t = torch.as_tensor(keep)
    kept = (take(x, keep_t), y[keep_t], {k: v[keep] for k, v in meta.items()}, None if mask is None else mask[keep_t])
    return kept, dropped_meta


def split_units(app, raw: RawSet, image_size: int, seed: int, neg_per_pos: float | None = None,
                log: Log | None = None, store: Path | None = None) -> SplitData:
    """Steps 1-5 of the module docstring for the units ``raw`` (``store``: see ``cut_samples``)."""
    log = log or (lambda s: None)
    if len(raw) == 0:
        raise ConfigError(f"no {app.unit}s in the data; check the path and its layout")
    if app.make_samples is None:
        raise ConfigError(f"app {app.name!r} cannot cut samples out of units (no make_samples)")
    groups = split_groups(raw, app.unit, log)
    split = assign_splits(raw.labels, groups, seed, preassigned=raw.split)
    parts = cut_samples(app, raw, split, groups, image_size, seed, store)
    empty = [name for name in SPLITS if len(parts[name][1]) == 0]
    if empty:
        raise ConfigError(f"the {', '.join(empty)} split(s) hold no samples ({len(raw)} {app.unit}s in all); add data")
    ratio = app.neg_per_pos if neg_per_pos is None else float(neg_per_pos)
    (tx, ty, tmeta, tmask), dropped_meta = downsample_train(parts["train"], ratio, seed + 2, log)
    ranks = budget_ranks(ty.numpy(), seed + 1, units=tmeta["group"])
    num_classes = max(app.num_classes if raw.kind != "classification" else 0, len(raw.classes),
                      int(max(int(p[1].max()) for p in parts.values())) + 1, 2)
    units_frame = pd.DataFrame({
        "unit_id": np.arange(len(raw)), "unit": list(raw.names), "source_group": raw.groups.astype(str),
        "group": groups, "split": split.astype(str), "label": raw.labels,
    })
    val, test = parts["val"], parts["test"]
    data = SplitData(
        train_x=tx, train_y=ty, train_rank=torch.from_numpy(ranks),
        val_x=val[0], val_y=val[1], test_x=test[0], test_y=test[1],
        train_meta=_tensors(tmeta), val_meta=_tensors(val[2]), test_meta=_tensors(test[2]),
        num_classes=num_classes, classes=tuple(raw.classes), units=units_frame, dropped_meta=dropped_meta,
        train_mask=tmask, val_mask=val[3], test_mask=test[3],
    )
    check_metric(app, data)
    return data


def _bundles(labels: np.ndarray, meta: dict[str, np.ndarray]) -> np.ndarray:
    """What negative down-sampling keeps or drops together: a candidate, else a unit of one label, else a sample."""
    if "candidate" in meta:
        return meta["candidate"]
    group = meta["group"]
    lo = pd.Series(labels).groupby(group).transform("min").to_numpy()
    hi = pd.Series(labels).groupby(group).transform("max").to_numpy()
    return group if np.array_equal(lo, hi) else meta["sample_id"]


def _tensors(meta: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in meta.items()}


def check_metric(app, data: SplitData) -> None:
    """Step 5: the validation metric must be computable (e.g. both classes present) before any trial starts."""
    rng = np.random.default_rng(0)
    for name, split in (("validation", "val"), ("test", "test")):
        y, meta = data.targets(split), getattr(data, f"{split}_meta")
        probs = rng.dirichlet(np.ones(data.num_classes), size=tuple(y.shape))  # (N, [H, W,] C)
        probs = np.moveaxis(probs, -1, 1)  # class axis second, as the network's softmax
        try:
            app.compute_metric(y.numpy(), probs, {k: v.numpy() for k, v in meta.items()})
        except MetricError as e:
            raise ConfigError(f"the {name} split cannot give {app.name}'s metric {app.metric!r}: {e}") from None
