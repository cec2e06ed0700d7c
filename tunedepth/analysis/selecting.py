"""Selection by validation only: the one rule every part of tunedepth uses.

1. A trial's score is its best validation metric over its epochs (early stopping on validation).
2. Per budget x depth (a *cell*), trials are grouped by learning rate; a learning rate's seeds are judged
   together: its score is the mean of its seeds' scores, and the candidates run on the most seeds compete
   (replicates on demand give only the race's leader its further seeds). Only *complete* trials compete when the cell
   has
   any: trials that ended on their own (their full length, or validation patience) and did not error (a
   trial the scheduler stopped early, or one that crashed, cannot win against complete ones of another
   learning rate). A diverged seed (NaN/inf loss) scores the worst value, so its learning rate loses. The best
   learning rate wins (ties: the smaller learning rate); its seed trials are the cell's
   *replicates* (never a max over seeds).
   A replicate that ran to the cap without a plateau is *capped* (status ``ok``): its cell's score is a lower
   bound (``capped`` counts them, ``converged`` says every replicate stopped on a plateau).
3. Per budget, the best depth is the cell with the best score, the shallower depth on ties
   (``best_by_validation``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tunedepth.metrics.mode import Mode


def best_by_validation(frame: pd.DataFrame, mode, score: str = "val_metric") -> pd.DataFrame:
    """``frame`` ordered best first by ``score``, the shallower ``depth_index`` on ties (NaN scores last).

    The single definition of "best by validation": ``.iloc[0]`` / ``.index[0]`` is the choice."""
    m = Mode.of(mode)
    return frame.sort_values([score, "depth_index"], ascending=[m.ascending, True], na_position="last")


def best_per_trial(trials: pd.DataFrame, mode) -> pd.DataFrame:
    """One row per trial at its best validation epoch (earliest on ties), with ``epochs_run``. A diverged
    trial scores the worst possible value (its learning rate lost), whatever it reached before."""
    m = Mode.of(mode)
    if "status" in trials and (trials["status"] == "diverged").any():
        trials = trials.copy()
        trials.loc[trials["status"] == "diverged", "val_metric"] = -m.sign * np.inf
    v = trials["val_metric"].to_numpy(dtype=float)
    keep = np.isfinite(v) | (trials["status"] == "diverged").to_numpy() if "status" in trials else np.isfinite(v)
    trials = trials[keep]
    ordered = trials.sort_values(["trial_id", "val_metric", "epoch"], ascending=[True, m.ascending, True])
    best = ordered.groupby("trial_id", sort=False).head(1).copy()
    best["epochs_run"] = trials.groupby("trial_id")["epoch"].max().reindex(best["trial_id"]).to_numpy()
    return best.reset_index(drop=True)


def select_replicates(trials: pd.DataFrame, mode) -> pd.DataFrame:
    """Per cell, one row per replicate trial of the selected learning rate (its row at its best epoch).

    Adds ``cell_val`` (the learning rate's mean score), ``complete`` (the replicates ran the cell's full length
    without error), ``trials`` and ``epochs_spent`` (all trials of the cell)."""
    m = Mode.of(mode)
    t = best_per_trial(trials, m)
    if t.empty:
        return t.assign(cell_val=[], complete=[], trials=[], epochs_spent=[])
    cell = ["budget", "depth"]
    status = t["status"] if "status" in t else pd.Series("ok", index=t.index)
    full = t["epochs_run"] == t.groupby(cell)["epochs_run"].transform("max")
    t["complete"] = (status == "early-stopped") | ((status == "ok") & full)  # ended on its own, not pruned
    any_complete = t.groupby(cell)["complete"].transform("any")
    # complete trials compete, when the cell has any; a diverged seed stays in, so its learning rate loses
    pool = t[t["complete"] | ~any_complete | (status == "diverged")].copy()
    if "schedule" not in pool:  # trials from before schedules were searched: one schedule
        pool["schedule"] = "paper"
    pool["schedule"] = pool["schedule"].fillna("paper").astype(str)
    cand = ["lr", "schedule"]  # a cell's candidates: (lr, schedule), its seeds judged together
    per_lr = pool.groupby(cell + cand, as_index=False).agg(cell_val=("val_metric", "mean"), n=("trial_id", "size"))
    per_lr = per_lr.sort_values(cell + ["n", "cell_val", "lr", "schedule"],
                                ascending=[True, True, False, m.ascending, True, True])
    chosen = per_lr.groupby(cell, sort=False).head(1)[cell + cand + ["cell_val"]]
    out = pool.merge(chosen, on=cell + cand, how="inner")
    sizes = trials.groupby(cell).agg(trials=("trial_id", "nunique"), epochs_spent=("trial_id", "size")).reset_index()
    out = out.merge(sizes, on=cell, how="left")
    return out.sort_values(["budget", "depth_index", "seed", "trial_id"], ignore_index=True)


def select_cells(trials: pd.DataFrame, mode) -> pd.DataFrame:
    """One row per cell: the selected learning rate, its replicates (``seeds``, ``trial_ids``), ``val_metric``
    (mean over the replicates) and the representative trial (the replicate with the best score)."""
    m = Mode.of(mode)
    reps = select_replicates(trials, m)
    if reps.empty:
        return reps.assign(n_seeds=[], seeds=[], trial_ids=[])
    cell = ["budget", "depth"]
    by_seed = reps.sort_values(cell + ["seed", "trial_id"])
    status = by_seed["status"] if "status" in by_seed else pd.Series("ok", index=by_seed.index)
    by_seed = by_seed.assign(_capped=(status == "ok").to_numpy(), _plateau=(status == "early-stopped").to_numpy())
    lists = by_seed.groupby(cell, sort=False).agg(
        n_seeds=("trial_id", "size"), seeds=("seed", lambda v: ",".join(str(int(x)) for x in v)),
        trial_ids=("trial_id", lambda v: ",".join(map(str, v))), capped=("_capped", "sum"),
        converged=("_plateau", "all")).reset_index()
    top = reps.sort_values(cell + ["val_metric", "trial_id"], ascending=[True, True, m.ascending, True])
    top = top.groupby(cell, sort=False).head(1)
    out = top.merge(lists, on=cell).assign(val_metric=lambda d: d["cell_val"].astype(float))
    return out.sort_values(["budget", "depth_index"], ignore_index=True)


def best_depths(cells: pd.DataFrame, mode) -> pd.DataFrame:
    """Per budget, the best cell by validation (``select_cells``' rows, or any frame with budget, depth,
    depth_index and val_metric)."""
    if cells.empty:
        return cells
    firsts = [best_by_validation(g, mode).iloc[:1] for _, g in cells.groupby("budget", sort=True)]
    return pd.concat(firsts, ignore_index=True)


VALIDATION_COLUMNS = ("budget", "n_train", "best_depth", "best_val", "best_lr", "scratch_val", "trials", "epochs")


def validation_table(trials: pd.DataFrame, mode) -> pd.DataFrame:
    """Per budget: the leader by validation, its metric, scratch's metric, trials and epochs spent. Not the answer
    (that is scored on test: ``tunedepth.analysis.answers``): what a run shows before or without test scoring."""
    if trials.empty:
        return pd.DataFrame(columns=list(VALIDATION_COLUMNS))
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
    return pd.DataFrame(rows, columns=list(VALIDATION_COLUMNS))


def format_table(table: pd.DataFrame, metric_name: str) -> str:
    header = (f"{'budget':>7} {'n_train':>7}  {'best depth':<12} {'val ' + metric_name:>9} {'scratch':>8} "
              f"{'trials':>6} {'epochs':>6}")
    lines = [header, "-" * len(header)]
    for r in table.itertuples():
        lines.append(f"{r.budget:>7g} {r.n_train:>7d}  {r.best_depth:<12} {r.best_val:>9.3f} {r.scratch_val:>8.3f} "
                     f"{r.trials:>6d} {r.epochs:>6d}")
    return "\n".join(lines)
