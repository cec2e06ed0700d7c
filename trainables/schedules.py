"""Learning-rate schedules as pure functions of the optimisation step (like nanoGPT's ``get_lr``).

``lr_factor(schedule, step, steps_per_epoch, total_steps)`` returns the multiplier applied to every
parameter group's base lr; ``torch.optim.lr_scheduler.LambdaLR`` wires it into an optimizer.
"""
from __future__ import annotations

import math
from typing import Callable

from trainables.config import ConfigError

PAPER_GAMMA = 0.95  # Tajbakhsh et al.: lr x 0.95 after every epoch


def _paper(step: int, steps_per_epoch: int, total_steps: int) -> float:
    return PAPER_GAMMA ** (step // steps_per_epoch)


def _constant(step: int, steps_per_epoch: int, total_steps: int) -> float:
    return 1.0


def _cosine(step: int, steps_per_epoch: int, total_steps: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


SCHEDULES: dict[str, Callable[[int, int, int], float]] = {
    "paper": _paper,
    "constant": _constant,
    "cosine": _cosine,
}


def lr_factor(schedule: str, step: int, steps_per_epoch: int, total_steps: int) -> float:
    try:
        fn = SCHEDULES[schedule]
    except KeyError:
        raise ConfigError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}") from None
    return fn(step, max(steps_per_epoch, 1), total_steps)


def check_schedule(schedule: str) -> None:
    lr_factor(schedule, 0, 1, 1)
