"""Test-set evaluation of the selected checkpoints, once, in the driver at the end of a run.

For each budget x depth the learning rate is selected by validation only (``tunedepth.analysis.selecting``),
and every replicate seed trial of it is evaluated at its best validation epoch. Its checkpoint of that epoch
is loaded: Tune keeps each trial's latest 2 checkpoints (``tunedepth.hpo.runner.make_run_config``: the snapshot a
resume needs always names one of them), and every checkpoint carries the weights of the trial's best validation
epoch so far; if no kept checkpoint offers that epoch, the best kept one is used and the evaluated epoch is
recorded. A trial that diverged before any finite validation offers no weights and is not evaluated. The test split is
predicted once per replicate and the per-sample class
probabilities go to ``predictions.parquet`` (one block per budget x depth x seed); everything after that
(metrics, intervals, verdicts, the report) is computed offline from files by ``tunedepth.analysis``.
"""
from __future__ import annotations

import math
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from tunedepth.analysis.build import build_report
from tunedepth.analysis.selecting import select_replicates
from tunedepth.data import SplitData
from tunedepth.metrics.mode import Mode
from tunedepth.run_files import prediction_rows, write_predictions
from tunedepth.settings import TrialConfig
from tunedepth.training.resolved import CHECKPOINT_FILE, ResolvedTrial, read_checkpoint
from tunedepth.training.trial import TrialRun

Log = Callable[[str], None]

@dataclass(frozen=True)
class KeptCheckpoint:
    epoch: int
    val_metric: float
    checkpoint: object  # a ``tune.Checkpoint`` (or anything with ``as_directory()``)


def kept_checkpoints(result_grid: Iterable) -> dict[str, list[KeptCheckpoint]]:
    """Trial id -> the checkpoints Tune kept for it, with the epoch and validation metric of each."""
    out: dict[str, list[KeptCheckpoint]] = {}
    for result in result_grid:
        df = result.metrics_dataframe
        if df is None or df.empty:
            continue
        trial_id = str(df["trial_id"].iloc[0])
        kept = []
        for checkpoint, metrics in result.best_checkpoints or []:
            if "epoch" not in metrics or "val_metric" not in metrics:
                continue
            # a checkpoint carries the best epoch's weights so far (TrialRun.best): that is what it offers
            epoch = metrics.get("best_epoch") or metrics["epoch"]
            val = metrics.get("best_val_metric", metrics["val_metric"])
            if val is None or not math.isfinite(float(val)):  # diverged before any finite validation: no weights
                continue
            kept.append(KeptCheckpoint(int(epoch), float(val), checkpoint))
        out[trial_id] = kept
    return out


def trial_configs(result_grid: Iterable) -> dict[str, dict]:
    """Trial id -> the trial's flat config (as Tune passed it to the trainable)."""
    out = {}
    for result in result_grid:
        df = result.metrics_dataframe
        if df is not None and not df.empty:
            out[str(df["trial_id"].iloc[0])] = dict(result.config)
    return out


def choose_checkpoint(kept: list[KeptCheckpoint], epoch: int, mode: str) -> KeptCheckpoint | None:
    """The checkpoint of ``epoch`` if kept, else the best kept one by validation (latest on ties)."""
    for k in kept:
        if k.epoch == epoch:
            return k
    if not kept:
        return None
    sign = Mode.of(mode).sign
    return max(kept, key=lambda k: (sign * k.val_metric, k.epoch))


@dataclass(frozen=True)
class TestPrediction:
    probs: np.ndarray  # (N, C), or (N, C, H, W) per pixel for a whole-image segmentation backbone
    epoch: int  # the epoch whose weights were evaluated
    trial: ResolvedTrial  # the trial as it ran (its configured app, effective source, ...)


def predict_test(config: dict, checkpoint, data: SplitData, weights: dict) -> TestPrediction:
    """Class probabilities of the test split from a trial's checkpoint (a Tune checkpoint: anything with
    ``as_directory()`` holding ``CHECKPOINT_FILE``), predicted by the trial's own ``TrialRun`` (its resolved
    network, through the cached frozen prefix as in training) at the checkpoint's best validation epoch."""
    with torch.random.fork_rng(devices=[]):  # building a TrialRun reseeds torch; keep the driver's RNG as it was
        run = TrialRun(TrialConfig.from_dict(config), data, weights)
        with checkpoint.as_directory() as d:
            state = read_checkpoint(os.path.join(d, CHECKPOINT_FILE))
        run.load_state_dict(state)
        epoch = run.load_best_model()
    logits = run.predict("test")
    return TestPrediction(torch.softmax(logits.double(), dim=1).numpy(), epoch, run.resolved)


def evaluate_selected(trials: pd.DataFrame, result_grid, data: SplitData, weights: dict, mode: str,
                      log: Log = print) -> tuple[pd.DataFrame, list[str]]:
    """Predict the test split once per replicate seed of each budget x depth's selected learning rate.

    Returns the predictions frame (empty if nothing could be evaluated) and notes on fallbacks/failures.
    """
    selection = select_replicates(trials, mode)
    checkpoints, configs = kept_checkpoints(result_grid), trial_configs(result_grid)
    frames, notes = [], []
    for row in selection.itertuples(index=False):
        cell = f"{row.depth} @ budget {row.budget:g} (seed {row.seed})"
        chosen = choose_checkpoint(checkpoints.get(row.trial_id, []), int(row.epoch), mode)
        if chosen is None or row.trial_id not in configs:
            notes.append(f"{cell}: trial {row.trial_id} kept no checkpoint; not evaluated on test")
            continue
        try:
            predicted = predict_test(configs[row.trial_id], chosen.checkpoint, data, weights)
        except (OSError, RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as e:
            first = (str(e).strip().splitlines() or [""])[0][:120]
            notes.append(f"{cell}: the checkpoint of epoch {chosen.epoch} could not be evaluated, is it corrupt? "
                         f"({type(e).__name__}: {first})")
            continue
        probs, epoch, trial = predicted.probs, predicted.epoch, predicted.trial
        if epoch != int(row.epoch):
            notes.append(f"{cell}: best validation epoch {int(row.epoch)} had no checkpoint left; "
                         f"evaluated epoch {epoch} instead")
        info = {
            "app": row.app, "backbone": row.backbone, "source": trial.source,
            "budget": float(row.budget), "depth": row.depth, "depth_index": int(row.depth_index),
            "trial_id": row.trial_id, "lr": float(row.lr), "seed": int(row.seed),
            "selected_epoch": int(row.epoch), "evaluated_epoch": epoch,
        }
        meta = data.test_meta
        if probs.ndim > 2:  # per-pixel output: keep the app's per-image summary, enough to score it again
            probs, meta = trial.app.summarize(data.targets("test").numpy(), probs,
                                        {k: v.numpy() for k, v in data.test_meta.items()})
        frames.append(prediction_rows(info, data.test_y.numpy(), probs, meta))
    for note in notes:
        log(f"test evaluation: {note}")
    if not frames:
        return pd.DataFrame(), notes
    return pd.concat(frames, ignore_index=True), notes


def report_after_run(run_dir: Path, trials: pd.DataFrame, result_grid, data, weights: dict, mode: str,
                     log: Log = print):
    """The post-run step (driver): evaluate the selected replicates on test once, then build the report."""
    if trials.empty:
        return None
    t0 = time.time()
    predictions, _ = evaluate_selected(trials, result_grid, data, weights, mode, log)
    write_predictions(predictions, Path(run_dir))
    blocks = predictions.groupby(["budget", "depth", "seed"]).ngroups if len(predictions) else 0
    log(f"test evaluation: {blocks} selected checkpoints (replicate seeds) scored on {len(data.test_y)} test "
        f"samples ({time.time() - t0:.1f}s)")
    return build_report(Path(run_dir), log=log)
