"""The study's space: tuning depth x data budget (x seed) on a grid, learning rate sampled.

Every grid cell is tried once per ``num_samples`` (Tune repeats the grid for each sample), each time
with a new learning rate drawn log-uniformly; the result is a plain dict of ``tune.*`` objects.
"""
from __future__ import annotations

from typing import Any, Sequence

from ray import tune

DEFAULT_BUDGETS = (0.05, 0.1, 0.25, 0.5, 1.0)
DEFAULT_LR_RANGE = (1e-4, 3e-3)


def depth_budget_space(
    *,
    depths: Sequence[str],
    budgets: Sequence[float] = DEFAULT_BUDGETS,
    lr_range: tuple[float, float] = DEFAULT_LR_RANGE,
    seeds: Sequence[int] = (0,),
    **fixed: Any,
) -> dict[str, Any]:
    """``fixed`` holds the remaining ``TrialConfig`` keys (app, backbone, source, schedule, epochs, ...).

    Trials start budget by budget, largest first, each budget's depths in the given order (head only
    first, as the paper's guideline). Tune varies the last grid key fastest, so ``budget`` comes first: the
    long trials start early and the last ones to start are the shortest, which leaves no worker idle
    behind a long trial at the end. ASHA compares trials within a budget only, and within a budget the
    order is unchanged.
    """
    lr = tune.loguniform(*lr_range) if lr_range[0] < lr_range[1] else lr_range[0]
    return {
        **fixed,
        "budget": tune.grid_search(sorted((float(b) for b in budgets), reverse=True)),
        "depth": tune.grid_search(list(depths)),
        "seed": tune.grid_search([int(s) for s in seeds]) if len(seeds) > 1 else int(seeds[0]),
        "lr": lr,
    }
