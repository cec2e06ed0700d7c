"""Two runs of one application side by side: per budget, each run's best depth, its test metric and B - A.

When both runs scored the same test split (same app, data seed and split sizes, identical labels), the
difference is a paired bootstrap (same resamples for both runs); otherwise the two runs' bootstrap
distributions are treated as independent (B's values are randomly re-paired with A's). Budgets form one
Holm-corrected family; B vs A is better / worse / equivalent (within the metric's margin) / inconclusive.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tunedepth.analysis.answers import Analysis
from tunedepth.analysis.guideline import pct
from tunedepth.analysis.render import fmt_ci, text_table
from tunedepth.analysis.resampling import p_value, percentile_ci
from tunedepth.analysis.verdicts import MISSING, VERDICTS, holm, verdict
from tunedepth.errors import ConfigError

SPLIT_KEYS = ("app", "data_seed", "n_train", "n_val", "n_test")


@dataclass
class Comparison:
    a: Analysis
    b: Analysis
    paired: bool
    table: pd.DataFrame
    lines: list[str]


def same_test_split(a: Analysis, b: Analysis) -> bool:
    if any(a.config.get(k) != b.config.get(k) for k in SPLIT_KEYS):
        return False
    return a.test_labels is not None and b.test_labels is not None and np.array_equal(a.test_labels, b.test_labels)


def _best(analysis: Analysis, budget: float):
    s = analysis.summary
    rows = s[(s["budget"] == budget) & s["is_best"]]
    return None if rows.empty else rows.iloc[0]


def compare_runs(a: Analysis, b: Analysis, seed: int = 0) -> Comparison:
    if a.config.get("app") != b.config.get("app"):
        raise ConfigError(f"runs {a.name!r} and {b.name!r} are different applications "
                          f"({a.config.get('app')} vs {b.config.get('app')}); compare runs of one application")
    paired = same_test_split(a, b) and a.n_boot == b.n_boot and a.seed == b.seed
    rng = np.random.default_rng(seed)
    rows, rows_boot = [], {}
    for budget in sorted(set(a.summary["budget"]) | set(b.summary["budget"])):
        ra, rb = _best(a, budget), _best(b, budget)
        row = {"budget": float(budget)}
        for tag, r in (("a", ra), ("b", rb)):
            row[f"{tag}_best_depth"] = None if r is None else r["depth"]
            for col in ("test_metric", "test_metric_low", "test_metric_high"):
                row[f"{tag}_{col}"] = np.nan if r is None else float(r[col])
        row.update(delta=np.nan, delta_low=np.nan, delta_high=np.nan, p=np.nan)
        if ra is not None and rb is not None:
            ba, bb = a.boot.get((float(budget), ra["depth"])), b.boot.get((float(budget), rb["depth"]))
            if ba is not None and bb is not None:
                if not paired:
                    bb = rng.permutation(bb)
                    n = min(ba.size, bb.size)
                    ba, bb = ba[:n], bb[:n]
                rows_boot[len(rows)] = bb - ba
                row["delta"] = float(rb["test_metric"] - ra["test_metric"])
                row["p"] = p_value(bb - ba)
        rows.append(row)
    table = _with_verdicts(pd.DataFrame(rows), rows_boot, a)
    return Comparison(a, b, paired, table, _conclusions(table))


def _with_verdicts(table: pd.DataFrame, boots: dict, a: Analysis) -> pd.DataFrame:
    """Holm across the budgets compared; simultaneous intervals; verdict of B vs A in the four words."""
    alpha = 1 - a.level
    table["p_holm"] = holm(table["p"].to_numpy())
    k = max(1, int(np.isfinite(table["p"]).sum()))
    table["verdict"] = MISSING
    for i, d in boots.items():
        low, high = percentile_ci(d, 1 - alpha / k)
        table.loc[i, ["delta_low", "delta_high"]] = [low, high]
        table.loc[i, "verdict"] = verdict(table.at[i, "delta"], low, high, table.at[i, "p_holm"], a.mode,
                                          a.margin, alpha)
    return table


def _conclusions(table: pd.DataFrame) -> list[str]:
    have = table[np.isfinite(table["delta"])]
    if have.empty:
        return ["no budget has test results in both runs"]
    lines = []
    for word in VERDICTS:
        part = have[have["verdict"] == word]
        if len(part):
            lines.append(f"B is {word} {'than' if word in ('better', 'worse') else 'vs'} A at budget(s) "
                         f"{', '.join(pct(b) for b in part['budget'])}")
    agree = have[have["a_best_depth"] == have["b_best_depth"]]
    lines.append(f"the best depth agrees at {len(agree)} of {len(have)} budget(s)")
    return lines


def format_comparison(c: Comparison) -> str:
    m, lvl = c.a.metric, f"{100 * c.a.level:g}%"
    head = []
    for tag, x in (("A", c.a), ("B", c.b)):
        cfg = x.config
        head.append(f"{tag}: {x.name} ({x.run_dir}) - {cfg.get('app')}, {cfg.get('backbone')}, source "
                    f"{cfg.get('source')}, {cfg.get('n_test', '?')} test samples")
    head.append("difference B - A: " + ("paired bootstrap (same test split)" if c.paired else
                                        "independent bootstraps (different test splits)"))
    header = ["budget", "A best depth", f"A test {m} [{lvl} CI]", "B best depth", f"B test {m} [{lvl} CI]",
              "B - A [simultaneous CI]", "verdict (Holm)"]
    rows = []
    for r in c.table.itertuples(index=False):
        rows.append([pct(r.budget), r.a_best_depth or "-",
                     fmt_ci(r.a_test_metric, r.a_test_metric_low, r.a_test_metric_high), r.b_best_depth or "-",
                     fmt_ci(r.b_test_metric, r.b_test_metric_low, r.b_test_metric_high),
                     fmt_ci(r.delta, r.delta_low, r.delta_high, signed=True), r.verdict])
    return "\n".join(head) + "\n\n" + text_table(header, rows) + "\n\n" + "\n".join(f"  - {s}" for s in c.lines)
