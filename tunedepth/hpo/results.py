"""From Tune's results to trials.parquet's table: one row per trial per epoch.

The rows come from ``epochs.jsonl``, which ``EpochLog`` appends on the driver as each result arrives, merged
with each trial's ``metrics_dataframe`` from the ResultGrid (Tune's ``result.json``). Tune's file alone is not
enough: its JSON logger keeps the file in the driver's staging folder and, when a paused trial restarts,
copies back the copy last synced to storage over it, so a trial that paused at a rung can lose the rows it
reported before the sync (measured: the first epoch of 3 of 72 trials in one demo run).
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from ray import tune

from tunedepth.hpo.trainable import CONTINUES
from tunedepth.run_files import EPOCHS_FILE, TRIAL_COLUMNS, append_json_line, read_json_lines

# the keys of a trial's result that trials.parquet keeps (besides the trial's config)
REPORTED = ("trial_id", "epoch", "source", "depth_index", "val_metric", "val_loss", "train_loss", "time_s",
            "n_train", "diverged", "early_stopped", "capped", "val_se", "val_chance")
TUNE_TRIAL_ID = "tune_trial_id"  # in epochs.jsonl rows of a continued trial: the extension's own Tune trial id


def _not_a_stale_copy_warning(record: logging.LogRecord) -> bool:
    # Tune's JSON/CSV loggers warn "Remote file not found: .../result.json" when a paused trial restarts before
    # its files were first synced to storage; the rows are kept locally and in epochs.jsonl, so it is noise
    return not record.getMessage().startswith("Remote file not found:")


class EpochLog(tune.Callback):
    """Appends every result the driver receives to ``results/<name>/epochs.jsonl``, as it arrives (Tune
    restores this callback with the run, so a resumed run goes on appending). A trial continuing another
    (``tunedepth extend``) logs under that trial's id, with its own Tune id in ``tune_trial_id``."""

    def __init__(self, run_dir: Path):
        self.path = str(Path(run_dir) / EPOCHS_FILE)

    def setup(self, **info):
        tune_loggers = logging.getLogger("ray.tune.logger.logger")
        if _not_a_stale_copy_warning not in tune_loggers.filters:
            tune_loggers.addFilter(_not_a_stale_copy_warning)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        row = {k: result[k] for k in REPORTED if k in result}
        config = getattr(trial, "config", None) or {}
        if CONTINUES in config:  # tunedepth extend: logged under the id of the trial it continues
            row = {**row, "trial_id": str(config[CONTINUES]), TUNE_TRIAL_ID: result.get("trial_id")}
        append_json_line(row, Path(self.path))


def read_epochs(run_dir: Path) -> pd.DataFrame:
    """``epochs.jsonl`` as a table (empty when the run has none, e.g. a run from before the file existed)."""
    rows = read_json_lines(Path(run_dir) / EPOCHS_FILE)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(REPORTED))


STATUSES = ("ok", "early-stopped", "stopped", "diverged", "error")


def _flag(row: pd.Series, key: str) -> bool:
    value = row.get(key, False)
    return bool(value) if pd.notna(value) else False


def trial_status(df: pd.DataFrame, cfg: dict, error) -> str:
    """How a trial ended: ``ok`` (its full length), ``early-stopped`` (validation patience), ``stopped`` (the
    scheduler pruned it, or the search was interrupted), ``diverged`` (NaN/inf loss: its lr lost), ``error``."""
    last = df.iloc[-1]
    if error:
        return "error"
    if _flag(last, "diverged"):
        return "diverged"
    if _flag(last, "early_stopped"):
        return "early-stopped"
    return "ok" if int(last["epoch"]) >= int(cfg.get("epochs", last["epoch"])) else "stopped"


def reported_rows(result, logged: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """A trial's reported epochs: Tune's metrics_dataframe, then the driver's log (later, so it wins). A trial
    resumed from an older checkpoint re-reports some epochs: the latest report of each is kept."""
    df = result.metrics_dataframe if result.metrics_dataframe is not None else pd.DataFrame()
    tid = (result.metrics or {}).get("trial_id") or (str(df["trial_id"].iloc[0]) if len(df) else None)
    parts = [p for p in (df, logged.get(str(tid))) if p is not None and len(p)]
    if not parts:
        return pd.DataFrame()
    rows = pd.concat(parts, ignore_index=True).drop_duplicates(subset="epoch", keep="last")
    return rows.sort_values("epoch", ignore_index=True)


def trials_frame(result_grid, metric_name: str, logged: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every reported epoch of every trial, with the trial's config; errored trials keep what they reported.
    ``logged``: the run's ``read_epochs`` (rows Tune's own files may have lost)."""
    by_trial = {str(t): g for t, g in logged.groupby("trial_id")} if logged is not None and len(logged) else {}
    frames = []
    for result in result_grid:
        df = reported_rows(result, by_trial)
        if df.empty:
            continue
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
    return pd.concat(frames, ignore_index=True)[list(TRIAL_COLUMNS)].sort_values(
        ["budget", "depth_index", "trial_id", "epoch"], ignore_index=True
    )
