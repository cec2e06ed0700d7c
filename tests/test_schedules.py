"""Every schedule, a pure function of the step, equals torch's scheduler for it, step by step."""
import math

import pytest
import torch
from torch.optim import lr_scheduler as S

from tunedepth.errors import ConfigError
from tunedepth.schedules import SCHEDULES, WARMUP_START, check_schedule, lr_factor

BASE = 0.1


def _torch_lrs(make, total: int, per_epoch: int | None = None) -> list[float]:
    """lr before each of ``total`` steps under torch's scheduler ``make(opt)``, stepped per batch or per epoch."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    sched = make(opt)
    lrs = []
    for step in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if per_epoch is None or (step + 1) % per_epoch == 0:
            sched.step()
    return lrs


def _ours(name: str, total: int, spe: int, warmup: int = 0) -> list[float]:
    return [BASE * lr_factor(name, s, spe, total, warmup) for s in range(total)]


@pytest.mark.parametrize("spe,epochs", [(7, 8), (3, 10), (1, 4), (5, 1)])
def test_schedules_match_torch(spe, epochs):
    total = spe * epochs
    step_every = max(1, math.ceil(epochs / 3))
    warmup = min(spe, total - 1)
    expected = {
        "constant": _torch_lrs(lambda o: S.ConstantLR(o, factor=1.0, total_iters=0), total),
        "paper": _torch_lrs(lambda o: S.ExponentialLR(o, gamma=0.95), total, per_epoch=spe),
        "step": _torch_lrs(lambda o: S.StepLR(o, step_size=step_every, gamma=0.1), total, per_epoch=spe),
        "cosine": _torch_lrs(lambda o: S.CosineAnnealingLR(o, T_max=total), total),
        "one-cycle": _torch_lrs(lambda o: S.OneCycleLR(o, max_lr=BASE, total_steps=total, cycle_momentum=False),
                                total) if total >= 4 else None,
        "warmup-cosine": _torch_lrs(lambda o: S.SequentialLR(o, [
            S.LinearLR(o, start_factor=WARMUP_START, end_factor=1.0, total_iters=warmup),
            S.CosineAnnealingLR(o, T_max=total - warmup)], milestones=[warmup]), total) if warmup > 0 else None,
    }
    assert set(expected) == set(SCHEDULES)
    for name, lrs in expected.items():
        if lrs is None:
            continue
        assert _ours(name, total, spe, warmup) == pytest.approx(lrs, rel=1e-9, abs=1e-12), name


def test_paper_schedule_is_095_per_epoch_and_warmup_starts_low():
    assert lr_factor("paper", 0, 10, 80) == 1.0
    assert lr_factor("paper", 9, 10, 80) == 1.0
    assert lr_factor("paper", 10, 10, 80) == pytest.approx(0.95)
    assert lr_factor("paper", 35, 10, 80) == pytest.approx(0.95 ** 3)
    assert lr_factor("warmup-cosine", 0, 10, 80, 10) == pytest.approx(WARMUP_START)
    assert lr_factor("warmup-cosine", 10, 10, 80, 10) == pytest.approx(1.0)
    assert lr_factor("cosine", 80, 10, 80) == pytest.approx(0.0, abs=1e-12)


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ConfigError, match="unknown schedule 'linear'; choose one of: paper, constant, step"):
        check_schedule("linear")
