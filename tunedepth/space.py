"""The study's search space as one object: depth x data budget x (learning rate, schedule) x seed.

``Space`` is data: the depths, the budgets, each depth's learning-rate range (scratch has its own, higher one:
random weights are trained from scratch, not nudged), the schedules raced in every cell, the seeds. Every
searcher takes its form from it:

- ``grid_points()``: every trial, flat, in proposal order (Tune's ``BasicVariantGenerator`` gets them as
  ``points_to_evaluate``): budgets largest first, then depth by depth, each cell's candidates
  (lr x schedule) one after another, each with every seed. The default scheduler judges a cell once all of
  it has reported, so the order decides only when a decision can be made, not what it is.
- ``random_points()``: per budget and seed, ``samples`` draws of depth, lr (log-uniform in the depth's range)
  and schedule, from a generator seeded by ``search_seed``.
- ``optuna_point(trial)``: the Optuna form, one trial's config drawn through ``optuna.Trial``'s public
  ``suggest_*`` calls: depth (categorical), ``lr_unit`` (uniform on [0, 1], mapped log-evenly onto the drawn
  depth's own range by ``lr_from_unit``, so the lr is log-uniform in that range and one TPE dimension spans depths
  with different ranges) and, when several are raced, the schedule (categorical). The only place an Optuna
  distribution is built.
- ``trial_count(searcher)`` and ``spread(depths, k)``: the planned trials, and k depths spread evenly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

SCRATCH = "scratch"  # the depth that trains every layer from random initialisation (declared once, here)


def spread(depths: Sequence[str], k: int) -> list[str]:
    """``k`` of ``depths`` spread evenly from the first to the last (all of them when ``k`` >= their number)."""
    depths = list(depths)
    if k >= len(depths):
        return depths
    if k <= 1:
        return depths[:1]
    return [depths[round(i * (len(depths) - 1) / (k - 1))] for i in range(k)]


def searcher_seed(search_seed: int, budget: float | None = None) -> int:
    """A searcher's RNG seed from the run's ``search_seed`` alone (and ``budget``, so each budget's searcher
    draws its own sequence): 32 bits, spread by numpy's ``SeedSequence``. The data seed plays no part."""
    entropy = [int(search_seed)] + ([] if budget is None else [int(round(float(budget) * 1_000_000))])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def log_grid(low: float, high: float, samples: int) -> list[float]:
    """``samples`` values log-evenly over [low, high] (3 significant digits); one when they are equal."""
    if low == high:
        return [float(low)]
    if samples == 1:
        return [float(f"{math.sqrt(low * high):.3g}")]
    return [float(f"{x:.3g}") for x in np.geomspace(low, high, samples)]


@dataclass(frozen=True)
class Space:
    depths: tuple[str, ...]
    budgets: tuple[float, ...]
    seeds: tuple[int, ...]
    lr_range: tuple[float, float]  # fine-tuning depths
    scratch_lr_range: tuple[float, float]  # depth scratch
    schedules: tuple[str, ...] = ("paper",)
    samples: int = 5  # grid: lrs per depth; random/optuna: draws per budget (x seed)
    search_seed: int = 0
    fixed: dict[str, Any] = field(default_factory=dict)  # the trial keys every trial shares

    # -- per depth ------------------------------------------------------------------------------------
    def range_of(self, depth: str) -> tuple[float, float]:
        return self.scratch_lr_range if depth == SCRATCH else self.lr_range

    def lrs(self, depth: str) -> list[float]:
        """The depth's grid of learning rates, in an order permuted by ``search_seed`` (0: ascending)."""
        lrs = log_grid(*self.range_of(depth), self.samples)
        if self.search_seed and len(lrs) > 1:
            lrs = [lrs[i] for i in np.random.default_rng(self.search_seed).permutation(len(lrs))]
        return lrs

    def candidates(self, depth: str) -> list[tuple[float, str]]:
        """A cell's candidates: every (lr, schedule) of the depth, raced together."""
        return [(lr, s) for lr in self.lrs(depth) for s in self.schedules]

    def lr_from_unit(self, depth: str, u: float) -> float:
        """``u`` in [0, 1] mapped log-evenly onto the depth's range (the Optuna form's lr)."""
        low, high = self.range_of(depth)
        return float(low * (high / low) ** min(max(float(u), 0.0), 1.0))

    # -- the forms ------------------------------------------------------------------------------------
    def optuna_point(self, trial: Any) -> dict[str, Any]:
        """One trial's ``depth``, ``lr`` and ``schedule``, drawn from ``trial`` (an ``optuna.Trial``).

        The order and the distributions are those the study has always been asked with (depth, then ``lr_unit``,
        then the schedule), so a study seed proposes what it proposed before. The lr itself is kept as the
        trial's user attribute ``lr`` (what optuna-dashboard shows beside ``lr_unit``)."""
        depth = trial.suggest_categorical("depth", list(self.depths))
        lr = self.lr_from_unit(depth, trial.suggest_float("lr_unit", 0.0, 1.0))
        schedule = (trial.suggest_categorical("schedule", list(self.schedules)) if len(self.schedules) > 1
                    else self.schedules[0])
        trial.set_user_attr("lr", lr)
        return {"depth": depth, "lr": lr, "schedule": schedule}

    def placeholder(self) -> dict[str, Any]:
        """The param space the points fill in: the fixed keys plus every varying key (Tune needs them present)."""
        return {**self.fixed, "budget": None, "depth": None, "lr": None, "schedule": None, "seed": None}

    def grid_points(self) -> list[dict[str, Any]]:
        return [{"budget": float(b), "depth": d, "lr": float(lr), "schedule": s, "seed": int(seed)}
                for b in sorted(self.budgets, reverse=True) for d in self.depths
                for lr, s in self.candidates(d) for seed in self.seeds]

    def random_points(self) -> list[dict[str, Any]]:
        rng = np.random.default_rng([int(self.search_seed), 7])
        points = []
        for b in sorted(self.budgets, reverse=True):
            for seed in self.seeds:
                for _ in range(self.samples):
                    d = self.depths[int(rng.integers(len(self.depths)))]
                    lr = self.lr_from_unit(d, float(rng.random()))
                    s = self.schedules[int(rng.integers(len(self.schedules)))]
                    points.append({"budget": float(b), "depth": d, "lr": float(f"{lr:.4g}"), "schedule": s,
                                   "seed": int(seed)})
        return points

    def trial_count(self, searcher: str) -> int:
        """Trials planned (the guideline: at most)."""
        if searcher in ("grid", "guideline"):
            return len(self.budgets) * sum(len(self.candidates(d)) for d in self.depths) * len(self.seeds)
        if searcher == "random":
            return self.samples * len(self.budgets) * len(self.seeds)
        return self.samples * len(self.budgets)  # optuna: one seed

    def cell_size(self, depth: str) -> int:
        """Trials of one (budget, depth) cell on the grid."""
        return len(self.candidates(depth)) * len(self.seeds)

    def describe_lrs(self) -> str:
        fine = [d for d in self.depths if d != SCRATCH]
        parts = []
        if fine:
            parts.append(", ".join(f"{x:g}" for x in sorted(self.lrs(fine[0]))))
        if SCRATCH in self.depths and (not fine or self.scratch_lr_range != self.lr_range):
            parts.append("scratch " + ", ".join(f"{x:g}" for x in sorted(self.lrs(SCRATCH))))
        return "; ".join(parts)
