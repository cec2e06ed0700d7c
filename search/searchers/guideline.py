"""The paper's guideline as a search strategy (Tajbakhsh et al. 2016, Sec. V):

    "start with the last layer and add layers until performance stops improving."

``GuidelineSearcher`` does that for every data budget independently and in parallel: it tunes the head only
(depth 1), waits for the result, then deepens one layer group at a time. It stops deepening a budget when
``patience`` consecutive depths fail to beat the best validation score so far by more than ``min_delta``
(the noise level of the validation metric), or when every group is tuned. Each depth level may try several
learning rates (run in parallel); the level's score is its best trial's best validation epoch. ``scratch``
runs once per learning rate and budget as the control, alongside, without influencing the decision.
It records the trials and epochs it spent and why it stopped, per budget (``summary()``).
"""
from __future__ import annotations


import math
from dataclasses import dataclass, field

from ray.tune.search import Searcher

from search.searchers.state import PicklableSearcher

SCRATCH = "scratch"


@dataclass
class _Budget:
    level: int = 0
    to_launch: list[tuple[str, float]] = field(default_factory=list)
    pending: set[str] = field(default_factory=set)
    level_scores: dict[str, float] = field(default_factory=dict)  # depth -> best score (sign-adjusted)
    best_depth: str | None = None
    best_score: float = -math.inf
    since_improvement: int = 0
    done: bool = False
    stop_reason: str = ""
    trials: int = 0
    epochs: int = 0
    scratch_to_launch: list[float] = field(default_factory=list)


class GuidelineSearcher(PicklableSearcher):
    def __init__(
        self,
        depths: list[str],
        budgets: list[float],
        lrs: list[float],
        min_delta: float = 0.01,
        patience: int = 1,
        include_scratch: bool = True,
        metric: str | None = None,
        mode: str | None = None,
    ):
        super().__init__(metric=metric, mode=mode)
        self.depths = [d for d in depths if d != SCRATCH]
        if not self.depths:
            raise ValueError("the guideline searcher needs at least one fine-tuning depth besides scratch")
        self.budgets = [float(b) for b in budgets]
        self.lrs = [float(lr) for lr in lrs]
        self.min_delta, self.patience = float(min_delta), int(patience)
        self.state = {b: _Budget(to_launch=[(self.depths[0], lr) for lr in self.lrs],
                                 scratch_to_launch=list(self.lrs) if include_scratch else []) for b in self.budgets}
        self.trial_info: dict[str, tuple[float, str]] = {}  # trial id -> (budget, depth)
        self.trial_best: dict[str, float] = {}

    # -- helpers -------------------------------------------------------------------------------------
    def _sign(self) -> float:
        return -1.0 if self.mode == "min" else 1.0

    def _launch(self, trial_id: str, budget: float, depth: str, lr: float) -> dict:
        st = self.state[budget]
        st.pending.add(trial_id)
        st.trials += 1
        self.trial_info[trial_id] = (budget, depth)
        return {"budget": budget, "depth": depth, "lr": lr}

    # -- Searcher API --------------------------------------------------------------------------------
    def suggest(self, trial_id: str):
        order = sorted(self.budgets, key=lambda b: self.state[b].trials)
        for b in order:
            st = self.state[b]
            if st.to_launch and not st.done:
                depth, lr = st.to_launch.pop(0)
                return self._launch(trial_id, b, depth, lr)
        for b in order:
            st = self.state[b]
            if st.scratch_to_launch:
                return self._launch(trial_id, b, SCRATCH, st.scratch_to_launch.pop(0))
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
        budget, depth = self.trial_info[trial_id]
        st = self.state[budget]
        st.pending.discard(trial_id)
        if depth == SCRATCH:
            return
        best = self.trial_best.get(trial_id, -math.inf)
        st.level_scores[depth] = max(st.level_scores.get(depth, -math.inf), best)
        level_open = any(self.trial_info[t][1] == depth for t in st.pending) or any(d == depth for d, _ in st.to_launch)
        if not level_open and not st.done:
            self._decide(st, depth)

    def _decide(self, st: _Budget, depth: str) -> None:
        score = st.level_scores[depth]
        if st.best_depth is None or score > st.best_score + self.min_delta:
            st.best_depth, st.best_score, st.since_improvement = depth, score, 0
        else:  # worse, or better only within noise: the shallower depth stays the answer
            st.since_improvement += 1
        if st.since_improvement >= self.patience:
            st.done, st.stop_reason = True, (
                f"{depth} did not improve on {st.best_depth} by more than {self.min_delta:g}"
                + (f" for {self.patience} consecutive depths" if self.patience > 1 else ""))
        elif st.level + 1 >= len(self.depths):
            st.done, st.stop_reason = True, "every layer group is tuned"
        else:
            st.level += 1
            st.to_launch = [(self.depths[st.level], lr) for lr in self.lrs]

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
            }
            for b, st in self.state.items()
        }
