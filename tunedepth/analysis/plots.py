"""The report's figures (PNG), drawn with matplotlib's object API on the Agg canvas (no pyplot, no display).

- ``metric_vs_depth.png``: test metric vs tuning depth, one line per budget, 95% intervals (the paper's
  Figs. 2/4/6/9 for one application); the best depth is a star, depths not worse than it filled, worse ones hollow.
- ``metric_vs_budget.png``: test metric vs data budget for scratch, head-only and the best depth.
- ``learning_curves.png``: validation metric vs epoch per depth, one panel per budget.
- ``early_stopping.png``: epochs each trial reached before the scheduler stopped it, budget x depth.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tunedepth.space import SCRATCH

if TYPE_CHECKING:
    from tunedepth.analysis.answers import Analysis

BUDGET_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _save(fig: Figure, path: Path) -> None:
    """Atomic PNG write."""
    FigureCanvasAgg(fig)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def _pct(b: float) -> str:
    return f"{100 * b:g}%"


def _depth_order(summary) -> list[str]:
    order = summary.drop_duplicates("depth").sort_values("depth_index")["depth"].tolist()
    return [d for d in order if d != SCRATCH] + ([SCRATCH] if SCRATCH in order else [])


def _errors(rows) -> np.ndarray:
    v = rows["test_metric"].to_numpy(float)
    lo, hi = rows["test_metric_low"].to_numpy(float), rows["test_metric_high"].to_numpy(float)
    return np.vstack([np.where(np.isfinite(lo), v - lo, 0), np.where(np.isfinite(hi), hi - v, 0)])


def metric_vs_depth(analysis: "Analysis", path: Path) -> None:
    s = analysis.summary[np.isfinite(analysis.summary["test_metric"])]
    order = _depth_order(analysis.summary)
    budgets = sorted(s["budget"].unique())
    fig = Figure(figsize=(max(6.0, 0.75 * len(order) + 2), 4.5))
    ax = fig.subplots()
    width = 0.5 / max(len(budgets), 1)
    for i, b in enumerate(budgets):
        rows = (
            s[s["budget"] == b]
            .set_index("depth")
            .reindex([d for d in order if d in set(s.loc[s.budget == b, "depth"])])
        )
        x = np.array([order.index(d) for d in rows.index]) + (i - (len(budgets) - 1) / 2) * width
        color = BUDGET_COLORS[i % len(BUDGET_COLORS)]
        ft = rows.index != SCRATCH
        ax.plot(x[ft], rows["test_metric"].to_numpy()[ft], color=color, lw=1.2, alpha=0.8)
        ax.errorbar(x, rows["test_metric"], yerr=_errors(rows), fmt="none", ecolor=color, elinewidth=1, capsize=2)
        tied = rows["indistinguishable_from_best"].to_numpy(bool) & ~rows["is_best"].to_numpy(bool)
        best = rows["is_best"].to_numpy(bool)
        rest = ~tied & ~best
        ax.scatter(x[tied], rows["test_metric"].to_numpy()[tied], color=color, s=28, zorder=3)
        ax.scatter(x[rest], rows["test_metric"].to_numpy()[rest], facecolors="white", edgecolors=color, s=28, zorder=3)
        ax.scatter(x[best], rows["test_metric"].to_numpy()[best], color=color, marker="*", s=150, zorder=4,
                   edgecolors="black", linewidths=0.5, label=f"budget {_pct(b)}")
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
    ax.set_xlabel("tuning depth (shallow → deep), then training from scratch")
    ax.set_ylabel(f"test {analysis.metric} ({100 * analysis.level:g}% CI)")
    ax.set_title(f"{analysis.config.get('app')}: test {analysis.metric} vs tuning depth\n"
                 "★ best by validation · ● not worse (equivalent/inconclusive) · ○ worse (Holm-corrected)", fontsize=10)
    ax.grid(alpha=0.3)
    if budgets:
        ax.legend(fontsize=8, loc="best")
    _save(fig, path)


def metric_vs_budget(analysis: "Analysis", path: Path) -> None:
    s = analysis.summary[np.isfinite(analysis.summary["test_metric"])]
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    head = s.loc[s["depth_index"] == 1, "depth"]
    series = [("best depth (by validation)", s[s["is_best"]], "black", "*")]
    if len(head):
        series.append((f"head only ({head.iloc[0]})", s[s["depth"] == head.iloc[0]], "#1f77b4", "o"))
    if (s["depth"] == SCRATCH).any():
        series.append(("scratch", s[s["depth"] == SCRATCH], "#d62728", "s"))
    for k, (label, rows, color, marker) in enumerate(series):
        rows = rows.sort_values("budget")
        x = rows["budget"].to_numpy() * (1 + 0.03 * (k - 1))  # small offsets keep the intervals apart
        ax.errorbar(x, rows["test_metric"], yerr=_errors(rows), color=color, marker=marker, capsize=3,
                    ms=9 if marker == "*" else 5, lw=1.3, label=label)
        if label.startswith("best"):
            for xi, (_, r) in zip(x, rows.iterrows()):
                ax.annotate(r["depth"], (xi, r["test_metric"]), textcoords="offset points", xytext=(4, 6), fontsize=7)
    budgets = sorted(analysis.summary["budget"].unique())
    if len(budgets) > 1 and budgets[-1] / budgets[0] >= 4:
        ax.set_xscale("log")
    ax.set_xticks(budgets, [_pct(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("data budget (fraction of the training split)")
    ax.set_ylabel(f"test {analysis.metric} ({100 * analysis.level:g}% CI)")
    ax.set_title(f"{analysis.config.get('app')}: test {analysis.metric} vs data budget", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def learning_curves(analysis: "Analysis", path: Path) -> None:
    trials, summary = analysis.trials, analysis.summary
    budgets = sorted(trials["budget"].unique())
    order = _depth_order(summary if len(summary) else trials)
    cmap = matplotlib.colormaps["viridis"]
    colors = {d: ("#d62728" if d == SCRATCH else cmap(i / max(len(order) - 2, 1))) for i, d in enumerate(order)}
    selected = set(summary["trial_id"]) if len(summary) else set()
    ncols = min(3, max(len(budgets), 1))
    nrows = math.ceil(len(budgets) / ncols) if budgets else 1
    fig = Figure(figsize=(4.2 * ncols, 3.3 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax, b in zip(axes, budgets):
        t = trials[trials["budget"] == b]
        for tid, g in t.groupby("trial_id"):
            g = g.sort_values("epoch")
            depth = g["depth"].iloc[0]
            chosen = tid in selected
            ax.plot(g["epoch"], g["val_metric"], color=colors.get(depth, "grey"), lw=1.6 if chosen else 0.8,
                    alpha=1.0 if chosen else 0.35, ls="-" if chosen else "--",
                    marker="o" if chosen else None, ms=3, label=depth if chosen else None)
            if chosen:  # the selected (best validation) epoch
                at = summary.loc[summary["trial_id"] == tid, "selected_epoch"].iloc[0]
                sel = g[g["epoch"] == at]
                ax.scatter(sel["epoch"], sel["val_metric"], s=60, facecolors="none",
                           edgecolors=colors.get(depth, "grey"), linewidths=1.5, zorder=4)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"budget {_pct(b)} (n_train {int(t['n_train'].iloc[0])})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {analysis.metric}")
        ax.grid(alpha=0.3)
    for ax in axes[len(budgets):]:
        ax.set_visible(False)
    by_label = {}
    for ax in axes[: len(budgets)]:
        handles, labels = ax.get_legend_handles_labels()
        by_label.update({lab: h for lab, h in zip(labels, handles) if lab not in by_label})
    ordered = [d for d in order if d in by_label]
    if ordered:
        fig.legend([by_label[d] for d in ordered], ordered, loc="lower center", ncol=min(len(ordered), 9),
                   fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("validation curves: selected trial per depth (solid, ○ = selected epoch), other trials dashed",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(fig, path)


def early_stopping(analysis: "Analysis", path: Path) -> None:
    trials = analysis.trials
    reached = trials.groupby(["budget", "depth", "trial_id"])["epoch"].max().reset_index()
    budgets = sorted(reached["budget"].unique())
    order = [d for d in _depth_order(analysis.summary if len(analysis.summary) else trials)
             if d in set(reached["depth"])]
    max_epochs = int(analysis.config.get("epochs") or reached["epoch"].max())
    grid = np.full((len(budgets), len(order)), np.nan)
    fig = Figure(figsize=(max(6.0, 0.8 * len(order) + 2), 0.6 * len(budgets) + 2))
    ax = fig.subplots()
    for i, b in enumerate(budgets):
        for j, d in enumerate(order):
            e = reached[(reached["budget"] == b) & (reached["depth"] == d)]["epoch"].to_numpy()
            if e.size:
                grid[i, j] = e.mean()
                ax.text(j, i, ",".join(str(int(v)) for v in sorted(e)), ha="center", va="center", fontsize=8,
                        color="white" if e.mean() < 0.6 * max_epochs else "black")
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=max_epochs, aspect="auto")
    fig.colorbar(im, ax=ax, label="epochs reached (mean over trials)")
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
    ax.set_yticks(range(len(budgets)), [_pct(b) for b in budgets])
    ax.set_xlabel("tuning depth")
    ax.set_ylabel("data budget")
    ax.set_title(f"epochs reached per trial (max {max_epochs}; fewer = stopped early by the scheduler)", fontsize=10)
    _save(fig, path)


PLOTS = (
    ("Test metric vs tuning depth, per budget", "metric_vs_depth.png", metric_vs_depth),
    ("Test metric vs data budget: scratch, head only, best depth", "metric_vs_budget.png", metric_vs_budget),
    ("Learning curves per depth", "learning_curves.png", learning_curves),
    ("Where the scheduler stopped trials", "early_stopping.png", early_stopping),
)


def write_plots(analysis: "Analysis", out_dir: Path) -> list[tuple[str, str]]:
    """Draw every figure that has data; returns (title, path relative to the run folder) for report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    has_test = bool(len(analysis.summary)) and np.isfinite(analysis.summary["test_metric"]).any()
    for title, name, draw in PLOTS:
        if draw in (metric_vs_depth, metric_vs_budget) and not has_test:
            continue
        if analysis.trials.empty:
            continue
        draw(analysis, out_dir / name)
        written.append((title, str((out_dir / name).relative_to(analysis.run_dir))))
    return written
