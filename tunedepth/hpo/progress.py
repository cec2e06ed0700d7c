"""Live progress in the terminal: a progress line (trials and optimizer steps done / planned, ETA; see
``tunedepth.hpo.eta``), then per data budget, trials running/finished/stopped and the best depth so far."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

import pandas as pd
from ray import tune

from tunedepth.analysis.selecting import best_depths, select_cells
from tunedepth.analysis.trial_states import ENDED, ERROR, PENDING, RUNNING, counts_text, ended_state, state_of
from tunedepth.hpo.eta import Progress, compute_progress, progress_line
from tunedepth.metrics.mode import Mode


@dataclass
class _TrialState:
    budget: float
    depth: str
    depth_index: int = 0
    lr: float = 0.0
    seed: int = 0
    status: str = PENDING  # one of tunedepth.analysis.trial_states.STATES
    epochs: int = 0
    best: float | None = None
    diverged: bool = False  # its last result said NaN/inf loss


class BudgetProgress(tune.Callback):
    """Prints a compact per-budget block at most every ``every_s`` seconds and when trials end."""

    def __init__(self, mode: str, max_epochs: int, metric_name: str, every_s: float = 10.0,
                 stream: TextIO | None = None, planned_trials: int = 0, steps_per_epoch: int = 0):
        self.mode, self.max_epochs, self.metric_name, self.every_s = mode, max_epochs, metric_name, every_s
        self.stream = stream  # None = whatever sys.stdout is at print time
        self.planned_trials, self.steps_per_epoch = planned_trials, steps_per_epoch  # 0: no progress line
        self.trials: dict[str, _TrialState] = {}
        self.t0 = time.monotonic()
        self.last_print = 0.0
        self.steps_at_start = 0

    def _state(self, trial) -> _TrialState:
        if trial.trial_id not in self.trials:
            c = trial.config
            self.trials[trial.trial_id] = _TrialState(float(c["budget"]), str(c["depth"]), lr=float(c.get("lr", 0.0)),
                                                      seed=int(c.get("seed", 0)))
        return self.trials[trial.trial_id]

    def _better(self, a: float, b: float | None) -> bool:
        return Mode.of(self.mode).better(a, b)

    def best_so_far(self) -> pd.DataFrame:
        """Per budget, the best depth by validation so far (``tunedepth.analysis.selecting``'s one rule)."""
        frame = pd.DataFrame([{"trial_id": tid, "budget": s.budget, "depth": s.depth, "depth_index": s.depth_index,
                               "lr": s.lr, "seed": s.seed, "epoch": s.epochs, "val_metric": s.best, "n_train": 0,
                               "status": "error" if s.status == ERROR else "diverged" if s.diverged else "ok"}
                              for tid, s in self.trials.items() if s.best is not None])
        return best_depths(select_cells(frame, self.mode), self.mode) if len(frame) else frame

    def __getstate__(self) -> dict:  # Tune pickles callbacks with the experiment state; streams don't pickle
        return {**self.__dict__, "stream": None}

    def __setstate__(self, state: dict) -> None:  # a resumed search: its own clock and step rate
        self.__dict__.update({"planned_trials": 0, "steps_per_epoch": 0, **state})  # older snapshots lack them
        self.t0, self.last_print = time.monotonic(), 0.0
        self.steps_at_start = self.progress().steps_done if self.steps_per_epoch else 0

    def progress(self) -> Progress:
        epochs = {tid: (s.epochs, s.status in ENDED) for tid, s in self.trials.items()}
        return compute_progress(epochs, self.planned_trials, self.max_epochs, self.steps_per_epoch,
                                time.monotonic() - self.t0, self.steps_at_start)

    def _register(self, trials) -> None:
        for t in trials:  # every trial Tune knows of, pending ones included
            s = self._state(t)
            status = getattr(t, "status", None)  # a resumed search: trials that ended before it get no event
            if s.status in ENDED:
                continue
            if status in ("TERMINATED", "ERROR"):
                last = getattr(t, "last_result", None) or {}
                s.epochs = int(last.get("training_iteration", s.epochs))
                s.diverged = s.diverged or bool(last.get("diverged"))
            if status is not None:
                s.status = state_of(status, s.epochs, self.max_epochs, s.diverged)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._register(trials)
        self._state(trial).status = RUNNING

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._register(trials)
        s = self._state(trial)
        s.status = RUNNING
        s.epochs = int(result.get("training_iteration", s.epochs))
        s.depth_index = int(result.get("depth_index", s.depth_index))
        s.diverged = bool(result.get("diverged"))
        v = result.get("val_metric")
        if v is not None and self._better(v, s.best):
            s.best = float(v)
        self._maybe_print()

    def on_trial_complete(self, iteration, trials, trial, **info):
        s = self._state(trial)
        s.status = ended_state(s.epochs, self.max_epochs, s.diverged)
        self._maybe_print(force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._state(trial).status = ERROR
        self._maybe_print(force=True)

    def on_experiment_end(self, trials, **info):
        self._register(trials)
        self._print()

    def _maybe_print(self, force: bool = False) -> None:
        now = time.monotonic()
        if force and now - self.last_print < 2.0:
            return
        if force or now - self.last_print >= self.every_s:
            self._print()

    def render(self) -> str:
        elapsed = time.monotonic() - self.t0
        done = sum(s.status in ENDED for s in self.trials.values())
        lines = [f"[{elapsed:6.0f}s] trials: {done}/{len(self.trials)} ended"]
        if self.steps_per_epoch:
            lines.append(f"  progress {progress_line(self.progress())}")
        best = self.best_so_far()
        for budget in sorted({s.budget for s in self.trials.values()}):
            group = [s for s in self.trials.values() if s.budget == budget]
            top = best[best["budget"] == budget] if len(best) else best
            best_txt = (f"best so far {top['depth'].iloc[0]} ({self.metric_name} {top['val_metric'].iloc[0]:.3f})"
                        if len(top) else "no result yet")
            lines.append(f"  budget {budget:<5g} {counts_text(s.status for s in group)} | {best_txt}")
        return "\n".join(lines)

    def _print(self) -> None:
        self.last_print = time.monotonic()
        print(self.render(), file=self.stream or sys.stdout, flush=True)
