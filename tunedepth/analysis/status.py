"""``tunedepth status``: a run's progress, read from the files Tune writes (no Ray needed)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tunedepth.analysis.selecting import best_depths, select_cells
from tunedepth.analysis.trial_states import counts_text, state_of
from tunedepth.config import load_config
from tunedepth.run_files import (
    EPOCHS_FILE,
    RESULTS_DIR,
    experiment_path,
    finished_trials,
    read_config,
    read_json_lines,
    run_dir_of,
)


def _logged(run_dir: Path) -> dict[str, dict[int, dict]]:
    """Trial id -> epoch -> its latest result, from the driver's live ``epochs.jsonl``."""
    out: dict[str, dict[int, dict]] = {}
    for row in read_json_lines(run_dir / EPOCHS_FILE):
        if "trial_id" in row and "epoch" in row:
            out.setdefault(str(row["trial_id"]), {})[int(row["epoch"])] = row
    return out


def _tune_results(exp: Path, trial_id: str) -> dict[int, dict]:
    """Epoch -> result from Tune's result.json of the trial (synced to storage periodically, so it may lag)."""
    files = list(exp.glob(f"*_{trial_id}/result.json"))
    vals = read_json_lines(files[0]) if files else []
    return {int(v.get("epoch", k + 1)): v for k, v in enumerate(vals)}


def _trial_rows(exp: Path, run_dir: Path) -> list[dict]:
    """One dict per trial: config, status and results, from the newest experiment_state-*.json and the
    results reported so far (``epochs.jsonl``, else Tune's result.json)."""
    states = sorted(exp.glob("experiment_state-*.json"))
    if not states:
        return []
    state = json.loads(states[-1].read_text())
    rows = []
    for entry in state.get("trial_data", []):
        meta = json.loads(entry[0]) if isinstance(entry, (list, tuple)) else entry
        config = meta.get("config", {})
        rows.append({"trial_id": meta.get("trial_id"), "status": meta.get("status"), "config": config})
    logged = _logged(run_dir)
    for row in rows:
        tid = str(row["trial_id"])
        by_epoch = {**_tune_results(exp, tid), **logged.get(tid, {})}
        vals = [by_epoch[e] for e in sorted(by_epoch)]
        row["epochs"] = max(by_epoch, default=0)
        row["curve"] = [(e, v["val_metric"]) for e, v in zip(sorted(by_epoch), vals) if v.get("val_metric") is not None]
        row["depth_index"] = next((int(v["depth_index"]) for v in vals if "depth_index" in v), 0)
        row["diverged"] = bool(vals and vals[-1].get("diverged"))  # the trial's last result: NaN/inf loss
    return rows


def _status(row: dict) -> str:
    """A trial's ``trials.parquet`` status word as far as selection needs it (a diverged lr loses)."""
    return "error" if row["status"] == "ERROR" else "diverged" if row.get("diverged") else "ok"


def best_so_far(rows: list[dict], mode: str) -> pd.DataFrame:
    """Per budget, the best depth by validation so far (``tunedepth.analysis.selecting``'s one rule)."""
    frame = pd.DataFrame([{
        "trial_id": str(r["trial_id"]), "budget": float(r["config"].get("budget", 0)),
        "depth": str(r["config"].get("depth")), "depth_index": r["depth_index"], "lr": float(r["config"].get("lr", 0)),
        "seed": int(r["config"].get("seed", 0)), "epoch": epoch, "val_metric": float(v), "n_train": 0,
        "status": _status(r)} for r in rows for epoch, v in r["curve"]])
    return best_depths(select_cells(frame, mode), mode) if len(frame) else frame


def run_status(run: str, results_dir: str = RESULTS_DIR) -> str:
    cfg = load_config(run, results_dir)
    run_dir = run_dir_of(cfg)
    saved = read_config(run_dir)
    mode, metric = saved.get("mode", "max"), saved.get("metric", "val")
    path = experiment_path(cfg, run_dir)
    if "://" in path:
        return f"{cfg.name}: experiment stored at {path}; status reads local folders only"
    rows = _trial_rows(Path(path), run_dir)
    done = finished_trials(run_dir) is not None
    lines = [f"{cfg.name}: {'finished' if done else 'not finished'} ({cfg.searcher} search, {len(rows)} trials "
             f"known, experiment {path})"]
    best = best_so_far(rows, mode)
    for budget in sorted({float(r["config"].get("budget", 0)) for r in rows}):
        group = [r for r in rows if float(r["config"].get("budget", 0)) == budget]
        top = best[best["budget"] == budget] if len(best) else best
        best_txt = (f"best so far {top['depth'].iloc[0]} ({metric} {top['val_metric'].iloc[0]:.3f})" if len(top)
                    else "no result yet")
        states = counts_text(state_of(r["status"], r["epochs"], cfg.epochs, r.get("diverged", False))
                             for r in group)
        lines.append(f"  budget {budget:<5g} {states}, epochs {sum(r['epochs'] for r in group)} | {best_txt}")
    return "\n".join(lines)
