"""Segmentation metrics: per-column boundary error (um), Dice (MONAI), and the intima-media scores of the
patch head (``interface_metrics``) and of whole-image masks (``mask_interface_*``)."""
from __future__ import annotations

import warnings

import numpy as np

from tunedepth.errors import MetricError
from tunedepth.metrics.common import aggregate_mean
from tunedepth.metrics.common import check_finite as _finite


def boundary_rows(scores, units, columns, rows):
    """Per (unit, column): the row of the highest score (ties: the topmost row).

    Returns ``(units, columns, rows)`` arrays, one entry per distinct (unit, column), sorted.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    units, columns, rows = (np.asarray(a).ravel() for a in (units, columns, rows))
    order = np.lexsort((rows, -scores, columns, units))
    u, c = units[order], columns[order]
    first = np.r_[True, (u[1:] != u[:-1]) | (c[1:] != c[:-1])]
    pick = order[first]
    return units[pick], columns[pick], rows[pick]


def compute_boundary_error(pred_rows, true_rows, spacing_um, units=None) -> float:
    """Mean absolute boundary error in micrometres: |predicted row - true row| x pixel spacing, per column.

    With ``units`` the mean is taken per unit (image) first, then over units, so every image weighs the same.
    """
    err = np.abs(np.asarray(pred_rows, dtype=np.float64) - np.asarray(true_rows, dtype=np.float64))
    err = err * np.asarray(spacing_um, dtype=np.float64)
    if err.size == 0:
        raise MetricError("no annotated column to measure a boundary error on")
    if units is None:
        return float(err.mean())
    _, per_unit, _ = aggregate_mean(units, err)
    return float(per_unit.mean())


def compute_dice(pred_mask, true_mask) -> float:
    """Dice of two binary masks (B, H, W) with MONAI, averaged over the items whose truth is not empty."""
    import torch
    from monai.metrics import compute_dice as monai_dice

    p = torch.as_tensor(np.asarray(pred_mask, dtype=np.float32))[:, None]
    t = torch.as_tensor(np.asarray(true_mask, dtype=np.float32))[:, None]
    d = monai_dice(p, t, include_background=True, ignore_empty=True).numpy().ravel()
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise MetricError("Dice needs at least one non-empty ground-truth region")
    return float(d.mean())


def interface_metrics(labels, probs, meta) -> dict[str, float]:
    """Intima-media: boundaries per column from per-pixel patch probabilities; errors in um and Dice.

    For each (image, column) the lumen-intima (LI) interface is the row with the highest P(class 1) and the
    media-adventitia (MA) interface the row with the highest P(class 2). ``meta``: ``group`` (image),
    ``column``, ``row``, ``li_true``, ``ma_true`` (true rows, may be fractional), ``spacing_um``. The
    intima-media region is the rows between the interfaces; Dice compares it per image.
    """
    probs = np.asarray(probs, dtype=np.float64)
    _finite(probs)
    units, cols, rows = (np.asarray(meta[k]).ravel() for k in ("group", "column", "row"))
    out: dict[str, float] = {}
    found = {}
    for name, cls in (("li", 1), ("ma", 2)):
        u, c, r = boundary_rows(probs[:, cls], units, cols, rows)
        found[name] = r
    # truth and spacing per (unit, column), in the same sorted order as boundary_rows
    order = np.lexsort((cols, units))
    first = order[np.r_[True, (units[order][1:] != units[order][:-1]) | (cols[order][1:] != cols[order][:-1])]]
    li_t, ma_t = np.asarray(meta["li_true"]).ravel()[first], np.asarray(meta["ma_true"]).ravel()[first]
    spacing = np.asarray(meta["spacing_um"]).ravel()[first]
    out["li_mae_um"] = compute_boundary_error(found["li"], li_t, spacing, u)
    out["ma_mae_um"] = compute_boundary_error(found["ma"], ma_t, spacing, u)
    out["mae_um"] = 0.5 * (out["li_mae_um"] + out["ma_mae_um"])
    thick_err = np.abs((found["ma"] - found["li"]) - (ma_t - li_t)) * spacing
    _, per_unit, _ = aggregate_mean(u, thick_err)
    out["imt_mae_um"] = float(per_unit.mean())
    out["dice"] = _region_dice(units, cols, rows, u, c, found["li"], found["ma"], li_t, ma_t)
    out["n_units"] = float(np.unique(u).size)
    return out


def _region_dice(units, cols, rows, cu, cc, li_p, ma_p, li_t, ma_t) -> float:
    """Dice of the predicted vs true intima-media region on each image's evaluated (row, column) grid."""
    key = {(a, b): k for k, (a, b) in enumerate(zip(cu.tolist(), cc.tolist()))}
    k = np.array([key[(a, b)] for a, b in zip(units.tolist(), cols.tolist())])
    pred = (rows >= li_p[k]) & (rows <= ma_p[k])
    true = (rows >= li_t[k]) & (rows <= ma_t[k])
    scores = []
    for unit in np.unique(units):
        m = units == unit
        r_ids, r_inv = np.unique(rows[m], return_inverse=True)
        c_ids, c_inv = np.unique(cols[m], return_inverse=True)
        p_img = np.zeros((1, r_ids.size, c_ids.size), dtype=bool)
        t_img = np.zeros_like(p_img)
        p_img[0, r_inv, c_inv] = pred[m]
        t_img[0, r_inv, c_inv] = true[m]
        if t_img.any():
            scores.append(compute_dice(p_img, t_img))
    if not scores:
        raise MetricError("Dice needs at least one image with an annotated intima-media region")
    return float(np.mean(scores))


# ------------------------------------------------------- whole-image masks (intima-media-seg)

MASK_IGNORE = 255  # mask value of pixels without annotation (tunedepth.data.units.IGNORE)


def mask_boundaries(probs) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the two class transitions of a 3-class mask (above LI / intima-media / below MA).

    ``probs`` (N, 3, H, W). Returns ``(r1, r2)`` (N, W): the first intima-media row and the first row below
    it, r1 < r2, chosen by maximum likelihood of a two-step profile: the rows above r1 are class 0, rows
    r1..r2-1 class 1 and rows from r2 class 2, i.e. argmax of sum log p0[:r1] + sum log p1[r1:r2] +
    sum log p2[r2:]. Exact for a clean mask; stray pixels of a class elsewhere in the column do not move it.
    """
    p = np.asarray(probs, dtype=np.float64)
    _finite(p)
    n, _, h, w = p.shape
    logp = np.log(np.clip(p, 1e-12, 1.0))
    cum = np.concatenate([np.zeros((n, 3, 1, w)), np.cumsum(logp, axis=2)], axis=2)  # (N, 3, H+1, W)
    g = cum[:, 0] - cum[:, 1]  # (N, H+1, W): value of r1
    best, best_at = g[:, 0].copy(), np.zeros((n, w), dtype=np.int64)
    prefix, prefix_at = np.empty_like(g), np.empty(g.shape, dtype=np.int64)
    for r in range(h + 1):  # running max over r1 <= r
        better = g[:, r] > best
        best = np.where(better, g[:, r], best)
        best_at = np.where(better, r, best_at)
        prefix[:, r], prefix_at[:, r] = best, best_at
    score = prefix[:, :-1] + cum[:, 1, 1:] + (cum[:, 2, -1:] - cum[:, 2, 1:])  # (N, H, W) for r2 = 1..H
    r2 = 1 + np.argmax(score, axis=1)
    r1 = np.take_along_axis(prefix_at, (r2 - 1)[:, None], axis=1)[:, 0]
    return r1, r2


def mask_interface_summary(masks, probs, meta) -> tuple[np.ndarray, dict]:
    """Whole-image predictions -> one row per image: what ``mask_interface_metrics`` needs to score it again.

    ``masks`` (N, H, W) true class ids (``MASK_IGNORE`` in columns without annotation), ``probs`` (N, 3, H, W).
    Returns class probabilities averaged over each image (N, 3) and ``meta`` plus ``li_pred``/``ma_pred``
    (N, W): the predicted first and last intima-media rows of each column in original pixel rows (input rows
    x ``meta["row_scale"]``, as the truth ``li_true``/``ma_true``), and ``dice`` (N,): MONAI's DiceMetric of
    the predicted intima-media region (rows between the transitions) vs the true one, annotated columns only.
    """
    import torch
    from monai.metrics import DiceMetric

    masks, probs = np.asarray(masks), np.asarray(probs, dtype=np.float64)
    r1, r2 = mask_boundaries(probs)
    scale = np.asarray(meta["row_scale"], dtype=np.float64).reshape(-1, 1)
    annotated = ~(masks == MASK_IGNORE).any(axis=1)  # (N, W)
    rows = np.arange(masks.shape[1])[None, :, None]
    pred = (rows >= r1[:, None, :]) & (rows < r2[:, None, :]) & annotated[:, None, :]
    true = (masks == 1) & annotated[:, None, :]
    dice = DiceMetric(include_background=True, reduction="none", ignore_empty=True)(
        torch.as_tensor(pred[:, None], dtype=torch.float32), torch.as_tensor(true[:, None], dtype=torch.float32))
    out = dict(meta)
    out["li_pred"] = r1 * scale
    out["ma_pred"] = r2 * scale - 1.0
    out["dice"] = dice.numpy().reshape(-1).astype(np.float64)
    return probs.mean(axis=(2, 3)), out


def mask_interface_values(meta) -> dict[str, np.ndarray]:
    """Per-image boundary errors (um, mean over annotated columns) and Dice from a summary's meta."""
    li_p, ma_p = np.asarray(meta["li_pred"], dtype=np.float64), np.asarray(meta["ma_pred"], dtype=np.float64)
    li_t, ma_t = np.asarray(meta["li_true"], dtype=np.float64), np.asarray(meta["ma_true"], dtype=np.float64)
    spacing = np.asarray(meta["spacing_um"], dtype=np.float64).reshape(-1, 1)
    ok = np.isfinite(li_t) & np.isfinite(ma_t)
    if not ok.any(axis=1).all():
        raise MetricError("an evaluated image has no annotated column; check its mask")
    _finite(np.where(ok, li_p + ma_p, 0.0))

    def per_image(err):
        return np.where(ok, err, 0.0).sum(axis=1) / ok.sum(axis=1)

    li = per_image(np.abs(li_p - li_t) * spacing)
    ma = per_image(np.abs(ma_p - ma_t) * spacing)
    imt = per_image(np.abs((ma_p - li_p) - (ma_t - li_t)) * spacing)
    return {"li_mae_um": li, "ma_mae_um": ma, "mae_um": 0.5 * (li + ma), "imt_mae_um": imt,
            "dice": np.asarray(meta["dice"], dtype=np.float64)}


def mask_interface_metrics(labels, probs, meta) -> dict[str, float]:
    """Intima-media from whole-image masks: the patch head's metrics (``interface_metrics``), per image.

    Takes the network's output (``labels`` = masks (N, H, W), ``probs`` (N, 3, H, W)), as validation does, or
    its per-image summary (``probs`` (N, 3), ``meta`` with ``li_pred``/``ma_pred``/``dice``), as
    predictions.parquet keeps it. Boundary errors: mean over an image's annotated columns of |predicted -
    true row| x spacing, then mean over images; ``mae_um`` = mean of the LI and MA errors; ``dice`` = mean
    over images whose intima-media region is not empty.
    """
    if np.asarray(probs).ndim == 4:
        probs, meta = mask_interface_summary(labels, probs, meta)
    v = mask_interface_values(meta)
    out = {k: float(np.mean(v[k])) for k in ("li_mae_um", "ma_mae_um", "mae_um", "imt_mae_um")}
    dice = v["dice"][np.isfinite(v["dice"])]
    if dice.size == 0:
        raise MetricError("Dice needs at least one image with an annotated intima-media region")
    out["dice"] = float(dice.mean())
    out["n_units"] = float(len(v["mae_um"]))
    return out


def mask_interface_batched(labels, probs, meta, counts) -> np.ndarray | None:
    """``mae_um`` under each row of bootstrap counts (B, N) of the per-image summary (None for raw output)."""
    if np.asarray(probs).ndim != 2:
        return None
    per_image = mask_interface_values(meta)["mae_um"]
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    return counts @ per_image / counts.sum(axis=1)


# ------------------------------------------------------------- whole-image label maps (generic app)

def _one_hot(masks: np.ndarray, num_classes: int):
    import torch

    t = torch.as_tensor(np.asarray(masks, dtype=np.int64))
    return torch.nn.functional.one_hot(t, num_classes).permute(0, 3, 1, 2).float()


def mask_dice_per_class(pred, true, num_classes: int) -> np.ndarray:
    """Per image and foreground class (N, C - 1): Dice (MONAI) of each class present in the truth ``true``
    (N, H, W); NaN where the class is absent from the image's truth. ``MASK_IGNORE`` pixels do not count."""
    from monai.metrics import compute_dice as monai_dice

    pred, true = np.asarray(pred, dtype=np.int64), np.asarray(true, dtype=np.int64)
    keep = true != MASK_IGNORE
    pred, true = np.where(keep, pred, 0), np.where(keep, true, 0)
    d = monai_dice(_one_hot(pred, num_classes), _one_hot(true, num_classes), include_background=False,
                   ignore_empty=True).numpy()
    return np.where(np.isfinite(d), d, np.nan)


def compute_mask_dice(pred, true, num_classes: int) -> np.ndarray:
    """Per image (N,): mean Dice (MONAI) over the foreground classes present in its truth ``true`` (N, H, W);
    NaN for an image without foreground. Pixels marked ``MASK_IGNORE`` in the truth do not count."""
    d = mask_dice_per_class(pred, true, num_classes)
    with warnings.catch_warnings():  # an image without foreground: all-NaN row, NaN mean
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(d, axis=1)


def compute_mask_boundary_error(pred, true, num_classes: int) -> np.ndarray:
    """Per image (N,): average symmetric surface distance in pixels (MONAI) between predicted and true regions,
    mean over the foreground classes present in the truth; a class present but not predicted costs the
    image's diagonal. NaN for an image without foreground."""
    from monai.metrics import compute_average_surface_distance

    pred, true = np.asarray(pred, dtype=np.int64), np.asarray(true, dtype=np.int64)
    keep = true != MASK_IGNORE
    pred, true = np.where(keep, pred, 0), np.where(keep, true, 0)
    p, t = _one_hot(pred, num_classes), _one_hot(true, num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = compute_average_surface_distance(p, t, include_background=False, symmetric=True).numpy()
    present = t[:, 1:].flatten(2).amax(2).numpy() > 0
    predicted = p[:, 1:].flatten(2).amax(2).numpy() > 0
    d = np.where(present & ~predicted, float(np.hypot(*pred.shape[-2:])), d)
    d = np.where(present, d, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(d, axis=1)


def label_map_summary(masks, probs, meta) -> tuple[np.ndarray, dict]:
    """Whole-image label-map predictions -> one row per image: class probabilities averaged over the image and
    ``meta`` plus its ``dice`` and ``boundary_px`` (what ``label_map_metrics`` scores again)."""
    probs = np.asarray(probs, dtype=np.float64)
    _finite(probs)
    pred, k = probs.argmax(axis=1), probs.shape[1]
    out = dict(meta)
    per_class = mask_dice_per_class(pred, masks, k)
    with warnings.catch_warnings():  # an image without foreground: all-NaN row, NaN mean
        warnings.simplefilter("ignore", RuntimeWarning)
        out["dice"] = np.nanmean(per_class, axis=1)
    for c in range(1, k):  # per foreground class: what "Dice per class" in the report is computed from
        out[f"{DICE_CLASS}{c}"] = per_class[:, c - 1]
    out["boundary_px"] = compute_mask_boundary_error(pred, masks, k)
    return probs.mean(axis=(2, 3)), out


def label_map_dice(labels, probs, meta) -> float:
    """``label_map_metrics(...)["dice"]`` alone: from the network's output, only Dice is computed (no surface
    distances), the validation metric a trial scores 31 times per epoch; from a summary, its ``dice``."""
    if np.asarray(probs).ndim == 4:
        probs = np.asarray(probs, dtype=np.float64)
        _finite(probs)
        return _mean_image_dice(compute_mask_dice(probs.argmax(axis=1), labels, probs.shape[1]))
    return _mean_image_dice(meta["dice"])


def _mean_image_dice(dice) -> float:
    """The mean of per-image Dice (float32 per image, the mean in float64) over images with foreground."""
    dice = np.asarray(dice, dtype=np.float64)
    ok = np.isfinite(dice)
    if not ok.any():
        raise MetricError("Dice needs at least one image with a foreground region in the evaluated split")
    return float(dice[ok].mean())


DICE_CLASS = "dice_class"  # per-class Dice keys: dice_class1 ... dice_class{C-1} (class ids as the masks code them)


def label_map_metrics(labels, probs, meta) -> dict[str, float]:
    """Generic segmentation: ``dice`` (mean over images with foreground), ``dice_class<k>`` per foreground class
    (mean over the images whose truth holds class k) and ``boundary-error`` (pixels), from the network's output
    (``labels`` masks (N, H, W), ``probs`` (N, C, H, W)) or its per-image summary."""
    if np.asarray(probs).ndim == 4:
        probs, meta = label_map_summary(labels, probs, meta)
    bd = np.asarray(meta["boundary_px"], dtype=np.float64)
    out = {"dice": _mean_image_dice(meta["dice"]), "boundary-error": float(np.nanmean(bd[np.isfinite(bd)])),
           "n_units": float(np.isfinite(np.asarray(meta["dice"], dtype=np.float64)).sum())}
    for key in sorted((k for k in meta if str(k).startswith(DICE_CLASS)), key=lambda k: int(k[len(DICE_CLASS):])):
        d = np.asarray(meta[key], dtype=np.float64)
        out[key] = float(d[np.isfinite(d)].mean()) if np.isfinite(d).any() else float("nan")
    return out
