"""Search strategies: how trials are proposed. ``make_plan`` turns a ``SearchConfig`` into what Tune needs.

- ``grid``: every depth x budget x lr x seed, with ``samples`` learning rates log-spaced over [lr_min, lr_max]
  (the same grid in every cell, its order permuted by ``search_seed``): the paper's protocol over data budgets.
- ``random``: per budget and seed, ``samples`` trials with depth and lr drawn at random.
- ``optuna``: per budget, an independent Optuna TPE study over depth x lr (``PerBudgetSearcher``), behind a
  ``ConcurrencyLimiter``, stored in ``results/<name>/optuna.db`` as study ``budget-<b>``; the depths are enqueued
  once before TPE takes over; trials stopped early by ASHA are told to Optuna as pruned.
- ``guideline``: the paper's rule, per budget: head only, then one group deeper at a time until no gain.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray import tune
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher

from search.config import SearchConfig
from search.run_files import optuna_url, run_dir_of
from search.searchers.guideline import GuidelineSearcher
from search.searchers.per_budget import PerBudgetSearcher
from spaces import depth_budget_space
from trainables.errors import ConfigError

from search.config import SEARCHERS  # noqa: E402  (declared once, checked when the config is built)


@dataclass
class SearchPlan:
    param_space: dict[str, Any]
    num_samples: int
    search_alg: Searcher | BasicVariantGenerator | None = None
    guideline: GuidelineSearcher | None = None
    trials: int = 0  # trials planned (the guideline: at most), for the progress line


def _lr_space(cfg: SearchConfig):
    return tune.loguniform(cfg.lr_min, cfg.lr_max) if cfg.lr_min < cfg.lr_max else cfg.lr_min


def fixed_lrs(cfg: SearchConfig) -> list[float]:
    """``samples`` learning rates spread log-evenly over [lr_min, lr_max] (one if they are equal), in an order
    permuted by ``search_seed`` (0: ascending)."""
    if cfg.lr_min == cfg.lr_max:
        return [cfg.lr_min]
    if cfg.samples == 1:
        return [float(math.sqrt(cfg.lr_min * cfg.lr_max))]
    lrs = [float(f"{x:.3g}") for x in np.geomspace(cfg.lr_min, cfg.lr_max, cfg.samples)]
    if cfg.search_seed:
        lrs = [lrs[i] for i in np.random.default_rng(cfg.search_seed).permutation(len(lrs))]
    return lrs


def _seeded_variants(cfg: SearchConfig) -> BasicVariantGenerator:
    """Tune's grid/random variant generator with a fixed random state: the same draws for the same seeds."""
    return BasicVariantGenerator(random_state=int(cfg.data_seed) + 1 + 1000 * int(cfg.search_seed))


def make_plan(cfg: SearchConfig, depths: list[str], fixed: dict[str, Any], metric: str, mode: str) -> SearchPlan:
    """``fixed``: the trial-config keys every trial shares (app, backbone, source, schedule, epochs, ...)."""
    if cfg.searcher not in SEARCHERS:
        raise ConfigError(f"unknown searcher {cfg.searcher!r}; choose one of: {', '.join(SEARCHERS)}")
    if cfg.searcher == "optuna" and len(cfg.seeds) > 1:
        raise ConfigError(f"searcher 'optuna' runs one seed; pass --seeds {cfg.seeds[0]} (replicates: grid, random, "
                          "guideline)")
    seed = {"seed": int(cfg.seeds[0])}
    if cfg.searcher == "grid":
        space = depth_budget_space(depths=depths, budgets=cfg.budgets, lrs=fixed_lrs(cfg), seeds=cfg.seeds, **fixed)
        return SearchPlan(space, 1, _seeded_variants(cfg),
                          trials=len(depths) * len(cfg.budgets) * len(fixed_lrs(cfg)) * len(cfg.seeds))
    if cfg.searcher == "random":
        space = {**fixed, "budget": tune.grid_search(list(cfg.budgets)), "depth": tune.choice(depths),
                 "lr": _lr_space(cfg),
                 "seed": tune.grid_search(list(cfg.seeds)) if len(cfg.seeds) > 1 else cfg.seeds[0]}
        return SearchPlan(space, cfg.samples, _seeded_variants(cfg),
                          trials=cfg.samples * len(cfg.budgets) * len(cfg.seeds))
    if cfg.searcher == "optuna":
        return _optuna_plan(cfg, depths, {**fixed, **seed}, metric, mode)
    guideline = GuidelineSearcher(depths, list(cfg.budgets), fixed_lrs(cfg), min_delta=cfg.guideline_min_delta,
                                  patience=cfg.guideline_patience, include_scratch="scratch" in depths,
                                  seeds=cfg.seeds, metric=metric, mode=mode)
    upper = len(depths) * len(cfg.budgets) * len(fixed_lrs(cfg)) * len(cfg.seeds)
    return SearchPlan(dict(fixed), upper, guideline, guideline, trials=upper)


def enqueued_depths(depths: list[str], trials: int) -> list[str]:
    """The depths enqueued in every budget's Optuna study: all of them, or, when a budget affords fewer
    ``trials``, that many spread evenly from head-only to the deepest (scratch last)."""
    if trials >= len(depths):
        return list(depths)
    if trials == 1:
        return [depths[0]]
    return [depths[round(i * (len(depths) - 1) / (trials - 1))] for i in range(trials)]


def _optuna_plan(cfg: SearchConfig, depths: list[str], fixed: dict[str, Any], metric: str, mode: str) -> SearchPlan:
    import optuna
    from search.searchers.optuna_pruned import PrunedAwareOptunaSearch, study_name

    url = optuna_url(run_dir_of(cfg))

    def make(budget: float) -> Searcher:
        dists = {"depth": optuna.distributions.CategoricalDistribution(depths)}
        if cfg.lr_min < cfg.lr_max:
            dists["lr"] = optuna.distributions.FloatDistribution(cfg.lr_min, cfg.lr_max, log=True)
        sampler = optuna.samplers.TPESampler(seed=cfg.data_seed * 1000 + int(budget * 1000),
                                             n_startup_trials=min(5, cfg.samples))
        return PrunedAwareOptunaSearch(dists, metric=metric, mode=mode, sampler=sampler, max_t=cfg.epochs,
                                       study_name=study_name(budget), storage_url=url,
                                       enqueue=enqueued_depths(depths, cfg.samples))

    inner = PerBudgetSearcher(make, list(cfg.budgets), cfg.samples, metric=metric, mode=mode)
    lr = {} if cfg.lr_min < cfg.lr_max else {"lr": cfg.lr_min}
    n = cfg.samples * len(cfg.budgets)
    return SearchPlan({**fixed, **lr}, n, ConcurrencyLimiter(inner, cfg.max_concurrent or 2), trials=n)
