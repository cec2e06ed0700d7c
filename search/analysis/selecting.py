"""Selection by validation only: the one rule every part of tunedepth uses.

1. A trial's score is its best validation metric over its epochs (early stopping on validation).
2. Per budget x depth (a *cell*), trials are grouped by learning rate; a learning rate's seeds are judged
   together: its score is the mean of its seeds' scores. Only *complete* trials compete when the cell has
   any: trials that reached the cell's longest run and did not error (a trial the scheduler stopped early,
   or one that diverged or crashed, cannot win against complete ones of another learning rate). The best
   learning rate wins (ties: more seeds, then the smaller learning rate); its seed trials are the cell's
   *replicates* (never a max over seeds).
3. Per budget, the best depth is the cell with the best score, the shallower depth on ties
   (``best_by_validation``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from search.analysis.mode import Mode


def best_by_validation(frame: pd.DataFrame, mode, score: str = "val_metric") -> pd.DataFrame:
    """``frame`` ordered best first by ``score``, the shallower ``depth_index`` on ties (NaN scores last).

    The single definition of "best by validation": ``.iloc[0]`` / ``.index[0]`` is the choice."""
    m = Mode.of(mode)
    return frame.sort_values([score, "depth_index"], ascending=[m.ascending, True], na_position="last")


def best_per_trial(trials: pd.DataFrame, mode) -> pd.DataFrame:
    """One row per trial at its best validation epoch (earliest on ties), with ``epochs_run``."""
    m = Mode.of(mode)
    trials = trials[np.isfinite(trials["val_metric"].to_numpy(dtype=float))]
    ordered = trials.sort_values(["trial_id", "val_metric", "epoch"], ascending=[True, m.ascending, True])
    best = ordered.groupby("trial_id", sort=False).head(1).copy()
    best["epochs_run"] = trials.groupby("trial_id")["epoch"].max().reindex(best["trial_id"]).to_numpy()
    return best.reset_index(drop=True)


def _complete(cell: pd.DataFrame) -> pd.Series:
    ok = cell["status"] != "error" if "status" in cell else pd.Series(True, index=cell.index)
    return ok & (cell["epochs_run"] == cell["epochs_run"].max())


def _pick_lr(cell: pd.DataFrame, mode: Mode) -> pd.DataFrame:
    """The replicate trials of the cell's selected learning rate (see the module docstring)."""
    complete = _complete(cell)
    pool = cell[complete] if complete.any() else cell
    per_lr = pool.groupby("lr").agg(score=("val_metric", "mean"), n=("trial_id", "size")).reset_index()
    per_lr = per_lr.sort_values(["score", "n", "lr"], ascending=[mode.ascending, False, True])
    chosen = pool[pool["lr"] == per_lr["lr"].iloc[0]]
    return chosen.assign(complete=bool(complete.any()) and bool(complete[chosen.index].all()))


def select_replicates(trials: pd.DataFrame, mode) -> pd.DataFrame:
    """Per cell, one row per replicate trial of the selected learning rate (its row at its best epoch).

    Adds ``cell_val`` (the learning rate's mean score), ``complete``, ``trials`` and ``epochs_spent``
    (all trials of the cell)."""
    m = Mode.of(mode)
    per_trial = best_per_trial(trials, m)
    if per_trial.empty:
        return per_trial.assign(cell_val=[], complete=[], trials=[], epochs_spent=[])
    parts = []
    for (budget, depth), cell in per_trial.groupby(["budget", "depth"], sort=False):
        chosen = _pick_lr(cell, m)
        all_rows = trials[(trials["budget"] == budget) & (trials["depth"] == depth)]
        parts.append(chosen.assign(cell_val=float(chosen["val_metric"].mean()), trials=int(cell["trial_id"].nunique()),
                                   epochs_spent=int(len(all_rows))))
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["budget", "depth_index", "seed", "trial_id"], ignore_index=True)


def select_cells(trials: pd.DataFrame, mode) -> pd.DataFrame:
    """One row per cell: the selected learning rate, its replicates (``seeds``, ``trial_ids``), ``val_metric``
    (mean over the replicates) and the representative trial (the replicate with the best score)."""
    m = Mode.of(mode)
    reps = select_replicates(trials, m)
    rows = []
    for _, g in reps.groupby(["budget", "depth_index", "depth"], sort=True):
        top = g.sort_values(["val_metric", "trial_id"], ascending=[m.ascending, True]).iloc[0]
        row = top.to_dict()
        row.update(val_metric=float(g["cell_val"].iloc[0]), n_seeds=int(len(g)),
                   seeds=",".join(str(int(s)) for s in sorted(g["seed"])),
                   trial_ids=",".join(g.sort_values("seed")["trial_id"].astype(str)))
        rows.append(row)
    return pd.DataFrame(rows)


def best_depths(cells: pd.DataFrame, mode) -> pd.DataFrame:
    """Per budget, the best cell by validation (``select_cells``' rows, or any frame with budget, depth,
    depth_index and val_metric)."""
    if cells.empty:
        return cells
    firsts = [best_by_validation(g, mode).iloc[:1] for _, g in cells.groupby("budget", sort=True)]
    return pd.concat(firsts, ignore_index=True)


def best_depth_table(trials: pd.DataFrame, mode) -> pd.DataFrame:
    """Per budget: the best depth by validation, its metric, scratch's metric, trials and epochs spent."""
    cells = select_cells(trials, mode)
    rows = []
    for top in best_depths(cells, mode).itertuples(index=False):
        group = cells[cells["budget"] == top.budget]
        scratch = group[group["depth"] == "scratch"]
        rows.append({
            "budget": float(top.budget), "n_train": int(top.n_train), "best_depth": top.depth,
            "best_val": float(top.val_metric), "best_lr": float(top.lr),
            "scratch_val": float(scratch["val_metric"].iloc[0]) if len(scratch) else float("nan"),
            "trials": int(trials[trials["budget"] == top.budget]["trial_id"].nunique()),
            "epochs": int((trials["budget"] == top.budget).sum()),
        })
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame, metric_name: str) -> str:
    header = (f"{'budget':>7} {'n_train':>7}  {'best depth':<12} {'val ' + metric_name:>9} {'scratch':>8} "
              f"{'trials':>6} {'epochs':>6}")
    lines = [header, "-" * len(header)]
    for r in table.itertuples():
        lines.append(f"{r.budget:>7g} {r.n_train:>7d}  {r.best_depth:<12} {r.best_val:>9.3f} {r.scratch_val:>8.3f} "
                     f"{r.trials:>6d} {r.epochs:>6d}")
    return "\n".join(lines)
