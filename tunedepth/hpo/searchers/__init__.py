"""Search strategies: how trials are proposed. ``make_plan`` turns a ``SearchConfig`` into what Tune needs.

Every form comes from the run's one ``tunedepth.space.Space`` (``make_space``): per-depth lr ranges (scratch its own),
the schedules raced in each cell, the seeds.

- ``grid``: every depth x budget x (lr, schedule) x seed, with ``samples`` learning rates log-spaced over the
  depth's range (its order permuted by ``search_seed``): the paper's protocol over data budgets.
- ``random``: per budget and seed, ``samples`` trials with depth, lr (in the depth's range) and schedule drawn
  at random (seeded by ``search_seed``).
- ``optuna``: per budget, an independent Optuna TPE study over depth x lr x schedule (``PerBudgetSearcher`` of
  ``OptunaStudySearcher``s, Optuna's public ask/tell API; the trial's config is drawn by ``Space.optuna_point``: the
  lr on a unit interval mapped onto the drawn depth's range; TPE seeded by ``search_seed`` and the budget,
  ``tunedepth.space.searcher_seed``: never by the data seed), behind a ``ConcurrencyLimiter``, stored in
  ``results/<name>/optuna.db`` as study ``budget-<b>``; the depths are enqueued once before TPE takes over;
  trials stopped early by ASHA are told to Optuna as pruned; resume state is JSON.
- ``guideline``: the paper's rule, per budget: head only, then one group deeper at a time until no gain (each
  level's lrs launched in the grid's order, permuted by ``search_seed``; nothing is drawn).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher

from tunedepth.config import (
    SEARCHERS,  # noqa: E402  (declared once, checked when the config is built)
    SearchConfig,
)
from tunedepth.errors import ConfigError
from tunedepth.hpo.searchers.guideline import GuidelineSearcher
from tunedepth.hpo.searchers.per_budget import PerBudgetSearcher
from tunedepth.run_files import optuna_url, run_dir_of
from tunedepth.space import Space, searcher_seed, spread


@dataclass
class SearchPlan:
    param_space: dict[str, Any]
    num_samples: int
    search_alg: Searcher | BasicVariantGenerator | None = None
    guideline: GuidelineSearcher | None = None
    trials: int = 0  # trials planned (the guideline: at most), for the progress line


def make_space(cfg: SearchConfig, depths: list[str], fixed: dict[str, Any] | None = None) -> Space:
    """The run's one ``Space``, from its config and resolved depths (``fixed``: the keys every trial shares)."""
    return Space(depths=tuple(depths), budgets=tuple(cfg.budgets), seeds=tuple(cfg.seeds),
                 lr_range=(cfg.lr_min, cfg.lr_max), scratch_lr_range=(cfg.scratch_lr_min, cfg.scratch_lr_max),
                 schedules=tuple(cfg.schedules), samples=cfg.samples, search_seed=cfg.search_seed,
                 fixed=dict(fixed or {}))


def _points(cfg: SearchConfig, points: list[dict]) -> BasicVariantGenerator:
    """Tune's variant generator proposing exactly ``points``, in order (a fixed random state: nothing is drawn)."""
    return BasicVariantGenerator(points_to_evaluate=[dict(p) for p in points],
                                 random_state=searcher_seed(cfg.search_seed))


def make_plan(cfg: SearchConfig, depths: list[str], fixed: dict[str, Any], metric: str, mode: str) -> SearchPlan:
    """``fixed``: the trial-config keys every trial shares (app, backbone, source, epochs, ...)."""
    if cfg.searcher not in SEARCHERS:
        raise ConfigError(f"unknown searcher {cfg.searcher!r}; choose one of: {', '.join(SEARCHERS)}")
    if cfg.searcher == "optuna" and len(cfg.seeds) > 1:
        raise ConfigError(f"searcher 'optuna' runs one seed; pass --seeds {cfg.seeds[0]} (replicates: grid, random, "
                          "guideline)")
    space = make_space(cfg, depths, fixed)
    trials = space.trial_count(cfg.searcher)
    if cfg.searcher in ("grid", "random"):
        points = space.grid_points() if cfg.searcher == "grid" else space.random_points()
        return SearchPlan(space.placeholder(), len(points), _points(cfg, points), trials=trials)
    if cfg.searcher == "optuna":
        return _optuna_plan(cfg, space, metric, mode)
    if len(space.schedules) > 1:
        raise ConfigError(f"the guideline searcher races one schedule; pass one of {', '.join(space.schedules)} to "
                          "--schedules (grid, random and optuna race several)")
    guideline = GuidelineSearcher(depths, list(cfg.budgets), space.lrs(depths[0]), min_delta=cfg.guideline_min_delta,
                                  patience=cfg.guideline_patience, include_scratch="scratch" in depths,
                                  seeds=cfg.seeds, metric=metric, mode=mode, scratch_lrs=space.lrs("scratch"))
    return SearchPlan({**fixed, "schedule": space.schedules[0]}, trials, guideline, guideline, trials=trials)


def enqueued_depths(depths: list[str], trials: int) -> list[str]:
    """The depths enqueued in every budget's Optuna study: all of them, or, when a budget affords fewer
    ``trials``, that many spread evenly from head-only to the deepest (scratch last)."""
    return spread(depths, trials)


def _optuna_plan(cfg: SearchConfig, space: Space, metric: str, mode: str) -> SearchPlan:
    from tunedepth.hpo.searchers.optuna_study import OptunaStudySearcher, study_name

    url = optuna_url(run_dir_of(cfg))
    enqueue = enqueued_depths(list(space.depths), cfg.samples)

    def make(budget: float) -> Searcher:
        return OptunaStudySearcher(space, study_name=study_name(budget), seed=searcher_seed(cfg.search_seed, budget),
                                   n_startup_trials=min(5, cfg.samples), max_t=cfg.epochs, storage_url=url,
                                   enqueue=enqueue, metric=metric, mode=mode)

    inner = PerBudgetSearcher(make, list(cfg.budgets), cfg.samples, metric=metric, mode=mode)
    n = cfg.samples * len(cfg.budgets)
    return SearchPlan({**space.fixed, "seed": int(cfg.seeds[0])}, n, ConcurrencyLimiter(inner, cfg.max_concurrent or 2),
                      trials=n)
