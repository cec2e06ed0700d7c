"""``tunedepth status``: a run's progress, read from the files Tune writes (no Ray needed)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml

from search.runner import experiment_path, load_config, run_dir_of


def _trial_rows(exp: Path) -> list[dict]:
    """One dict per trial: config, status and results, from the newest experiment_state-*.json."""
    states = sorted(exp.glob("experiment_state-*.json"))
    if not states:
        return []
    state = json.loads(states[-1].read_text())
    rows = []
    for entry in state.get("trial_data", []):
        meta = json.loads(entry[0]) if isinstance(entry, (list, tuple)) else entry
        config = meta.get("config", {})
        rows.append({"trial_id": meta.get("trial_id"), "status": meta.get("status"), "config": config})
    for row in rows:
        results = list(exp.glob(f"*_{row['trial_id']}/result.json"))
        lines = results[0].read_text().splitlines() if results else []
        vals = [json.loads(l) for l in lines if l.strip()]
        row["epochs"] = len(vals)
        row["best"] = [v.get("val_metric") for v in vals if v.get("val_metric") is not None]
    return rows


def run_status(run: str, results_dir: str = "results") -> str:
    cfg = load_config(run, results_dir)
    run_dir = run_dir_of(cfg)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    mode = saved.get("mode", "max")
    path = experiment_path(cfg, run_dir)
    if "://" in path:
        return f"{cfg.name}: experiment stored at {path}; status reads local folders only"
    rows = _trial_rows(Path(path))
    done = (run_dir / "trials.parquet").exists()
    lines = [f"{cfg.name}: {'finished' if done else 'not finished'} ({cfg.searcher} search, {len(rows)} trials "
             f"known, experiment {path})"]
    pick = max if mode == "max" else min
    for budget in sorted({float(r["config"].get("budget", 0)) for r in rows}):
        group = [r for r in rows if float(r["config"].get("budget", 0)) == budget]
        counts = Counter(r["status"] for r in group)
        scored = [(pick(r["best"]), r["config"].get("depth")) for r in group if r["best"]]
        best = pick(scored) if scored else None
        best_txt = f"best so far {best[1]} ({best[0]:.3f})" if best else "no result yet"
        lines.append(f"  budget {budget:<5g} " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items()))
                     + f", epochs {sum(r['epochs'] for r in group)} | {best_txt}")
    return "\n".join(lines)
