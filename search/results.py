"""From Tune's ResultGrid to trials.parquet's table: one row per trial per epoch."""
from __future__ import annotations

import pandas as pd

from search.run_files import TRIAL_COLUMNS


STATUSES = ("ok", "early-stopped", "stopped", "diverged", "error")


def trial_status(df: pd.DataFrame, cfg: dict, error) -> str:
    """How a trial ended: ``ok`` (its full length), ``early-stopped`` (validation patience), ``stopped`` (the
    scheduler pruned it, or the search was interrupted), ``diverged`` (NaN/inf loss: its lr lost), ``error``."""
    last = df.iloc[-1]
    if error:
        return "error"
    if bool(last.get("diverged", False)):
        return "diverged"
    if bool(last.get("early_stopped", False)):
        return "early-stopped"
    return "ok" if int(last["epoch"]) >= int(cfg.get("epochs", last["epoch"])) else "stopped"


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
            "status": trial_status(df, cfg, result.error),
        })
        frames.append(rows)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TRIAL_COLUMNS})
    return pd.concat(frames, ignore_index=True)[list(TRIAL_COLUMNS)].sort_values(["budget", "depth_index", "trial_id", "epoch"], ignore_index=True)
