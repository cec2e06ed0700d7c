"""From Tune's ResultGrid to tables: one row per trial per epoch, and the best depth per budget."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

CONFIG_COLUMNS = ("app", "backbone", "source", "depth", "budget", "lr", "schedule", "seed")
TRIAL_COLUMNS = (
    "trial_id", "app", "backbone", "source", "depth", "depth_index", "budget", "lr", "schedule", "seed",
    "epoch", "val_metric", "val_loss", "train_loss", "time_s", "n_train", "metric", "status",
)

# summary.parquet: one row per budget x depth (README "Output"); apps with several test metrics add
# ``test_<name>`` columns after these (point estimates of App.all_metrics besides the main metric)
SUMMARY_COLUMNS = (
    "app", "backbone", "source", "metric", "mode", "budget", "n_train", "depth", "depth_index",
    "trial_id", "lr", "seed", "selected_epoch", "evaluated_epoch", "epochs_run", "trials", "epochs_spent",
    "val_metric", "n_test", "test_metric", "test_metric_low", "test_metric_high",
    "is_best", "indistinguishable_from_best", "delta_vs_best", "delta_vs_best_low", "delta_vs_best_high",
    "delta_vs_scratch", "delta_vs_scratch_low", "delta_vs_scratch_high",
)


def trials_frame(result_grid, metric_name: str) -> pd.DataFrame:
    """Every reported epoch of every trial, with the trial's config; errored trials keep what they reported."""
    frames = []
    for result in result_grid:
        df = result.metrics_dataframe
        if df is None or df.empty:
            continue
        # a trial resumed from an older checkpoint re-reports some epochs: keep the latest report of each
        df = df.drop_duplicates(subset="epoch", keep="last")
        cfg = result.config
        rows = pd.DataFrame({
            "trial_id": df["trial_id"].astype(str),
            "app": cfg["app"], "backbone": cfg["backbone"],
            "source": df["source"].astype(str) if "source" in df else cfg["source"],
            "depth": cfg["depth"], "depth_index": df["depth_index"].astype(int),
            "budget": float(cfg["budget"]), "lr": float(cfg["lr"]), "schedule": cfg["schedule"],
            "seed": int(cfg["seed"]), "epoch": df["epoch"].astype(int),
            "val_metric": df["val_metric"].astype(float), "val_loss": df["val_loss"].astype(float),
            "train_loss": df["train_loss"].astype(float), "time_s": df["time_s"].astype(float),
            "n_train": df["n_train"].astype(int), "metric": metric_name,
            "status": "error" if result.error else "ok",
        })
        frames.append(rows)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TRIAL_COLUMNS})
    return pd.concat(frames, ignore_index=True)[list(TRIAL_COLUMNS)].sort_values(["budget", "depth_index", "trial_id", "epoch"], ignore_index=True)


def best_per_trial(trials: pd.DataFrame, mode: str) -> pd.DataFrame:
    """One row per trial at its best validation epoch (early stopping on validation)."""
    ascending = mode == "min"
    ordered = trials.sort_values(["trial_id", "val_metric", "epoch"], ascending=[True, ascending, True])
    best = ordered.groupby("trial_id", sort=False).head(1).copy()
    best["epochs_run"] = trials.groupby("trial_id")["epoch"].max().reindex(best["trial_id"]).to_numpy()
    return best.reset_index(drop=True)


def select_trials(trials: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Per budget x depth, the trial selected by validation only: the best trial at its best epoch.

    One row per cell (the selected trial's row at ``epoch`` = its best validation epoch), plus
    ``epochs_run`` (epochs the selected trial reached), ``trials`` and ``epochs_spent`` (all trials of
    the cell). Ties go to the earlier epoch, then the smaller trial id, so the selection is deterministic.
    """
    trials = trials[np.isfinite(trials["val_metric"].to_numpy(dtype=float))]
    if trials.empty:
        return trials.assign(epochs_run=pd.Series(dtype=int), trials=pd.Series(dtype=int),
                             epochs_spent=pd.Series(dtype=int))
    per_trial = best_per_trial(trials, mode)
    ascending = mode == "min"
    ordered = per_trial.sort_values(["budget", "depth_index", "val_metric", "trial_id"],
                                    ascending=[True, True, ascending, True])
    selected = ordered.groupby(["budget", "depth"], sort=False).head(1).copy()
    cells = trials.groupby(["budget", "depth"])
    selected["trials"] = cells["trial_id"].nunique().reindex(
        pd.MultiIndex.from_frame(selected[["budget", "depth"]])).to_numpy()
    selected["epochs_spent"] = cells.size().reindex(pd.MultiIndex.from_frame(selected[["budget", "depth"]])).to_numpy()
    return selected.reset_index(drop=True)


def best_depth_table(trials: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Per budget: the best depth by validation, its metric, scratch's metric, trials and epochs spent."""
    per_trial = best_per_trial(trials, mode)
    ascending = mode == "min"
    rows = []
    for budget, group in per_trial.groupby("budget"):
        g = group.sort_values(["val_metric", "depth_index"], ascending=[ascending, True])
        top = g.iloc[0]
        scratch = g[g["depth"] == "scratch"]
        rows.append({
            "budget": float(budget),
            "n_train": int(top["n_train"]),
            "best_depth": top["depth"],
            "best_val": float(top["val_metric"]),
            "best_lr": float(top["lr"]),
            "scratch_val": float(scratch["val_metric"].iloc[0]) if len(scratch) else float("nan"),
            "trials": int(len(group)),
            "epochs": int(trials[trials["budget"] == budget].shape[0]),
        })
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame, metric_name: str) -> str:
    header = f"{'budget':>7} {'n_train':>7}  {'best depth':<12} {'val ' + metric_name:>9} {'scratch':>8} {'trials':>6} {'epochs':>6}"
    lines = [header, "-" * len(header)]
    for r in table.itertuples():
        lines.append(f"{r.budget:>7g} {r.n_train:>7d}  {r.best_depth:<12} {r.best_val:>9.3f} {r.scratch_val:>8.3f} "
                     f"{r.trials:>6d} {r.epochs:>6d}")
    return "\n".join(lines)


def write_parquet(df: pd.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write atomically: a reader never sees a half-written file. ``metadata``: extra schema key/values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".parquet.tmp")
    os.close(fd)
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
        if metadata:
            extra = {f"tunedepth.{k}".encode(): str(v).encode() for k, v in metadata.items()}
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
