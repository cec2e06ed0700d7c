"""Live progress in the terminal: per data budget, trials running/finished/stopped and the best depth so far."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

from ray import tune


@dataclass
class _TrialState:
    budget: float
    depth: str
    status: str = "pending"  # pending | running | finished | stopped | error
    epochs: int = 0
    best: float | None = None


class BudgetProgress(tune.Callback):
    """Prints a compact per-budget block at most every ``every_s`` seconds and when trials end."""

    def __init__(self, mode: str, max_epochs: int, metric_name: str, every_s: float = 10.0,
                 stream: TextIO | None = None):
        self.mode, self.max_epochs, self.metric_name, self.every_s = mode, max_epochs, metric_name, every_s
        self.stream = stream  # None = whatever sys.stdout is at print time
        self.trials: dict[str, _TrialState] = {}
        self.t0 = time.monotonic()
        self.last_print = 0.0

    def _state(self, trial) -> _TrialState:
        if trial.trial_id not in self.trials:
            self.trials[trial.trial_id] = _TrialState(float(trial.config["budget"]), str(trial.config["depth"]))
        return self.trials[trial.trial_id]

    def _better(self, a: float, b: float | None) -> bool:
        return b is None or (a > b if self.mode == "max" else a < b)

    def __getstate__(self) -> dict:  # Tune pickles callbacks with the experiment state; streams don't pickle
        return {**self.__dict__, "stream": None}

    def _register(self, trials) -> None:
        for t in trials:  # every trial Tune knows of, pending ones included
            self._state(t)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._register(trials)
        self._state(trial).status = "running"

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._register(trials)
        s = self._state(trial)
        s.status = "running"
        s.epochs = int(result.get("training_iteration", s.epochs))
        v = result.get("val_metric")
        if v is not None and self._better(v, s.best):
            s.best = float(v)
        self._maybe_print()

    def on_trial_complete(self, iteration, trials, trial, **info):
        s = self._state(trial)
        s.status = "finished" if s.epochs >= self.max_epochs else "stopped"
        self._maybe_print(force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._state(trial).status = "error"
        self._maybe_print(force=True)

    def on_experiment_end(self, trials, **info):
        self._print()

    def _maybe_print(self, force: bool = False) -> None:
        now = time.monotonic()
        if force and now - self.last_print < 2.0:
            return
        if force or now - self.last_print >= self.every_s:
            self._print()

    def render(self) -> str:
        elapsed = time.monotonic() - self.t0
        done = sum(s.status in ("finished", "stopped", "error") for s in self.trials.values())
        lines = [f"[{elapsed:6.0f}s] trials: {done}/{len(self.trials)} ended"]
        for budget in sorted({s.budget for s in self.trials.values()}):
            group = [s for s in self.trials.values() if s.budget == budget]
            count = {k: sum(s.status == k for s in group)
                     for k in ("pending", "running", "finished", "stopped", "error")}
            best = None
            for s in group:
                if s.best is not None and (best is None or self._better(s.best, best.best)):
                    best = s
            best_txt = f"best so far {best.depth} ({self.metric_name} {best.best:.3f})" if best else "no result yet"
            err = f", {count['error']} error" if count["error"] else ""
            lines.append(
                f"  budget {budget:<5g} pending {count['pending']}, running {count['running']}, "
                f"finished {count['finished']}, "
                f"stopped early {count['stopped']}{err} | {best_txt}"
            )
        return "\n".join(lines)

    def _print(self) -> None:
        self.last_print = time.monotonic()
        print(self.render(), file=self.stream or sys.stdout, flush=True)
