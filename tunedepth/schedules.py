"""Learning-rate schedules as pure functions of the optimisation step (like nanoGPT's ``get_lr``).

``lr_factor(schedule, step, steps_per_epoch, total_steps, warmup_steps)`` returns the multiplier applied to
every parameter group's base lr; ``torch.optim.lr_scheduler.LambdaLR`` wires it into an optimizer (stepped
after every batch). Each schedule equals one of torch's schedulers (tests/test_schedules.py checks it):

=================  ==========================================================  ==================================
name               factor                                                      torch equivalent
=================  ==========================================================  ==================================
``constant``       1                                                           ``ConstantLR(factor=1)``
``paper``          0.95 ** epoch-equivalent (Tajbakhsh et al., Eq. 2)            ``ExponentialLR(0.95)`` per epoch
``step``           0.1 ** (epoch // ceil(epochs / 3)): two or three drops      ``StepLR(step_size, 0.1)``
``cosine``         cosine from 1 to 0 over all steps                           ``CosineAnnealingLR(T_max=total)``
``warmup-cosine``  linear 0.01 -> 1 over ``warmup_steps``, then cosine to 0    ``SequentialLR(LinearLR, Cosine..)``
``one-cycle``      cosine 1/25 -> 1 over 30% of the steps, then -> 1/25e4      ``OneCycleLR`` (lr only)
=================  ==========================================================  ==================================
"""
from __future__ import annotations

import math
from typing import Callable

from tunedepth.errors import ConfigError

PAPER_GAMMA = 0.95  # Tajbakhsh et al.: lr x 0.95 after every epoch
STEP_GAMMA = 0.1
STEP_DROPS = 3  # "step" drops the lr every ceil(epochs / STEP_DROPS) epochs
WARMUP_START = 0.01  # warmup-cosine starts at 1% of the lr
ONE_CYCLE_PCT, ONE_CYCLE_DIV, ONE_CYCLE_FINAL_DIV = 0.3, 25.0, 1e4  # torch's OneCycleLR defaults

Schedule = Callable[[int, int, int, int], float]  # (step, steps_per_epoch, total_steps, warmup_steps) -> factor


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * min(max(pct, 0.0), 1.0)) + 1.0)


def _constant(step: int, steps_per_epoch: int, total_steps: int, warmup_steps: int) -> float:
    return 1.0


def _paper(step: int, steps_per_epoch: int, total_steps: int, warmup_steps: int) -> float:
    return PAPER_GAMMA ** (step // steps_per_epoch)


def _step(step: int, steps_per_epoch: int, total_steps: int, warmup_steps: int) -> float:
    epochs = max(1, total_steps // steps_per_epoch)
    every = max(1, math.ceil(epochs / STEP_DROPS)) * steps_per_epoch
    return STEP_GAMMA ** (step // every)


def _cosine(step: int, steps_per_epoch: int, total_steps: int, warmup_steps: int) -> float:
    return _cos_anneal(1.0, 0.0, step / max(total_steps, 1))


def _warmup_cosine(step: int, steps_per_epoch: int, total_steps: int, warmup_steps: int) -> float:
    w = min(warmup_steps, total_steps - 1)
    if step < w:
        return WARMUP_START + (1.0 - WARMUP_START) * step / w
    return _cos_anneal(1.0, 0.0, (step - w) / max(total_steps - w, 1))


def _one_cycle(step: int, steps_per_epoch: int, total_steps: int, warmup_steps: int) -> float:
    initial = 1.0 / ONE_CYCLE_DIV
    up_end = ONE_CYCLE_PCT * total_steps - 1  # torch's phase boundaries (steps are 0-based)
    if step <= up_end:
        return _cos_anneal(initial, 1.0, step / up_end) if up_end > 0 else initial
    return _cos_anneal(1.0, initial / ONE_CYCLE_FINAL_DIV, (step - up_end) / max(total_steps - 1 - up_end, 1e-9))


SCHEDULES: dict[str, Schedule] = {
    "paper": _paper,
    "constant": _constant,
    "step": _step,
    "cosine": _cosine,
    "warmup-cosine": _warmup_cosine,
    "one-cycle": _one_cycle,
}


def lr_factor(schedule: str, step: int, steps_per_epoch: int, total_steps: int, warmup_steps: int = 0) -> float:
    """The lr multiplier after ``step`` optimizer steps (0-based); ``warmup_steps`` is used by warmup-cosine."""
    try:
        fn = SCHEDULES[schedule]
    except KeyError:
        raise ConfigError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}") from None
    return fn(step, max(steps_per_epoch, 1), max(total_steps, 1), max(warmup_steps, 0))


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warmup from ``WARMUP_START`` to 1 over ``warmup_steps`` (1 from then on; 1 throughout if 0)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return WARMUP_START + (1.0 - WARMUP_START) * step / warmup_steps


def trial_lr_factor(schedule: str, step: int, steps_per_epoch: int, total_steps: int, schedule_warmup: int = 0,
                    ramp_steps: int = 0) -> float:
    """A trial's lr multiplier: ``lr_factor`` times a linear ramp over its first ``ramp_steps`` (the warmup a
    network trained from scratch gets before any schedule; 0 = none)."""
    return warmup_factor(step, ramp_steps) * lr_factor(schedule, step, steps_per_epoch, total_steps, schedule_warmup)


def check_schedule(schedule: str) -> None:
    lr_factor(schedule, 0, 1, 1)
