"""The paper's guideline as a search strategy (Tajbakhsh et al. 2016, Sec. V):

    "start with the last layer and add layers until performance stops improving."

``GuidelineSearcher`` does that for every data budget independently and in parallel: it tunes the head only
(depth 1), waits for the result, then deepens one layer group at a time. It stops deepening a budget when
``patience`` consecutive depths fail to beat the best validation score so far by more than ``min_delta``
(the noise level of the validation metric), or when every group is tuned. Each depth level tries the whole lr
grid, each lr with every seed (run in parallel); a trial's score is its best validation epoch, an lr's score
the mean over its seeds (seeds are replicates), and the level's score its best lr's. ``min_delta`` < 0 (the
default) takes the noise level from the seeds: the pooled standard deviation of the seed scores of every
(depth, lr) evaluated so far at that budget (0.01 while there is a single seed). ``scratch`` runs once per
learning rate, seed and budget as the control, alongside, without influencing the decision.

The searcher only judges finished trials, so every level is compared at the same training length: the
configuration refuses a scheduler that would cut trials short (``SearchConfig``: the guideline runs with
``--scheduler none``).
It records the trials and epochs it spent and why it stopped, per budget (``summary()``).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from ray.tune.search import Searcher

from tunedepth.hpo.searchers.state import JsonStateSearcher
from tunedepth.jsonstate import stored
from tunedepth.metrics.mode import Mode
from tunedepth.space import SCRATCH  # noqa: E402, F401  (the depth name, declared once in the space)


@stored
@dataclass
class _Budget:
    level: int = 0
    to_launch: list[tuple[str, float, int]] = field(default_factory=list)  # (depth, lr, seed)
    pending: set[str] = field(default_factory=set)
    level_scores: dict[str, float] = field(default_factory=dict)  # depth -> best lr's mean score (sign-adjusted)
    seed_scores: dict[tuple[str, float], list[float]] = field(default_factory=dict)  # (depth, lr) -> per seed
    best_depth: str | None = None
    best_score: float = -math.inf
    since_improvement: int = 0
    done: bool = False
    stop_reason: str = ""
    trials: int = 0
    epochs: int = 0
    scratch_to_launch: list[tuple[float, int]] = field(default_factory=list)


class GuidelineSearcher(JsonStateSearcher):
    def __init__(
        self,
        depths: list[str],
        budgets: list[float],
        lrs: list[float],
        min_delta: float = -1.0,
        patience: int = 1,
        seeds: tuple[int, ...] = (0,),
        include_scratch: bool = True,
        metric: str | None = None,
        mode: str | None = None,
        scratch_lrs: list[float] | None = None,
    ):
        super().__init__(metric=metric, mode=mode)
        self.depths = [d for d in depths if d != SCRATCH]
        if not self.depths:
            raise ValueError("the guideline searcher needs at least one fine-tuning depth besides scratch")
        self.budgets = [float(b) for b in budgets]
        self.lrs = [float(lr) for lr in lrs]
        self.seeds = [int(s) for s in seeds]
        self.min_delta, self.patience = float(min_delta), int(patience)
        self.scratch_lrs = [float(lr) for lr in (scratch_lrs or lrs)]  # scratch's own range
        cells = [(lr, seed) for lr in self.scratch_lrs for seed in self.seeds]
        self.state = {b: _Budget(to_launch=self._level(self.depths[0]),
                                 scratch_to_launch=list(cells) if include_scratch else []) for b in self.budgets}
        self.trial_info: dict[str, tuple[float, str, float]] = {}  # trial id -> (budget, depth, lr)
        self.trial_best: dict[str, float] = {}

    # -- helpers -------------------------------------------------------------------------------------
    def _sign(self) -> float:
        return Mode(self.mode).sign

    def _level(self, depth: str) -> list[tuple[str, float, int]]:
        return [(depth, lr, seed) for lr in self.lrs for seed in self.seeds]

    def _launch(self, trial_id: str, budget: float, depth: str, lr: float, seed: int) -> dict:
        st = self.state[budget]
        st.pending.add(trial_id)
        st.trials += 1
        self.trial_info[trial_id] = (budget, depth, lr)
        return {"budget": budget, "depth": depth, "lr": lr, "seed": seed}

    def noise(self, st: _Budget) -> float:
        """``min_delta``, or (when negative) the pooled standard deviation of the seeds' scores so far."""
        if self.min_delta >= 0:
            return self.min_delta
        groups = [v for v in st.seed_scores.values() if len(v) > 1 and all(math.isfinite(x) for x in v)]
        if not groups:
            return 0.01
        return math.sqrt(sum(statistics.variance(v) for v in groups) / len(groups))

    # -- Searcher API --------------------------------------------------------------------------------
    def suggest(self, trial_id: str):
        order = sorted(self.budgets, key=lambda b: self.state[b].trials)
        for b in order:
            st = self.state[b]
            if st.to_launch and not st.done:
                return self._launch(trial_id, b, *st.to_launch.pop(0))
        for b in order:
            st = self.state[b]
            if st.scratch_to_launch:
                return self._launch(trial_id, b, SCRATCH, *st.scratch_to_launch.pop(0))
        if all(st.done and not st.pending and not st.scratch_to_launch for st in self.state.values()):
            return Searcher.FINISHED
        return None  # waiting for the current depth's results before deciding whether to go deeper

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.trial_info or self.metric not in result:
            return
        self.state[self.trial_info[trial_id][0]].epochs += 1
        score = self._sign() * float(result[self.metric])
        if math.isfinite(score):
            self.trial_best[trial_id] = max(self.trial_best.get(trial_id, -math.inf), score)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.trial_info:
            return
        budget, depth, lr = self.trial_info[trial_id]
        st = self.state[budget]
        st.pending.discard(trial_id)
        if depth == SCRATCH:
            return
        st.seed_scores.setdefault((depth, lr), []).append(self.trial_best.get(trial_id, -math.inf))
        level_open = any(self.trial_info[t][1] == depth for t in st.pending) or any(c[0] == depth for c in st.to_launch)
        if not level_open and not st.done:
            st.level_scores[depth] = max(sum(v) / len(v) for (d, _), v in st.seed_scores.items() if d == depth)
            self._decide(st, depth)

    def _decide(self, st: _Budget, depth: str) -> None:
        score, delta = st.level_scores[depth], self.noise(st)
        if st.best_depth is None or score > st.best_score + delta:
            st.best_depth, st.best_score, st.since_improvement = depth, score, 0
        else:  # worse, or better only within noise: the shallower depth stays the answer
            st.since_improvement += 1
        if st.since_improvement >= self.patience:
            st.done, st.stop_reason = True, (
                f"{depth} did not improve on {st.best_depth} by more than {delta:.3g}"
                + (f" for {self.patience} consecutive depths" if self.patience > 1 else ""))
        elif st.level + 1 >= len(self.depths):
            st.done, st.stop_reason = True, "every layer group is tuned"
        else:
            st.level += 1
            st.to_launch = self._level(self.depths[st.level])

    def summary(self) -> dict[float, dict]:
        """Per budget: chosen depth, depths evaluated with their scores, trials and epochs spent, why it stopped."""
        sign = self._sign()
        return {
            b: {
                "best_depth": st.best_depth,
                "best_score": sign * st.best_score if math.isfinite(st.best_score) else None,
                "evaluated": {d: sign * s for d, s in st.level_scores.items()},
                "trials": st.trials,
                "epochs": st.epochs,
                "stop_reason": st.stop_reason or "not finished",
                "min_delta": self.noise(st),
            }
            for b, st in self.state.items()
        }
