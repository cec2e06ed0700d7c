"""Verdicts of a depth against the best depth of its budget, with error control and an equivalence margin.

Within a budget the k = (depths with test results) - 1 comparisons with the best depth (chosen by
validation) form one family. Each difference (depth - best) has a paired-bootstrap p-value; Holm's step-down
correction keeps the chance of any false "better"/"worse" in the family at most ``alpha``. Its interval is
the simultaneous (Bonferroni) percentile interval at level 1 - alpha/k. Four outcomes:

- ``better`` / ``worse``: Holm-adjusted p < alpha, in that direction (better is only ever a warning: the
  recommendation stays the validation choice);
- ``equivalent``: not different, and the whole corrected interval lies inside +-margin;
- ``inconclusive``: neither.

The trend test (``trend_test``) is a permutation test of the best depth's index against the budget order.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from tunedepth.analysis.resampling import p_value, percentile_ci
from tunedepth.metrics.mode import Mode

VERDICTS = ("better", "worse", "equivalent", "inconclusive")
BEST, MISSING = "best", "n/a"
LOWER_BOUND = "lower bound"  # "worse" on a capped cell: its score would only rise with more training
DEFAULT_ALPHA = 0.05
# equivalence margin per metric, in the metric's units (override: --margin)
EQUIVALENCE_MARGINS = {"auc": 0.01, "froc_pauc": 0.01, "mae_um": 5.0}


def default_margin(metric: str) -> float:
    return float(EQUIVALENCE_MARGINS.get(metric, 0.0))


@dataclass(frozen=True)
class Comparison:
    delta: float  # point metric(depth) - metric(best)
    low: float  # simultaneous interval of the difference
    high: float
    p: float  # raw two-sided bootstrap p-value
    p_holm: float  # Holm-adjusted
    verdict: str  # one of VERDICTS


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN stays NaN and does not count in the family)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def verdict(delta: float, low: float, high: float, p_adj: float, mode, margin: float, alpha: float) -> str:
    if not np.isfinite(p_adj):
        return MISSING
    if p_adj < alpha:
        return "better" if Mode.of(mode).gain(delta) > 0 else "worse"
    if np.isfinite(low) and np.isfinite(high) and -margin <= low and high <= margin:
        return "equivalent"
    return "inconclusive"


def compare_with_best(points: dict, boots: dict, best, mode, margin: float,
                      alpha: float = DEFAULT_ALPHA) -> dict:
    """{key: Comparison} for every key of ``boots`` but ``best`` (the family of one budget)."""
    others = [k for k in boots if k != best]
    if best not in boots or not others:
        return {}
    deltas = {k: np.asarray(boots[k]) - np.asarray(boots[best]) for k in others}
    raw = np.array([p_value(deltas[k]) for k in others])
    adjusted = holm(raw)
    k_family = max(1, int(np.isfinite(raw).sum()))
    level = 1 - alpha / k_family
    out = {}
    for k, p, p_adj in zip(others, raw, adjusted):
        low, high = percentile_ci(deltas[k], level)
        d = float(points[k] - points[best])
        out[k] = Comparison(d, low, high, float(p), float(p_adj), verdict(d, low, high, p_adj, mode, margin, alpha))
    return out


def _pearson_rows(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    xc = x - x.mean()
    yc = ys - ys.mean(axis=-1, keepdims=True)
    den = np.sqrt((xc ** 2).sum() * (yc ** 2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (yc * xc).sum(axis=-1) / den, 0.0)


def spearman(x, y) -> float:
    """Spearman's rho (average ranks: tied depths share a rank)."""
    return float(_pearson_rows(rankdata(x), rankdata(y)[None, :])[0])


def trend_test(depth_index, n_perm: int = 10000, seed: int = 0) -> tuple[float, float]:
    """(Spearman rho of best depth index vs budget order, two-sided permutation p-value).

    Exact over all orderings for up to 8 budgets, else ``n_perm`` random permutations (vectorised)."""
    y = np.asarray(depth_index, dtype=np.float64)
    if y.size < 3 or np.unique(y).size < 2:
        return 0.0, 1.0
    x, ry = np.arange(y.size, dtype=np.float64), rankdata(y)
    rho = float(_pearson_rows(x, ry[None, :])[0])
    if y.size <= 8:
        perms = np.array(list(itertools.permutations(range(y.size))))
    else:
        perms = np.random.default_rng(seed).permuted(np.tile(np.arange(y.size), (n_perm, 1)), axis=1)
    stats = _pearson_rows(x, ry[perms])
    return rho, float(np.mean(np.abs(stats) >= abs(rho) - 1e-12))
