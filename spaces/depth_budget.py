"""The study's space as data: tuning depth x data budget x learning rate x seed, all on a grid.

Every (budget, depth) cell tries the same learning rates (a fixed grid, log-spaced around the protocol's
alpha), each with every seed; seeds are replicates of one setting, judged by their mean (never a max).
The result is a plain dict of ``tune.*`` objects.

Order: Tune's variant generator varies the *first* grid key fastest. The keys are given as seed, lr, depth,
budget, so the trials of one (budget, depth) cell (its lrs x seeds) are proposed one after another, cell by
cell, each budget's depths in the given order, budgets largest first. The default scheduler
(``search.promotion.StratifiedHalving``) judges a cell's rung once all of the cell has reported, so the order
decides only when a cell's decision can be made, not what it is.
"""
from __future__ import annotations

from typing import Any, Sequence

from ray import tune

def _grid(values: Sequence) -> Any:
    return tune.grid_search(list(values)) if len(values) > 1 else values[0]


def depth_budget_space(
    *,
    depths: Sequence[str],
    budgets: Sequence[float],
    lrs: Sequence[float],
    seeds: Sequence[int],
    **fixed: Any,
) -> dict[str, Any]:
    """``fixed`` holds the remaining ``TrialConfig`` keys (app, backbone, source, schedule, epochs, ...). The
    defaults of every argument live in ``search.config.SearchConfig`` (one declaration)."""
    return {
        **fixed,
        "seed": _grid([int(s) for s in seeds]),
        "lr": _grid([float(lr) for lr in lrs]),
        "depth": _grid(list(depths)),
        "budget": _grid(sorted((float(b) for b in budgets), reverse=True)),
    }
