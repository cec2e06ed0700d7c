"""Simulated run folders with a known truth, for calibrating the verdicts (tests and bench/verdict_calibration.py).

Every budget x depth is a "model" of a given quality: its scores are ``quality * label + N(0, 1)``; the
validation metric is its AUC on its own simulated validation split, the test predictions are drawn on one
shared test split. Depths of equal quality are the null case; one depth with a higher quality is the effect.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tunedepth.metrics import compute_roc_auc
from tunedepth.run_files import (
    PREDICTION_RUN_COLUMNS,
    PREDICTIONS_FILE,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    write_config,
    write_parquet,
)

DEPTHS = ("fc8", "fc7-fc8", "fc6-fc8", "conv5-fc8", "conv4-fc8", "conv3-fc8", "conv2-fc8", "conv1-fc8", "scratch")
APP = "colonoscopy-frames"  # frame AUC, with a vectorised bootstrap


def simulate_run(run_dir: Path, n_budgets: int = 200, quality: float = 1.0, better: int | None = None,
                 effect: float = 0.0, n_test: int = 200, n_val: int = 200, seed: int = 0) -> Path:
    """Write ``config.yaml``, ``trials.parquet`` and ``predictions.parquet`` of ``n_budgets`` independent budgets
    x 9 depths; depth index ``better`` (1-based) has quality ``quality + effect``, the others ``quality``."""
    rng = np.random.default_rng(seed)
    test_y = np.repeat([0, 1], [n_test // 2, n_test - n_test // 2])
    val_y = np.repeat([0, 1], [n_val // 2, n_val - n_val // 2])
    budgets = np.round((np.arange(n_budgets) + 1) / n_budgets, 6)
    index = np.arange(1, len(DEPTHS) + 1)
    q = np.where(index == better, quality + effect, quality)[None, :].repeat(n_budgets, 0)  # (budgets, depths)
    val_scores = rng.normal(size=q.shape + (n_val,)) + q[..., None] * val_y
    val = np.array([[compute_roc_auc(val_y, v) for v in row] for row in val_scores])
    test_p1 = 1 / (1 + np.exp(-(rng.normal(size=q.shape + (n_test,)) + q[..., None] * test_y)))
    cells = pd.DataFrame({"budget": budgets.repeat(len(DEPTHS)), "depth": np.tile(DEPTHS, n_budgets),
                          "depth_index": np.tile(index, n_budgets)})
    cells["trial_id"] = [f"b{b:g}_{d}" for b, d in zip(cells["budget"], cells["depth"])]
    common = {"app": APP, "backbone": "sim", "source": "sim", "lr": 1e-3, "seed": 0}
    trials = cells.assign(**common, schedule="paper", epoch=1, val_metric=val.ravel(), val_loss=0.0, train_loss=0.0,
                          time_s=0.0, n_train=1000, metric="auc", status="early-stopped")  # converged trials
    preds = cells.assign(**common, selected_epoch=1, evaluated_epoch=1).loc[cells.index.repeat(n_test)]
    preds = preds[list(PREDICTION_RUN_COLUMNS)].reset_index(drop=True)
    p1 = test_p1.reshape(-1)
    preds = preds.assign(sample=np.tile(np.arange(n_test), len(cells)), label=np.tile(test_y, len(cells)),
                         prob_0=1 - p1, prob_1=p1)
    run_dir = Path(run_dir)
    write_parquet(trials[list(TRIAL_COLUMNS)], run_dir / TRIALS_FILE)
    write_parquet(preds, run_dir / PREDICTIONS_FILE)
    write_config({"name": run_dir.name, "app": APP, "backbone": "sim", "source": "sim", "budgets": budgets.tolist(),
                  "epochs": 1, "n_train": 1000, "n_val": n_val, "n_test": n_test}, run_dir)
    return run_dir


def calibration(summary: pd.DataFrame, better: int | None = None) -> dict[str, float]:
    """Shares of budgets: some depth declared worse / better; with ``better``: that depth chosen, and chosen
    with every other depth worse than it."""
    per = summary.groupby("budget")
    out = {"budgets": float(per.ngroups),
           "any_worse": float(per["verdict"].apply(lambda v: (v == "worse").any()).mean()),
           "any_better": float(per["verdict"].apply(lambda v: (v == "better").any()).mean()),
           "any_either": float(per["verdict"].apply(lambda v: v.isin(["better", "worse"]).any()).mean())}
    if better is not None:
        best = summary[summary["is_best"]]
        found = best["depth_index"] == better
        out["found"] = float(found.mean())
        all_worse = per.apply(lambda g: bool((g.loc[~g["is_best"], "verdict"] == "worse").all()))
        out["found_and_better"] = float((found.to_numpy() & all_worse.to_numpy()).mean())
    return out
