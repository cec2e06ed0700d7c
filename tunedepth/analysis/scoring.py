"""Scoring the selected cells on test: point metrics, bootstrap values (test units and seeds), verdicts.

Steps: select by validation (``selecting.select_cells``) -> per cell, the metric of each replicate seed on
the test split and on the shared resamples -> seeds averaged (point) and resampled (bootstrap) -> per
budget, the best cell by validation and every other cell's verdict against it (``verdicts``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tunedepth.analysis.resampling import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_LEVEL,
    bootstrap_values,
    combine_seeds,
    make_resamples,
    percentile_ci,
    resampling_units,
)
from tunedepth.analysis.selecting import best_by_validation, select_cells
from tunedepth.analysis.verdicts import BEST, LOWER_BOUND, MISSING, compare_with_best
from tunedepth.errors import ConfigError, MetricError
from tunedepth.run_files import SUMMARY_COLUMNS, RunFiles
from tunedepth.space import SCRATCH


@dataclass
class Scored:
    summary: pd.DataFrame  # summary.parquet's frame, one row per budget x depth
    boot: dict  # (budget, depth) -> bootstrap values of the test metric (shared test resamples, seeds drawn)
    notes: list[str]
    labels: np.ndarray | None  # the test labels (None without predictions)
    unit: str  # what was resampled: "split_group", "group" or "sample"


def safe_name(metric: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in metric).strip("_")


def point_metrics(app, cell: dict, extras: bool = True) -> tuple[float, dict[str, float]]:
    """The test metric, and (``extras``) the app's other test metrics."""
    if not extras:
        return float(app.compute_metric(cell["labels"], cell["probs"], cell["meta"])), {}
    values = app.all_metrics(cell["labels"], cell["probs"], cell["meta"])
    primary = values.get(app.metric)
    if primary is None:
        primary = app.compute_metric(cell["labels"], cell["probs"], cell["meta"])
    return float(primary), {k: float(v) for k, v in values.items() if k != app.metric}


def bootstrap_cell(app, cell: dict, resamples, point: float, notes: list[str], where: str) -> np.ndarray:
    """The metric on every resample; the app's vectorised form when it reproduces ``compute_metric``."""
    batched = app.batched_metric
    if batched is not None and np.isfinite(point):
        check_values = batched(cell["labels"], cell["probs"], cell["meta"], np.ones((1, cell["labels"].size)))
        check = float("nan") if check_values is None else float(np.asarray(check_values)[0])
        if check_values is None:  # the vectorised form does not apply to this data (e.g. more classes)
            batched = None
        elif not math.isclose(check, point, rel_tol=1e-9, abs_tol=1e-12):
            notes.append(f"{where}: the app's batched metric gives {check} but compute_metric {point}; "
                         "bootstrapped with compute_metric instead (fix the app's batched_metric)")
            batched = None
    return bootstrap_values(app.compute_metric, cell["labels"], cell["probs"], cell["meta"], resamples, batched)


def shared_resamples(preds: dict, n_boot: int, seed: int):
    """One set of resamples for every cell: all cells must have scored the same test split."""
    first = next(iter(preds.values()))
    for key, cell in preds.items():
        if not np.array_equal(cell["labels"], first["labels"]) or not np.array_equal(cell["samples"], first["samples"]):
            raise ConfigError(f"predictions.parquet: cell {key} was evaluated on a different test split; "
                              "rerun the search")
    units = resampling_units(first["meta"])
    unit = "split_group" if "split_group" in first["meta"] else ("group" if units is not None else "sample")
    return first["labels"], make_resamples(first["labels"], units, n_boot=n_boot, seed=seed), unit


def _cell_row(app, sel) -> dict:
    return {
        "app": sel.app,
        "backbone": sel.backbone,
        "source": sel.source,
        "metric": app.metric,
        "mode": app.mode,
        "budget": float(sel.budget),
        "n_train": int(sel.n_train),
        "depth": sel.depth,
        "depth_index": int(sel.depth_index),
        "trial_id": sel.trial_id,
        "trial_ids": str(sel.trial_ids),
        "lr": float(sel.lr),
        "schedule": str(getattr(sel, "schedule", "paper")),
        "seed": int(sel.seed),
        "n_seeds": int(sel.n_seeds),
        "seeds": str(sel.seeds),
        "selected_epoch": int(sel.epoch),
        "evaluated_epoch": -1,
        "epochs_run": int(sel.epochs_run),
        "complete": bool(sel.complete),
        "converged": bool(getattr(sel, "converged", False)),
        "capped": int(getattr(sel, "capped", 0)),
        "trials": int(sel.trials),
        "epochs_spent": int(sel.epochs_spent),
        "val_metric": float(sel.val_metric),
        "n_test": 0,
        "test_metric": np.nan,
        "test_metric_low": np.nan,
        "test_metric_high": np.nan,
    }


def score_cell(
    app, sel, preds: dict, resamples, seed: int, level: float, notes: list[str], extras: bool = True
) -> tuple[dict, np.ndarray | None]:
    """A summary row and the cell's bootstrap values (None without test predictions)."""
    row, where = _cell_row(app, sel), f"{sel.depth} @ budget {sel.budget:g}"
    wanted = dict(zip((int(s) for s in str(sel.seeds).split(",")), str(sel.trial_ids).split(",")))
    cells = []
    for s, tid in wanted.items():
        cell = preds.get((float(sel.budget), str(sel.depth), s))
        if cell is not None and str(cell["info"]["trial_id"]) != tid:
            notes.append(f"{where}: predictions.parquet holds trial {cell['info']['trial_id']} for seed {s} but "
                         f"validation selects {tid}; left out (rerun the search to re-evaluate)")
            cell = None
        if cell is not None:
            cells.append(cell)
    if not cells:
        if preds:
            notes.append(f"{where}: no test predictions (no checkpoint could be evaluated)")
        return row, None
    points, boots, others = [], [], []
    for cell in cells:
        try:
            point, extra = point_metrics(app, cell, extras)
        except MetricError as e:
            notes.append(f"{where}: test metric undefined ({e})")
            point, extra = float("nan"), {}
        points.append(point)
        others.append(extra)
        boots.append(bootstrap_cell(app, cell, resamples, point, notes, where))
    info = next(c["info"] for c in cells if str(c["info"]["trial_id"]) == str(sel.trial_id)) \
        if any(str(c["info"]["trial_id"]) == str(sel.trial_id) for c in cells) else cells[0]["info"]
    row["evaluated_epoch"] = int(info["evaluated_epoch"])
    if len(cells) == 1 and row["evaluated_epoch"] != row["selected_epoch"]:
        notes.append(f"{where}: best validation epoch {row['selected_epoch']} had no checkpoint left; "
                     f"epoch {row['evaluated_epoch']} was evaluated instead")
    values = combine_seeds(np.vstack(boots), seed=seed + 7919 * int(sel.depth_index) + int(1e6 * sel.budget))
    low, high = percentile_ci(values, level)
    row.update(n_test=int(cells[0]["labels"].size), test_metric=float(np.mean(points)), test_metric_low=low,
               test_metric_high=high)
    if len(cells) < len(wanted):
        notes.append(f"{where}: {len(cells)} of the {len(wanted)} replicate seeds have test predictions; "
                     "the test metric averages those")
    for name in others[0]:
        row[f"test_{safe_name(name)}"] = float(np.mean([e.get(name, np.nan) for e in others]))
    return row, values


DERIVED = ("is_best", "verdict", "indistinguishable_from_best", "p_vs_best", "p_vs_best_holm",
           "delta_vs_best", "delta_vs_best_low", "delta_vs_best_high",
           "delta_vs_scratch", "delta_vs_scratch_low", "delta_vs_scratch_high")


def add_verdicts(summary: pd.DataFrame, boot: dict, mode, margin: float, alpha: float) -> pd.DataFrame:
    """Per budget: ``is_best`` (by validation), each other cell's verdict against it, and Δ vs scratch."""
    summary = summary.reset_index(drop=True)
    n = len(summary)
    cols = {c: np.full(n, np.nan) for c in DERIVED if c not in ("is_best", "verdict", "indistinguishable_from_best")}
    is_best, verdicts = np.zeros(n, bool), np.full(n, MISSING, dtype=object)
    points = summary["test_metric"].to_numpy()
    for budget, group in summary.groupby("budget"):
        best = best_by_validation(group, mode).index[0]
        is_best[best], verdicts[best] = True, BEST
        have = {i: boot[(float(budget), str(summary.at[i, "depth"]))] for i in group.index
                if (float(budget), str(summary.at[i, "depth"])) in boot}
        for i, c in compare_with_best(dict(enumerate(points)), have, best, mode, margin, alpha).items():
            for col, v in (("delta_vs_best", c.delta), ("delta_vs_best_low", c.low), ("delta_vs_best_high", c.high),
                           ("p_vs_best", c.p), ("p_vs_best_holm", c.p_holm)):
                cols[col][i] = v
            verdicts[i] = c.verdict
        scratch = group.index[group["depth"] == SCRATCH]
        if len(scratch) and scratch[0] in have:
            for i in have:
                low, high = percentile_ci(have[i] - have[scratch[0]], 1 - alpha)
                cols["delta_vs_scratch"][i] = points[i] - points[scratch[0]]
                cols["delta_vs_scratch_low"][i], cols["delta_vs_scratch_high"][i] = low, high
        if best in have:
            cols["delta_vs_best"][best] = cols["delta_vs_best_low"][best] = cols["delta_vs_best_high"][best] = 0.0
    summary = summary.assign(is_best=is_best, verdict=verdicts, **cols)
    # a capped cell's score is a lower bound: "worse" on it is no verdict (it would only be trained further)
    capped = summary["capped"].fillna(0).astype(int) > 0 if "capped" in summary else np.zeros(n, bool)
    summary.loc[capped & (summary["verdict"] == "worse"), "verdict"] = LOWER_BOUND
    summary["verdict"] = summary["verdict"].astype(str)
    summary["indistinguishable_from_best"] = summary["verdict"].isin([BEST, "equivalent", "inconclusive", "better",
                                                                                LOWER_BOUND])
    return summary.sort_values(["budget", "depth_index"], ignore_index=True)


def summarise(files: RunFiles, app, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, level: float = DEFAULT_LEVEL,
              margin: float = 0.0, extras: bool = True) -> Scored:
    """Select by validation, score each cell's replicate seeds on test, verdicts within each budget."""
    notes: list[str] = []
    cells = select_cells(files.trials, app.mode)
    preds = files.predictions or {}
    labels = resamples = None
    unit = "sample"
    if files.predictions is None:
        notes.append("no predictions.parquet: test metrics are missing, the answer below is by validation only")
    elif preds:
        labels, resamples, unit = shared_resamples(preds, n_boot, seed)
    rows, boot = [], {}
    for sel in cells.itertuples(index=False):
        row, values = score_cell(app, sel, preds, resamples, seed, level, notes, extras)
        rows.append(row)
        if values is not None:
            boot[(float(sel.budget), str(sel.depth))] = values
    base = [c for c in SUMMARY_COLUMNS if c not in DERIVED]
    extra = list(dict.fromkeys(k for r in rows for k in r if k not in base))
    summary = pd.DataFrame([{**{c: r.get(c, np.nan) for c in base + extra}} for r in rows], columns=base + extra)
    if summary.empty:
        return Scored(summary.reindex(columns=list(SUMMARY_COLUMNS)), boot, notes, labels, unit)
    summary = add_verdicts(summary, boot, app.mode, margin, 1 - level)
    return Scored(summary[list(SUMMARY_COLUMNS) + extra], boot, notes, labels, unit)
