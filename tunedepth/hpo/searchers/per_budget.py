"""One independent searcher per data budget, behind a single Ray Tune ``Searcher``.

"Which depth is best at budget b" is a separate question for every b, so a model-based searcher (Optuna's
TPE) must not pool results across budgets: a 100%-budget trial says nothing about the 10% landscape.
``PerBudgetSearcher`` keeps one sub-searcher per budget, hands out suggestions round-robin (the budget
with the fewest suggestions first) and routes every result back to the sub-searcher that made it.

Its resume state is JSON (``tunedepth.jsonstate``): its counts, which budget each trial went to, and each
sub-searcher's own ``get_state()`` (``OptunaStudySearcher``: Tune trial id -> Optuna trial number).
"""
from __future__ import annotations

from typing import Callable

from ray.tune.search import Searcher

from tunedepth.hpo.searchers.state import JsonStateSearcher


class PerBudgetSearcher(JsonStateSearcher):
    def __init__(
        self,
        make_searcher: Callable[[float], Searcher],
        budgets: list[float],
        trials_per_budget: int,
        metric: str | None = None,
        mode: str | None = None,
    ):
        super().__init__(metric=metric, mode=mode)
        self.budgets = [float(b) for b in budgets]
        self.trials_per_budget = trials_per_budget
        self.searchers = {b: make_searcher(b) for b in self.budgets}
        self.suggested = {b: 0 for b in self.budgets}
        self.budget_of: dict[str, float] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        ok = super().set_search_properties(metric, mode, config, **spec)
        for s in self.searchers.values():
            s.set_search_properties(metric, mode, {}, **spec)
        return ok

    def get_state(self) -> dict:
        return {"suggested": dict(self.suggested), "budget_of": dict(self.budget_of),
                "searchers": {b: s.get_state() for b, s in self.searchers.items()}}

    def set_state(self, state: dict) -> None:
        if set(state["searchers"]) != set(self.searchers):
            raise ValueError(f"searcher state is for budgets {sorted(state['searchers'])}, this run's are "
                             f"{sorted(self.searchers)}; resume with the run's own settings")
        self.suggested, self.budget_of = dict(state["suggested"]), dict(state["budget_of"])
        for b, s in self.searchers.items():  # e.g. an Optuna study reconciled with its database
            s.set_state(state["searchers"][b])

    def suggest(self, trial_id: str):
        open_budgets = [b for b in self.budgets if self.suggested[b] < self.trials_per_budget]
        if not open_budgets:
            return Searcher.FINISHED
        for b in sorted(open_budgets, key=lambda b: self.suggested[b]):
            config = self.searchers[b].suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                continue
            self.suggested[b] += 1
            self.budget_of[trial_id] = b
            return {**config, "budget": b}
        return None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.budget_of:
            self.searchers[self.budget_of[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        b = self.budget_of.get(trial_id)
        if b is not None:
            self.searchers[b].on_trial_complete(trial_id, result=result, error=error)
