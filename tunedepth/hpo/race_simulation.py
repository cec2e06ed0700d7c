"""A cell's learning-rate race simulated with a known truth: what the default protocol costs and how often it
picks right, against the exhaustive converged grid. Needs no training and no Ray (``bench/halving_cost.py``
prints the table, ``tests/test_race_simulation.py`` checks it).

The model of one cell (one budget x depth):

- a validation split of ``n_val`` cases: labels and each case's difficulty, which every model of the task
  shares (as ``tests/test_paired_evidence.py``); a model's scores are ``signal x label + difficulty + own
  noise``, so its true AUC is ``Phi(signal / sqrt(2 (1 + own^2)))``;
- ``k`` candidates (learning rates log-spaced over two decades). A candidate's converged signal falls with its
  squared log-distance from a random optimum; it approaches it as ``1 - exp(-t / tau)``, slower for smaller
  learning rates; every seed converges to its own value (``seed_sd``);
- each validation draws fresh own noise (the weights moved), scores the split and its 24 fixed halves
  (``tunedepth.metrics.noise.compute_halves``), and reports what ``tunedepth.training.trial`` reports: the best
  score so far with its error and halves, the chance level, and ``early_stopped`` after ``patience``
  validations without a better score.

The pruned run is the default protocol: ``tunedepth.hpo.promotion.StratifiedHalving`` per depth, replicates on demand
for the leader, rungs at ``grace x 2^k``, ``z`` paired standard errors. The grid trains every candidate x seed
to its plateau (the cap x ``grid_cap_factor``). Both select as ``tunedepth.analysis.selecting`` does: the candidate
with the most seeds, then the best mean of its seeds' best validation scores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from scipy.stats import norm

from tunedepth.hpo.promotion import StratifiedHalving
from tunedepth.metrics.noise import compute_halves, halves_se

OWN = 0.35  # a model's own noise per case, relative to the shared difficulty (sd 1)


def auc(labels: np.ndarray, scores: np.ndarray, meta=None) -> float:
    """ROC AUC as the Mann-Whitney statistic (continuous scores: no ties)."""
    ranks = np.empty(labels.shape[0])
    ranks[np.argsort(scores)] = np.arange(1, labels.shape[0] + 1)
    n1 = int(labels.sum())
    n0 = labels.shape[0] - n1
    return float((ranks[labels == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def true_auc(signal: float) -> float:
    return float(norm.cdf(signal / math.sqrt(2 * (1 + OWN ** 2))))


@dataclass(frozen=True)
class Race:
    k: int = 4  # candidates per cell
    seeds: int = 2
    n_val: int = 210  # the demo's validation crops
    cap: int = 20  # validations
    grid_cap_factor: int = 2
    patience: int = 3  # validations without a better score
    grace: int = 2  # first rung
    z: float = 2.0
    growth: float = 2.4  # tunedepth.hpo.promotion: a candidate's reach = its score + growth x its last rung's gain
    peak: float = 1.6  # the best candidate's converged signal (true AUC ~0.87)
    width: float = 0.35  # signal lost per squared decade from the optimum
    tau: float = 2.0  # validations to 63% of the converged signal at the optimum
    seed_sd: float = 0.04  # a seed's converged signal around its candidate's
    tie: float = 0.01  # true AUC within this of the best: tied with it


@dataclass
class CellOutcome:
    steps: int  # validations run
    pick: int  # the selected candidate
    in_tied: bool  # its true AUC is within ``tie`` of the best candidate's
    capped: bool  # a selected replicate reached the cap without a plateau
    loss: float  # true AUC of the best candidate minus the pick's


class _Trial:
    def __init__(self, race: Race, rng, cand: int, seed: int, lr: float, signal: float, tau: float):
        self.cand, self.seed, self.tau = cand, seed, tau
        self.signal = signal + rng.normal(0, race.seed_sd)
        self.rng, self.race = np.random.default_rng(rng.integers(1 << 32)), race
        self.t, self.best, self.best_halves, self.since, self.stub = 0, -math.inf, None, 0, None
        self.lr, self.ended = lr, False

    def step(self, y: np.ndarray, shared: np.ndarray) -> dict:
        self.t += 1
        s = self.signal * (1 - math.exp(-self.t / self.tau))
        scores = s * y + shared + self.rng.normal(0, OWN, y.shape[0])
        value = auc(y, scores)
        if value > self.best:
            self.best, self.since = value, 0
            self.best_halves = compute_halves(auc, y, scores, {})
        else:
            self.since += 1
        stop = self.since >= self.race.patience
        se = halves_se(self.best_halves)  # the scheduler judges the best score so far, with that score's error
        return {"training_iteration": self.t, "val_metric": value, "best_val_metric": self.best,
                "best_val_se": se, "best_val_halves": list(self.best_halves), "val_se": se, "val_chance": 0.5,
                "early_stopped": stop}


def _cell(race: Race, rng) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float, float]]]:
    y = rng.integers(0, 2, race.n_val)
    y[:2] = [0, 1]
    shared = rng.normal(0, 1.0, race.n_val)
    lrs = np.logspace(-2, 0, race.k) if race.k > 1 else np.array([0.1])
    opt = 10 ** rng.uniform(-2, 0)
    cands = [(float(lr), race.peak - race.width * math.log10(lr / opt) ** 2, race.tau * math.sqrt(opt / lr))
             for lr in lrs]
    return y, shared, cands


def _select(trials: list[_Trial]) -> int:
    """The candidate with the most complete seeds, then the best mean of their best scores."""
    per: dict[int, list[float]] = {}
    for tr in trials:
        if tr.ended:
            per.setdefault(tr.cand, []).append(tr.best)
    return max(per, key=lambda c: (len(per[c]), float(np.mean(per[c])), -c))


def _outcome(race: Race, trials: list[_Trial], cands, steps: int, cap: int) -> CellOutcome:
    pick = _select(trials)
    truth = [true_auc(sig) for _, sig, _ in cands]
    capped = any(tr.cand == pick and tr.ended and tr.since < race.patience and tr.t >= cap for tr in trials)
    return CellOutcome(steps=steps, pick=pick, in_tied=max(truth) - truth[pick] <= race.tie, capped=capped,
                       loss=max(truth) - truth[pick])


def run_grid(race: Race, rng, y, shared, cands) -> CellOutcome:
    cap = race.cap * race.grid_cap_factor
    trials = [
        _Trial(race, rng, c, s, lr, sig, tau) for c, (lr, sig, tau) in enumerate(cands) for s in range(race.seeds)
    ]
    for tr in trials:
        while tr.t < cap and not tr.step(y, shared)["early_stopped"]:
            pass
        tr.ended = True
    return _outcome(race, trials, cands, sum(tr.t for tr in trials), cap)


def run_pruned(race: Race, rng, y, shared, cands, replicate_tied: bool = False) -> CellOutcome:
    sched = StratifiedHalving(metric="val_metric", mode="max", max_t=race.cap, grace_period=race.grace,
                              reduction_factor=2, z=race.z, growth=race.growth, stratum_size=race.k * race.seeds,
                              lead_replicate=0, replicate_tied=replicate_tied)
    trials = [
        _Trial(race, rng, c, s, lr, sig, tau) for c, (lr, sig, tau) in enumerate(cands) for s in range(race.seeds)
    ]
    by_id = {}
    for tr in trials:
        tr.stub = Trial("__fake", config={"budget": 1.0, "depth": "d", "lr": tr.lr, "schedule": "paper",
                                          "seed": tr.seed}, stub=True)
        by_id[tr.stub.trial_id] = tr
        sched.on_trial_add(None, tr.stub)
    runnable = [tr for tr in trials if tr.stub.trial_id not in sched.waiting]
    while runnable:
        for tr in runnable:
            while tr.t < race.cap:
                result = tr.step(y, shared)
                if sched.on_trial_result(None, tr.stub, result) == TrialScheduler.PAUSE:
                    break
                if result["early_stopped"]:
                    break
            if sched.paused_at.get(tr.stub.trial_id) is None:
                tr.ended = True
                sched.on_trial_complete(None, tr.stub, {})
        resume, _ = sched.decide(search_finished=True)
        released, _ = sched.settle_replicates(search_finished=True)
        runnable = [by_id[t] for t in resume + released]
    return _outcome(race, trials, cands, sum(tr.t for tr in trials), race.cap)


def simulate(race: Race, cells: int, seed: int = 0, replicate_tied: bool = False) -> dict[str, float]:
    """``cells`` simulated cells, each run both ways on the same validation split and candidates."""
    rng = np.random.default_rng(seed)
    pruned, grid = [], []
    for _ in range(cells):
        y, shared, cands = _cell(race, rng)
        grid.append(run_grid(race, np.random.default_rng(rng.integers(1 << 32)), y, shared, cands))
        pruned.append(run_pruned(race, np.random.default_rng(rng.integers(1 << 32)), y, shared, cands,
                                 replicate_tied))
    return {"steps_fraction": sum(p.steps for p in pruned) / sum(g.steps for g in grid),
            "pruned_in_tied": float(np.mean([p.in_tied for p in pruned])),
            "grid_in_tied": float(np.mean([g.in_tied for g in grid])),
            "pruned_loss": float(np.mean([p.loss for p in pruned])),
            "grid_loss": float(np.mean([g.loss for g in grid])),
            "pruned_capped": float(np.mean([p.capped for p in pruned])),
            "grid_capped": float(np.mean([g.capped for g in grid]))}
