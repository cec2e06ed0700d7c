"""A depth x budget search, in named steps: resolve, prepare (data + weights, once), tune, collect, answer."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
from ray import tune

from tunedepth.analysis.answers import Analysis
from tunedepth.analysis.selecting import format_table, validation_table
from tunedepth.analysis.source_check import describe, write_source_check
from tunedepth.apps import App, build_split_data
from tunedepth.config import SearchConfig, load_config
from tunedepth.data import SplitData, splits_frame
from tunedepth.errors import ConfigError
from tunedepth.hpo.cluster import connect_ray, warn_job_working_dir  # noqa: F401 (connect_ray: tests import it here)
from tunedepth.hpo.evaluate import report_after_run
from tunedepth.hpo.guard import RunLock
from tunedepth.hpo.interrupts import InterruptWatch
from tunedepth.hpo.progress import BudgetProgress
from tunedepth.hpo.promotion import StratifiedHalving
from tunedepth.hpo.results import EpochLog, read_epochs, trials_frame
from tunedepth.hpo.schedulers import BudgetStratifiedASHA
from tunedepth.hpo.searchers import SearchPlan, make_plan, make_space
from tunedepth.hpo.tracking import close_interrupted_runs, tracking_callbacks, tracking_text
from tunedepth.hpo.trainable import train_depth
from tunedepth.hpo.validate import Checked, check_search
from tunedepth.models import SCRATCH
from tunedepth.models.backbones import BackboneSpec
from tunedepth.models.sources import get_source_weights
from tunedepth.run_files import (  # noqa: F401
    PROMOTION_FILE,
    RESULTS_DIR,
    SPLITS_FILE,
    TRIALS_FILE,
    experiment_path,
    run_dir_of,
    storage_of,
    trial_dir_name,
    write_config,
    write_parquet,
    write_text,
)
from tunedepth.settings import TrialConfig
from tunedepth.training.probe import check_source
from tunedepth.training.trial import epoch_steps

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
    validation: pd.DataFrame  # per budget, the leader by validation (analysis.selecting.validation_table)
    errors: list[str]
    wall_s: float
    report: "Analysis | None" = None  # test-set answer (tunedepth.analysis), None if no trial reported
    tune_s: float = 0.0  # wall time of Tuner.fit() alone


# -- 1. resolve and prepare ----------------------------------------------------------------------------
def prepare(cfg: SearchConfig, log: Log, checked: Checked | None = None) -> Prepared:
    """Build the data and the pretrained weights once, for a config ``check_search`` accepted."""
    checked = checked or check_search(cfg, new_run=False)
    app, spec, depths = checked.app, checked.spec, checked.depths
    weights: dict[str, dict | None] = {}
    fine_tunes = any(d != SCRATCH for d in depths)
    if fine_tunes and cfg.source != "fractal":  # a file or package read: a bad source fails before the data build
        weights[cfg.source] = get_source_weights(cfg.source, spec, smoke=cfg.smoke, log=log)
    t0 = time.time()
    data = build_split_data(app, cfg.data, spec.input_size, cfg.data_seed, smoke=cfg.smoke, n=cfg.data_samples,
                            log=log, stream=cfg.stream, stream_bytes=cfg.stream_bytes, masks=cfg.masks)
    for b in cfg.budgets:
        data.budget_indices(b)  # an impossible budget fails here, before any trial starts
    for split in ("train", "val"):
        data.fingerprint(split)  # shipped with the data: trials key their cached features by it
    log(
        f"data: {cfg.app}{' from ' + cfg.data if cfg.data else ''}, {len(data.train_y)} train / {len(data.val_y)} val "
        "/ "
        f"{len(data.test_y)} test at {spec.input_size}px ({time.time() - t0:.1f}s)"
    )
    if fine_tunes and cfg.source == "fractal":  # pretraining (cached) takes seconds: only once the data is good
        weights[cfg.source] = get_source_weights(cfg.source, spec, smoke=cfg.smoke, log=log)
    return Prepared(app, spec, depths, data, weights)


def source_check(cfg: SearchConfig, prep: Prepared, run_dir: Path, log: Log) -> None:
    """The source's frozen features vs random-init ones, by linear probe (seconds), in source_check.json;
    nothing for a scratch-only search (a mask app's network is probed per pixel, tunedepth.training.probe)."""
    weights = prep.weights.get(cfg.source)
    if weights is None or prep.app.target != prep.spec.output:
        return
    check = check_source(prep.app, prep.spec, prep.data, cfg.source, weights).to_dict()
    write_source_check(check, run_dir)
    verdict = "better than random" if check["better_than_random"] else "NO BETTER THAN RANDOM weights"
    log(f"source check: {describe(check)}: {verdict} ({check['seconds']:.1f}s)")


def fixed_trial_keys(cfg: SearchConfig) -> dict:
    """The trial-config keys every trial of the search shares: every ``TrialSettings`` field, unchanged."""
    return cfg.trial_settings()


def fresh_run_dir(cfg: SearchConfig, log: Log) -> Path:
    """``results/<name>``; an earlier run of the same name is moved aside, never overwritten."""
    run_dir = run_dir_of(cfg)
    if run_dir.exists() and any(run_dir.iterdir()):
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(run_dir.stat().st_mtime))
        old = run_dir.with_name(f"{cfg.name}.{stamp}")
        run_dir.rename(old)
        log(f"an earlier run {cfg.name!r} was moved to {old}")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def save_config(cfg: SearchConfig, prep: Prepared, run_dir: Path) -> None:
    resolved = {**cfg.to_dict(), "scheduler": cfg.effective_scheduler, "depths": prep.depths,
                "n_train": len(prep.data.train_y),
                "n_val": len(prep.data.val_y), "n_test": len(prep.data.test_y), "metric": prep.app.metric,
                "mode": prep.app.mode, "experiment_path": experiment_path(cfg, run_dir)}
    write_config(resolved, run_dir)


# -- 2. tune (tunedepth.hpo.cluster connects) --------------------------------------------------------------------------
def make_scheduler(cfg: SearchConfig, run_dir: Path | None = None, depths: list[str] | None = None):
    """The scheduler ``cfg.scheduler`` names; the time unit of every one is the epoch-equivalent (a fixed number
    of optimizer steps, the same at every budget)."""
    name = cfg.effective_scheduler
    if name == "none":
        return None
    rungs = dict(max_t=cfg.epochs, grace_period=cfg.first_rung, reduction_factor=cfg.reduction_factor)
    if name in ("per-depth", "per-budget"):
        space = make_space(cfg, list(depths or ["head"]))
        grid = cfg.searcher == "grid"
        by_depth = name == "per-depth"
        size = (space.cell_size(space.depths[0]) if by_depth else
                sum(space.cell_size(d) for d in space.depths)) if grid else None
        return StratifiedHalving(stratify_by=("budget", "depth") if by_depth else ("budget",),
                                 group_by=("lr", "schedule") if by_depth else ("depth", "lr", "schedule"),
                                 stratum_size=size, z=cfg.prune_z, growth=cfg.prune_growth,
                                 lead_replicate=cfg.seeds[0] if grid and cfg.replicates != "all" else None,
                                 # per-budget groups are depths: every depth still in the race gets its seeds
                                 replicate_tied=cfg.replicates == "survivors" or not by_depth,
                                 state_file=str(run_dir / PROMOTION_FILE) if run_dir else None, **rungs)
    return BudgetStratifiedASHA(**rungs)


def make_trainable(cfg: SearchConfig, prep: Prepared):
    resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(train_depth, data=prep.data, weights=prep.weights), resources)


def make_run_config(cfg: SearchConfig, prep: Prepared, run_dir: Path, callbacks: list,
                    experiment: tuple[str, str] | None = None) -> tune.RunConfig:
    """``experiment``: (storage, name) of another experiment than the run's own (``tunedepth extend``)."""
    storage, name = experiment or storage_of(cfg, run_dir)
    return tune.RunConfig(
        name=name, storage_path=storage, callbacks=callbacks, verbose=0,
        # keep the latest two by recency: Tune's experiment snapshot always names one of them, so a run killed at
        # any moment resumes (score-ordered retention can delete the checkpoint the snapshot names); each
        # checkpoint also carries the best validation epoch's weights for the test evaluation
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        failure_config=tune.FailureConfig(max_failures=1),  # a trial whose worker died resumes from its checkpoint
    )


def _dirname(trial) -> str:
    return trial_dir_name(trial.config["depth"], trial.config["budget"], trial.trial_id)  # run_files owns it


def make_tuner(cfg: SearchConfig, prep: Prepared, run_dir: Path, plan: SearchPlan, callbacks: list,
               trainable=None) -> tune.Tuner:
    return tune.Tuner(
        trainable or make_trainable(cfg, prep),
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            metric="val_metric", mode=prep.app.mode, scheduler=make_scheduler(cfg, run_dir, prep.depths),
            search_alg=plan.search_alg,
            num_samples=plan.num_samples, max_concurrent_trials=cfg.max_concurrent or None,
            reuse_actors=cfg.reuse_actors,
            trial_dirname_creator=_dirname,
        ),
        run_config=make_run_config(cfg, prep, run_dir, callbacks),
    )


def steps_per_epoch(cfg: SearchConfig, prep: Prepared) -> int:
    """Optimizer steps of one epoch-equivalent (the same at every budget)."""
    return epoch_steps(TrialConfig.from_dict(cfg.trial_settings()), len(prep.data.train_y))


def progress_callback(cfg: SearchConfig, prep: Prepared, plan: SearchPlan) -> BudgetProgress:
    return BudgetProgress(prep.app.mode, cfg.epochs, prep.app.metric, every_s=5 if cfg.smoke else 10,
                          planned_trials=plan.trials, steps_per_epoch=steps_per_epoch(cfg, prep))


# -- 3. collect ------------------------------------------------------------------------------------------
def save_trials(results, prep: Prepared, run_dir: Path) -> pd.DataFrame:
    """Every reported epoch of every trial, written to trials.parquet (after a search, or after an interrupt)."""
    trials = trials_frame(results, prep.app.metric, read_epochs(run_dir))
    write_parquet(trials, run_dir / TRIALS_FILE)
    return trials


def collect(results, prep: Prepared, run_dir: Path, t0: float, plan: SearchPlan | None = None,
            log: Log = print, tune_s: float = 0.0) -> Outcome:
    errors = [f"trial {r.config.get('depth')} @ budget {r.config.get('budget')}: "
              f"{str(r.error).strip().splitlines()[-1]}" for r in results if r.error]
    trials = save_trials(results, prep, run_dir)
    if plan is not None and plan.guideline is not None:
        summary = {str(b): v for b, v in plan.guideline.summary().items()}
        write_text(json.dumps(summary, indent=2), run_dir / "guideline.json")
    table = validation_table(trials, prep.app.mode)
    report = report_after_run(run_dir, trials, results, prep.data, prep.weights, prep.app.mode, log)
    return Outcome(run_dir, trials, table, errors, time.time() - t0, report, tune_s)


def plan_text(cfg: SearchConfig, prep: Prepared) -> str:
    """What the search will do, printed at its start: depths, budgets, lr grid, seeds, trial length, scheduler."""
    steps = steps_per_epoch(cfg, prep)
    space = make_space(cfg, prep.depths)
    lrs = space.describe_lrs() if cfg.searcher in ("grid", "guideline") else \
        f"{cfg.samples} draw(s) in [{cfg.lr_min:g}, {cfg.lr_max:g}] (scratch [{cfg.scratch_lr_min:g}, " \
        f"{cfg.scratch_lr_max:g}])"
    if len(space.schedules) > 1 or space.schedules != ("paper",):
        lrs += f" x schedules {', '.join(space.schedules)}"
    stop = (f"; a trial ends on a plateau of {cfg.patience_steps} steps without a better validation "
            f"{prep.app.metric}, or at the cap" if cfg.patience_steps else "; every trial runs to the cap (no plateau "
            "stop)")
    warm = (f"; scratch warms up linearly over {cfg.scratch_warmup_epochs:g} epoch-equivalent(s)"
            if "scratch" in prep.depths and cfg.scratch_warmup_epochs else "")
    budgets = ", ".join(f"{b:g}" for b in cfg.budgets)
    halving = cfg.effective_scheduler in ("per-depth", "per-budget") and cfg.searcher == "grid"
    seeds = f"seeds {', '.join(map(str, cfg.seeds))}"
    if halving and len(cfg.seeds) > 1:
        seeds += {"leader": f" (seed {cfg.seeds[0]} races the candidates; the others run for the best one left at "
                            "the end of the race only)",
                  "survivors": f" (seed {cfg.seeds[0]} races the candidates; the others run for every one left at "
                               "the end of the race)",
                  "all": " (a candidate's seeds race together, judged by their mean)"}[cfg.replicates]
    return (f"search: {cfg.searcher}, depths {', '.join(prep.depths)}; budgets {budgets}"
            f"; lr {lrs}; {seeds}\n"
            f"        trials: {prep.spec.input_size}px input; a validation every {steps} optimizer steps (batch "
            f"{cfg.batch_size}, the same at every "
            f"budget), cap {cfg.epochs} validations = {cfg.epochs * steps} steps{stop}{warm}\n"
            f"        scheduler {cfg.effective_scheduler}: rungs {_rungs(cfg)}" + (
                f"; a candidate is dropped only when {cfg.prune_z:g} paired standard errors behind the cell's best"
                + (f" even after {cfg.prune_growth:g}x its gain since the previous rung" if cfg.prune_growth else "")
                + ", "
                "never while every candidate is at chance" if cfg.effective_scheduler in ("per-depth", "per-budget")
                else ""))


def _rungs(cfg: SearchConfig) -> str:
    from tunedepth.hpo.promotion import rung_milestones

    if cfg.effective_scheduler == "none":
        return "none"
    return ", ".join(map(str, rung_milestones(cfg.epochs, cfg.first_rung, cfg.reduction_factor))) or "none"


def run_search(cfg: SearchConfig, log: Log = print, trainable=None) -> Outcome:
    """Run the search ``cfg``; ``trainable`` replaces the Tune trainable (bench/demo_speed.py's naive loop)."""
    checked = check_search(cfg)  # the whole config, before any data, folder or Ray (tunedepth.hpo.validate)
    with RunLock(cfg.results_dir, cfg.name):  # one owner per run name, before anything moves
        return _run_search(cfg, log, trainable, checked)


def _run_search(cfg: SearchConfig, log: Log, trainable, checked: Checked) -> Outcome:
    t0 = time.time()
    tracking = tracking_callbacks(cfg)  # a missing MLflow fails before the data build
    prep = prepare(cfg, log, checked)
    plan = make_plan(cfg, prep.depths, fixed_trial_keys(cfg), "val_metric", prep.app.mode)  # refusals come first
    run_dir = fresh_run_dir(cfg, log)
    warn_job_working_dir(cfg, run_dir, log)
    save_config(cfg, prep, run_dir)
    write_parquet(splits_frame(prep.data, cfg.budgets), run_dir / SPLITS_FILE)
    source_check(cfg, prep, run_dir, log)
    connect_ray(cfg, log)
    log(plan_text(cfg, prep))
    log(tracking_text(cfg, run_dir, prep.depths))
    t_tune = time.time()
    watch = InterruptWatch(run_dir).install()
    callbacks = [progress_callback(cfg, prep, plan), watch, EpochLog(run_dir), *tracking]
    results = make_tuner(cfg, prep, run_dir, plan, callbacks, trainable).fit()
    stop_if_interrupted(watch, results, prep, run_dir, cfg.name)
    return collect(results, prep, run_dir, t0, plan, log, time.time() - t_tune)


def stop_if_interrupted(watch: InterruptWatch, results, prep: Prepared, run_dir: Path, name: str) -> None:
    """After Ctrl-C/SIGTERM: keep the rows reported so far (checkpoints are Tune's), present no answer."""
    if watch.stopped_early:
        save_trials(results, prep, run_dir)
    watch.check(name)


def resume_search(run: str, results_dir: str = RESULTS_DIR, log: Log = print) -> Outcome:
    """Continue an interrupted run: unfinished and errored trials resume from their last checkpoint."""
    cfg = load_config(run, results_dir)
    with RunLock(cfg.results_dir, cfg.name):
        return _resume_search(cfg, log)


def _resume_search(cfg: SearchConfig, log: Log) -> Outcome:
    t0 = time.time()
    run_dir = run_dir_of(cfg)
    tracking_callbacks(cfg)  # Tune restores the run's own callbacks; this checks MLflow is still importable
    prep = prepare(cfg, log)
    connect_ray(cfg, log)
    path = experiment_path(cfg, run_dir)
    if not tune.Tuner.can_restore(path):
        raise ConfigError(f"nothing to resume at {path}: the run never started tuning; start it again with `run`")
    tuner = tune.Tuner.restore(path, trainable=make_trainable(cfg, prep), resume_unfinished=True, resume_errored=True)
    log(f"resuming {cfg.name} from {path}")
    if close_interrupted_runs(cfg):
        log("mlflow: the interrupted trials' runs are marked KILLED; resumed trials log into new runs")
    return collect(tuner.fit(), prep, run_dir, t0, log=log)


def answer_text(outcome: Outcome) -> str:
    if outcome.validation.empty:
        return "no trial reported a result"
    return format_table(outcome.validation, str(outcome.trials["metric"].iloc[0]))
