"""The progress line of a search: trials and optimizer steps done / planned, and an ETA from the step rate.

Pure functions (no Ray, no clock): ``tunedepth.hpo.progress.BudgetProgress`` feeds them what Tune reported. A trial's
length is counted in optimizer steps (``epochs`` epoch-equivalents of a fixed number of steps, the same at every
budget), so the rate measured on finished steps predicts the remaining ones. A trial the scheduler stopped early
takes its unrun steps out of the plan; trials not yet stopped count in full, so the ETA is an upper estimate
under a stopping scheduler. Plain text: it reads the same in a terminal and in a log file.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    trials_done: int
    trials_planned: int
    steps_done: int
    steps_planned: int
    elapsed_s: float  # of this session (a resumed search measures its own rate)
    session_steps: int  # steps done in this session

    @property
    def fraction(self) -> float:
        return min(1.0, self.steps_done / self.steps_planned) if self.steps_planned else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at this session's step rate; None before the first step is reported."""
        if self.session_steps <= 0 or self.elapsed_s <= 0:
            return None
        return max(0, self.steps_planned - self.steps_done) * self.elapsed_s / self.session_steps


def compute_progress(epochs: dict[str, tuple[int, bool]], planned_trials: int, max_epochs: int,
                     steps_per_epoch: int, elapsed_s: float, steps_at_start: int = 0) -> Progress:
    """``epochs``: per trial known to Tune, (epoch-equivalents reported, ended). Trials not yet created count as
    planned at full length; ``steps_at_start``: steps already done when this session began (a resume)."""
    done_epochs = sum(e for e, _ in epochs.values())
    ended = [e for e, over in epochs.values() if over]
    planned = max(planned_trials, len(epochs))
    planned_epochs = sum(ended) + (planned - len(ended)) * max_epochs
    steps_done = done_epochs * steps_per_epoch
    return Progress(len(ended), planned, steps_done, max(steps_done, planned_epochs * steps_per_epoch), elapsed_s,
                    steps_done - steps_at_start)


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_line(p: Progress, width: int = 20) -> str:
    """``[######--------------] 30% | trials 3/8 | steps 240/800 | ETA 1m38s``."""
    filled = int(round(p.fraction * width))
    eta = "ETA -" if p.eta_s is None else ("done" if p.fraction >= 1 else f"ETA {duration(p.eta_s)}")
    return (f"[{'#' * filled}{'-' * (width - filled)}] {100 * p.fraction:3.0f}% | trials {p.trials_done}/"
            f"{p.trials_planned} | steps {p.steps_done}/{p.steps_planned} | {eta}")
