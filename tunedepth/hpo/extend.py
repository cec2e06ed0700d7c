"""``tunedepth extend RUN --epochs N``: continue a finished run's capped trials to a higher cap, in named steps.

A trial is *capped* when it ran to the run's cap (config.yaml ``epochs``) without a validation plateau: status
``ok`` and its last epoch equal to the cap. Its cell may be a lower bound (the trial was still improving, or
within its patience). Extending runs exactly those trials on with the cap raised to N, each from its own
latest checkpoint, through the run's trainable (``tunedepth.hpo.trainable.train_depth``) in a new Tune experiment
beside the run's own, without a scheduler: a continued trial ends on a validation plateau (``patience``) or at N.
Trials the scheduler pruned (``stopped``), early-stopped, diverged or errored ones stay as they are.

Steps: load (the run, its capped trials) -> check (N above the cap) -> latest (each trial's last Tune result and
checkpoint, over the run's experiments) -> prepare (data and weights, as the run did) -> continue (Tune) ->
merge (the new epochs appended to trials.parquet under the original trial ids) -> evaluate (test, the new
selection) -> commit (files) -> report.

Nothing of the run changes until every continued trial has finished and the test predictions of the new
selection are computed: an interrupted or failed extension leaves the run as it was (its own experiment folder,
``tune-extend<N>-<stamp>``, stays beside it, unused). Then predictions.parquet, trials.parquet, extensions.json
and config.yaml (``epochs`` = N) are replaced, each atomically, and the report is rebuilt.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import pandas as pd
from ray import tune

from tunedepth.analysis.answers import Analysis
from tunedepth.analysis.build import build_report
from tunedepth.config import SearchConfig, load_config
from tunedepth.errors import ConfigError
from tunedepth.hpo.cluster import connect_ray
from tunedepth.hpo.evaluate import evaluate_selected
from tunedepth.hpo.guard import RunLock
from tunedepth.hpo.interrupts import InterruptWatch
from tunedepth.hpo.progress import BudgetProgress
from tunedepth.hpo.results import TUNE_TRIAL_ID, EpochLog, read_epochs, trial_status, trials_frame
from tunedepth.hpo.runner import Prepared, _dirname, make_run_config, prepare, steps_per_epoch
from tunedepth.hpo.trainable import CONTINUES, train_depth
from tunedepth.run_files import (
    RESULTS_DIR,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    experiment_paths,
    extension_experiment,
    finished_trials,
    read_config,
    read_extensions,
    read_parquet,
    run_dir_of,
    write_config,
    write_extensions,
    write_parquet,
    write_predictions,
)

Log = Callable[[str], None]


@dataclass(frozen=True)
class Capped:
    """A trial that ran to the run's cap without a plateau."""
    trial_id: str
    depth: str
    budget: float
    lr: float
    seed: int
    epochs: int  # the old cap it reached

    def describe(self, to: int) -> str:
        return (f"{self.depth} @ budget {self.budget:g}, lr {self.lr:.3g}, seed {self.seed}: "
                f"{self.epochs} -> {to} epochs (trial {self.trial_id})")


@dataclass
class Extension:
    run_dir: Path
    old_cap: int
    new_cap: int
    continued: list[Capped]
    committed: bool = False  # the run's files were replaced (False: nothing to do, or the extension failed)
    trials: pd.DataFrame | None = None
    errors: list[str] = field(default_factory=list)
    report: Analysis | None = None
    wall_s: float = 0.0


@dataclass
class TrialResult:
    """A Tune ``Result`` as ``tunedepth.hpo.results`` and ``tunedepth.hpo.evaluate`` read it, under the original
    trial's id (a continued trial's own Tune id is ``tune_id``) and with its config as ``TrialConfig`` takes it."""
    trial_id: str
    tune_id: str
    config: dict
    metrics_dataframe: pd.DataFrame
    best_checkpoints: list
    checkpoint: object
    error: object
    metrics: dict


# -- 1. load and check ------------------------------------------------------------------------------------------
def capped_trials(trials: pd.DataFrame, cap: int) -> list[Capped]:
    """The trials whose status is ``ok`` and whose last epoch is ``cap``, by budget, depth, lr, seed."""
    if trials.empty:
        return []
    last = trials.sort_values("epoch").groupby("trial_id", sort=False).tail(1)
    hit = last[(last["status"] == "ok") & (last["epoch"].astype(int) == int(cap))]
    hit = hit.sort_values(["budget", "depth_index", "lr", "seed", "trial_id"])
    return [Capped(str(r.trial_id), str(r.depth), float(r.budget), float(r.lr), int(r.seed), int(r.epoch))
            for r in hit.itertuples(index=False)]


def check_cap(old_cap: int, epochs: int) -> None:
    if epochs <= old_cap:
        raise ConfigError(f"--epochs {epochs} does not raise the run's cap of {old_cap} epoch-equivalents; "
                          f"give a higher one, e.g. --epochs {2 * old_cap}")


def load_finished(run: str, results_dir: str) -> tuple[SearchConfig, Path, dict, pd.DataFrame]:
    """(the run's SearchConfig, folder, config.yaml, trials.parquet) of a finished run."""
    cfg = load_config(run, results_dir)
    run_dir = run_dir_of(cfg)
    if finished_trials(run_dir) is None:
        raise ConfigError(f"run {cfg.name!r} is not finished (no answer yet, or trials in error); "
                          f"`tunedepth resume {cfg.name}` first, then extend it")
    return cfg, run_dir, read_config(run_dir), read_parquet(run_dir / TRIALS_FILE)


# -- 2. each trial's latest result -------------------------------------------------------------------------------
def as_original(result) -> TrialResult:
    """``result`` under its original trial id (a continued trial's config names it under ``CONTINUES``)."""
    config = dict(result.config or {})
    original = config.pop(CONTINUES, None)
    df = result.metrics_dataframe if result.metrics_dataframe is not None else pd.DataFrame()
    tune_id = str(df["trial_id"].iloc[0]) if len(df) else str((result.metrics or {}).get("trial_id") or
                                                               Path(str(result.path)).name.rsplit("_", 1)[-1])
    trial_id = str(original) if original is not None else tune_id
    if len(df):
        df = df.assign(trial_id=trial_id)
    metrics = {**(result.metrics or {}), "trial_id": trial_id}
    return TrialResult(trial_id, tune_id, config, df, list(result.best_checkpoints or []), result.checkpoint,
                       result.error, metrics)


def experiment_results(path: str) -> list[TrialResult]:
    """Every trial of one Tune experiment of the run, read back from its folder (no trainable needed)."""
    if not tune.Tuner.can_restore(path):
        raise ConfigError(f"the run's Tune experiment {path} is missing; extending needs its checkpoints")
    grid = tune.ResultGrid(tune.ExperimentAnalysis(path))
    return [as_original(r) for r in grid]


def latest_results(run_dir: Path, config: dict) -> dict[str, TrialResult]:
    """Trial id -> its result in the last of the run's experiments that ran it (the original run, then each
    completed extension)."""
    latest: dict[str, TrialResult] = {}
    for path in experiment_paths(run_dir, config):
        latest.update({r.trial_id: r for r in experiment_results(path)})
    return latest


# -- 3. continue -------------------------------------------------------------------------------------------------
def _point(points: dict[str, dict], key: str, config: dict):
    return points[config[CONTINUES]][key]


def param_space(points: dict[str, dict]) -> dict:
    """One Tune trial per point (trial id -> its full config): a grid over ``CONTINUES``, the keys every point
    shares as constants, the others looked up from the trial's point."""
    first = next(iter(points.values()))
    space: dict = {CONTINUES: tune.grid_search(list(points))}
    for key in first:
        if key == CONTINUES:
            continue
        values = [p[key] for p in points.values()]
        space[key] = (
            values[0] if all(v == values[0] for v in values) else tune.sample_from(partial(_point, points, key))
        )
    return space


def continue_trials(cfg: SearchConfig, prep: Prepared, run_dir: Path, capped: list[Capped],
                    latest: dict[str, TrialResult], old_cap: int) -> tuple[str, list]:
    """Run the capped trials on to ``cfg.epochs`` from their latest checkpoints; (experiment path, results).
    Raises ``tunedepth.hpo.guard.Interrupted`` after Ctrl-C/SIGTERM."""
    points, start = {}, {}
    for c in capped:
        result = latest.get(c.trial_id)
        if result is None or result.checkpoint is None:
            raise ConfigError(f"trial {c.trial_id} ({c.depth} @ budget {c.budget:g}) kept no checkpoint in the "
                              f"run's Tune experiment; it cannot be extended")
        points[c.trial_id] = {**result.config, "epochs": cfg.epochs, CONTINUES: c.trial_id}
        start[c.trial_id] = result.checkpoint
    stamp = time.strftime("%Y%m%d-%H%M%S")
    experiment = extension_experiment(cfg, run_dir, cfg.epochs, stamp)
    resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(train_depth, data=prep.data, weights=prep.weights,
                                                         start=start), resources)
    watch = InterruptWatch(run_dir).install()
    # Tune counts this experiment's iterations from 1: a continued trial has epochs - old_cap of them at most
    progress = BudgetProgress(prep.app.mode, cfg.epochs - old_cap, prep.app.metric, every_s=5 if cfg.smoke else 10,
                              planned_trials=len(capped), steps_per_epoch=steps_per_epoch(cfg, prep))
    tuner = tune.Tuner(
        trainable, param_space=param_space(points),
        tune_config=tune.TuneConfig(metric="val_metric", mode=prep.app.mode, num_samples=1,
                                    max_concurrent_trials=cfg.max_concurrent or None, reuse_actors=cfg.reuse_actors,
                                    trial_dirname_creator=_dirname),
        run_config=make_run_config(cfg, prep, run_dir, [progress, watch, EpochLog(run_dir)], experiment),
    )
    results = list(tuner.fit())
    watch.check(cfg.name)
    return f"{experiment[0].rstrip('/')}/{experiment[1]}", results


# -- 4. merge ----------------------------------------------------------------------------------------------------
def merge_trials(old: pd.DataFrame, continued: list[TrialResult], logged: pd.DataFrame,
                 metric: str) -> pd.DataFrame:
    """trials.parquet after the extension: each continued trial's new epochs appended to its old rows under
    its original id, its status recomputed from its last epoch; every other trial's rows unchanged."""
    if TUNE_TRIAL_ID in logged:  # this extension's rows of the driver's log (not an earlier, failed attempt's)
        logged = logged[logged[TUNE_TRIAL_ID].isin({r.tune_id for r in continued})]
    else:
        logged = logged.iloc[0:0]
    new = trials_frame(continued, metric, logged)
    ids = set(new["trial_id"])
    merged = pd.concat([old, new], ignore_index=True).drop_duplicates(["trial_id", "epoch"], keep="last")
    by_id = {r.trial_id: r for r in continued}
    for tid in ids:
        rows = merged["trial_id"] == tid
        trial = merged[rows].sort_values("epoch")
        merged.loc[rows, "status"] = trial_status(trial, by_id[tid].config, by_id[tid].error)
    return merged[list(TRIAL_COLUMNS)].sort_values(["budget", "depth_index", "trial_id", "epoch"], ignore_index=True)


def trial_errors(results: list[TrialResult]) -> list[str]:
    return [f"trial {r.trial_id} ({r.config.get('depth')} @ budget {r.config.get('budget')}): "
            f"{str(r.error).strip().splitlines()[-1] if r.error else 'reported no epoch'}"
            for r in results if r.error or r.metrics_dataframe.empty]


# -- 5. the whole extension --------------------------------------------------------------------------------------
def extend_run(run: str, epochs: int, results_dir: str = RESULTS_DIR, log: Log = print) -> Extension:
    """Continue run ``run``'s capped trials to ``epochs``, re-evaluate on test and rebuild the report."""
    cfg, run_dir, config, trials = load_finished(run, results_dir)
    old_cap = int(config["epochs"])
    check_cap(old_cap, epochs)
    with RunLock(cfg.results_dir, cfg.name):
        return _extend(cfg, run_dir, config, trials, old_cap, epochs, log)


def _extend(cfg: SearchConfig, run_dir: Path, config: dict, trials: pd.DataFrame, old_cap: int, epochs: int,
            log: Log) -> Extension:
    t0 = time.time()
    capped = capped_trials(trials, old_cap)
    out = Extension(run_dir, old_cap, epochs, capped)
    if not capped:
        log(f"{cfg.name}: no trial ran to the cap of {old_cap} epochs without a plateau (every one was "
            f"early-stopped, pruned, diverged or errored); nothing to extend")
        return out
    latest = latest_results(run_dir, config)
    log(f"{cfg.name}: continuing {len(capped)} capped trial(s) from their latest checkpoints, cap {old_cap} -> "
        f"{epochs} epochs:")
    for c in capped:
        log(f"  {c.describe(epochs)}")
    new_cfg = cfg.replace(epochs=epochs)
    prep = prepare(new_cfg, log)
    connect_ray(new_cfg, log)
    path, results = continue_trials(new_cfg, prep, run_dir, capped, latest, old_cap)
    continued = [as_original(r) for r in results]
    out.errors = trial_errors(continued)
    missing = {c.trial_id for c in capped} - {r.trial_id for r in continued}
    out.errors += [f"trial {tid}: did not run" for tid in sorted(missing)]
    if out.errors:
        for e in out.errors:
            log(f"failed: {e}")
        log(f"nothing of {cfg.name} changed; the extension's Tune experiment is kept in {path}")
        return out
    merged = merge_trials(trials, continued, read_epochs(run_dir), prep.app.metric)
    latest.update({r.trial_id: r for r in continued})
    t_eval = time.time()
    predictions, _ = evaluate_selected(merged, latest.values(), prep.data, prep.weights, prep.app.mode, log)
    blocks = predictions.groupby(["budget", "depth", "seed"]).ngroups if len(predictions) else 0
    log(f"test evaluation: {blocks} selected checkpoints (replicate seeds) scored on {len(prep.data.test_y)} test "
        f"samples ({time.time() - t_eval:.1f}s)")
    commit(run_dir, config, merged, predictions, path, old_cap, epochs, continued)
    out.committed, out.trials = True, merged
    out.report = build_report(run_dir, log=log)
    out.wall_s = time.time() - t0
    return out


def commit(run_dir: Path, config: dict, trials: pd.DataFrame, predictions: pd.DataFrame, path: str, old_cap: int,
           epochs: int, continued: list[TrialResult]) -> None:
    """Replace the run's files, each atomically; config.yaml (the cap) last."""
    write_predictions(predictions, run_dir)
    write_parquet(trials, run_dir / TRIALS_FILE)
    record = {"from_epochs": old_cap, "to_epochs": epochs, "experiment_path": path,
              "trials": {r.trial_id: r.tune_id for r in continued}}
    write_extensions(read_extensions(run_dir) + [record], run_dir)
    write_config({**config, "epochs": epochs}, run_dir)
