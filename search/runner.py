"""A depth x budget search, in named steps: resolve, prepare (data + weights, once), tune, collect, answer."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import ray
import yaml
from ray import tune

from search.config import SearchConfig
from search.progress import BudgetProgress
from search.results import best_depth_table, format_table, trials_frame, write_parquet
from search.schedulers import BudgetStratifiedASHA
from spaces import depth_budget_space
from trainables.apps import App, get_app
from trainables.config import ConfigError, TrialConfig
from trainables.data import SplitData
from trainables.models import SCRATCH, depth_names, get_backbone
from trainables.models.backbones import BackboneSpec
from trainables.models.sources import get_source_weights
from trainables.schedules import check_schedule
from trainables.trainable import train_depth

Log = Callable[[str], None]


@dataclass
class Prepared:
    app: App
    spec: BackboneSpec
    depths: list[str]
    data: SplitData
    weights: dict[str, dict | None]


@dataclass
class Outcome:
    run_dir: Path
    trials: pd.DataFrame
    table: pd.DataFrame
    errors: list[str]
    wall_s: float


def resolve_depths(cfg: SearchConfig, spec: BackboneSpec) -> list[str]:
    names = depth_names(spec)
    if cfg.depths:
        unknown = [d for d in cfg.depths if d not in names]
        if unknown:
            raise ConfigError(f"unknown depth(s) {unknown} for {spec.name}; `tunedepth depths {spec.name}` lists them")
        return list(cfg.depths)
    if cfg.smoke:
        tuned = names[:-1]
        return [tuned[i] for i in sorted({0, len(tuned) // 2, len(tuned) - 1})] + [SCRATCH]
    return names


def prepare(cfg: SearchConfig, log: Log) -> Prepared:
    """Validate everything a trial will need, then build the data and the pretrained weights once."""
    app, spec = get_app(cfg.app), get_backbone(cfg.backbone)
    check_schedule(cfg.schedule)
    depths = resolve_depths(cfg, spec)
    TrialConfig(app=cfg.app, backbone=cfg.backbone, source=cfg.source, depth=depths[0], budget=min(cfg.budgets),
                lr=cfg.lr_min, schedule=cfg.schedule, epochs=cfg.epochs, batch_size=cfg.batch_size,
                **lr_protocol_keys(cfg))
    n = cfg.data_samples or (app.sizes.smoke if cfg.smoke else app.sizes.full)
    t0 = time.time()
    data = app.build_data(n, spec.input_size, cfg.data_seed)
    for b in cfg.budgets:
        data.budget_indices(b)  # an impossible budget fails here, before any trial starts
    log(f"data: {cfg.app}, {len(data.train_y)} train / {len(data.val_y)} val / {len(data.test_y)} test "
        f"at {spec.input_size}px ({time.time() - t0:.1f}s)")
    weights: dict[str, dict | None] = {}
    if any(d != SCRATCH for d in depths):
        weights[cfg.source] = get_source_weights(cfg.source, spec, smoke=cfg.smoke, log=log)
    return Prepared(app, spec, depths, data, weights)


def fresh_run_dir(cfg: SearchConfig, log: Log) -> Path:
    """``results/<name>``; an earlier run of the same name is moved aside, never overwritten."""
    run_dir = Path(cfg.results_dir).resolve() / cfg.name
    if run_dir.exists() and any(run_dir.iterdir()):
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(run_dir.stat().st_mtime))
        old = run_dir.with_name(f"{cfg.name}.{stamp}")
        run_dir.rename(old)
        log(f"an earlier run {cfg.name!r} was moved to {old}")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def param_space(cfg: SearchConfig, prep: Prepared) -> dict:
    return depth_budget_space(
        depths=prep.depths, budgets=cfg.budgets, lr_range=(cfg.lr_min, cfg.lr_max), seeds=cfg.seeds,
        app=cfg.app, backbone=cfg.backbone, source=cfg.source, schedule=cfg.schedule, epochs=cfg.epochs,
        batch_size=cfg.batch_size, data_seed=cfg.data_seed, **lr_protocol_keys(cfg),
    )


def lr_protocol_keys(cfg: SearchConfig) -> dict:
    """The TrialConfig keys of the learning-rate protocol, passed unchanged to every trial."""
    keys = ("lr_protocol", "optimizer", "weight_decay", "layer_decay", "warmup_epochs", "freeze_bn")
    return {k: getattr(cfg, k) for k in keys}


def make_scheduler(cfg: SearchConfig):
    if cfg.scheduler == "none":
        return None
    return BudgetStratifiedASHA(max_t=cfg.epochs, grace_period=cfg.grace_period,
                                reduction_factor=cfg.reduction_factor)


def make_tuner(cfg: SearchConfig, prep: Prepared, run_dir: Path, callbacks: list) -> tune.Tuner:
    trainable = tune.with_resources(
        tune.with_parameters(train_depth, data=prep.data, weights=prep.weights), {"cpu": cfg.cpus_per_trial}
    )
    return tune.Tuner(
        trainable,
        param_space=param_space(cfg, prep),
        tune_config=tune.TuneConfig(
            metric="val_metric", mode=prep.app.mode, scheduler=make_scheduler(cfg), num_samples=cfg.samples,
            max_concurrent_trials=cfg.max_concurrent or None, reuse_actors=True,
            trial_dirname_creator=lambda t: f"{t.config['depth']}_b{t.config['budget']}_{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(run_dir), callbacks=callbacks, verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="val_metric",
                                                    checkpoint_score_order=prep.app.mode),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


def ensure_ray(log: Log) -> None:
    if not ray.is_initialized():
        # Each checkpoint forces a small experiment-state snapshot (num_to_keep is set); that is intended here.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        log(f"ray: local, {int(ray.cluster_resources().get('CPU', 0))} CPUs")


def run_search(cfg: SearchConfig, log: Log = print) -> Outcome:
    t0 = time.time()
    prep = prepare(cfg, log)
    run_dir = fresh_run_dir(cfg, log)
    resolved = {**cfg.to_dict(), "depths": prep.depths, "n_train": len(prep.data.train_y),
                "n_val": len(prep.data.val_y), "n_test": len(prep.data.test_y), "metric": prep.app.metric,
                "mode": prep.app.mode}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    n_trials = len(prep.depths) * len(cfg.budgets) * len(cfg.seeds) * cfg.samples
    log(f"search: {len(prep.depths)} depths x {len(cfg.budgets)} budgets x {len(cfg.seeds)} seeds x "
        f"{cfg.samples} lr samples = {n_trials} trials, up to {cfg.epochs} epochs, scheduler {cfg.scheduler}")
    ensure_ray(log)
    progress = BudgetProgress(prep.app.mode, cfg.epochs, prep.app.metric, every_s=5 if cfg.smoke else 10)
    results = make_tuner(cfg, prep, run_dir, [progress]).fit()

    errors = [f"trial {r.config.get('depth')} @ budget {r.config.get('budget')}: "
              f"{str(r.error).strip().splitlines()[-1]}" for r in results if r.error]
    trials = trials_frame(results, prep.app.metric)
    write_parquet(trials, run_dir / "trials.parquet")
    table = best_depth_table(trials, prep.app.mode) if len(trials) else pd.DataFrame()
    return Outcome(run_dir, trials, table, errors, time.time() - t0)


def answer_text(outcome: Outcome) -> str:
    if outcome.table.empty:
        return "no trial reported a result"
    return format_table(outcome.table, str(outcome.trials["metric"].iloc[0]))
