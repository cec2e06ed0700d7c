"""Is the default protocol's answer the converged one? The demo's space, pruned (default) vs an exhaustive grid.

Runs the demo's search twice: with the default protocol (evidence-based halving, replicates on demand), and as an
exhaustive converged grid (every depth x lr x schedule x seed trained to its plateau, ``--scheduler none``, cap
x ``--grid-cap-factor``). Per budget it prints each one's pick, the grid's tied set (best + indistinguishable on
test) and whether the pick lies in it, the optimizer steps as a fraction of the grid's, how many selected cells
hit the cap, and scratch - best fine-tune for both. Goals: pick inside the grid's tied set at every budget, at
most 1/3 of its steps, no selected cell capped.

    PYTHONPATH=$PWD python bench/converged_answer.py --smoke            # minutes: a check that it runs
    PYTHONPATH=$PWD python bench/converged_answer.py --results-dir D    # the demo's size
    PYTHONPATH=$PWD python bench/converged_answer.py --results-dir D --reuse --schedules paper,cosine
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import ray

from bench.answer_stability import recommended, steps_spent
from search.commands.demo import demo_config
from search.config import SearchConfig
from search.runner import run_search


def cell_facts(run_dir: Path) -> dict[float, dict]:
    """Per budget: capped selected cells and scratch - best fine-tune (point) from summary.parquet."""
    s = pd.read_parquet(run_dir / "summary.parquet")
    out = {}
    for b, g in s.groupby("budget"):
        capped = g.loc[g["capped"].fillna(0).astype(int) > 0, "depth"].tolist() if "capped" in g else []
        ft = g[g["depth"] != "scratch"].sort_values("val_metric", ascending=g["mode"].iloc[0] == "min")
        scratch = g[g["depth"] == "scratch"]
        gap = (float(scratch["test_metric"].iloc[0] - ft["test_metric"].iloc[0])
               if len(ft) and len(scratch) else float("nan"))
        out[float(b)] = {"capped": capped, "gap": gap, "cells": len(g)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--reuse", action="store_true", help="keep runs already complete under --results-dir")
    p.add_argument("--schedules", default="", help="comma-separated schedules raced (default: the demo's)")
    p.add_argument("--grid-cap-factor", type=int, default=2, help="the grid's cap = the demo's cap x this")
    args = p.parse_args()
    results_dir = args.results_dir or tempfile.mkdtemp(prefix="tunedepth-converged-")
    base = SearchConfig(results_dir=results_dir)
    if args.schedules:
        base = base.replace(schedules=tuple(args.schedules.split(",")))
    pruned = demo_config(base.replace(name="pruned"), args.smoke, 0)
    grid = pruned.replace(name="grid", scheduler="none", epochs=pruned.epochs * args.grid_cap_factor)
    t0, walls = time.time(), {}
    for cfg in (pruned, grid):
        run_dir = Path(results_dir) / cfg.name
        if args.reuse and (run_dir / "summary.parquet").exists():
            continue
        walls[cfg.name] = run_search(cfg, log=lambda s: None).wall_s
        print(f"{cfg.name}: {walls[cfg.name]:.0f}s", flush=True)
    ray.shutdown()
    runs = {n: Path(results_dir) / n for n in ("pruned", "grid")}
    rec = {n: recommended(d) for n, d in runs.items()}
    facts = {n: cell_facts(d) for n, d in runs.items()}
    frac = steps_spent(runs["pruned"]) / steps_spent(runs["grid"])
    print(f"\nresults under {results_dir}; wall {time.time() - t0:.0f}s ("
          + ", ".join(f"{n} {w:.0f}s" for n, w in walls.items()) + f"); steps pruned / grid = {frac:.2f}\n")
    print("| budget | pruned pick | grid pick [tied] | inside | capped (pruned / grid) | scratch − best ft "
          "(pruned / grid) |")
    print("|---|---|---|---|---|---|")
    inside = 0
    for b in sorted(rec["grid"]):
        pick = rec["pruned"].get(b, ("-", set()))[0]
        gpick, tied = rec["grid"][b]
        ok = pick in tied
        inside += ok
        fp, fg = facts["pruned"].get(b, {}), facts["grid"].get(b, {})
        print(f"| {b:g} | {pick} | {gpick} [{', '.join(sorted(tied))}] | {'yes' if ok else 'no'} | "
              f"{len(fp.get('capped', []))}/{fp.get('cells', 0)} / {len(fg.get('capped', []))}/{fg.get('cells', 0)} | "
              f"{fp.get('gap', float('nan')):+.3f} / {fg.get('gap', float('nan')):+.3f} |")
    print(f"\nagreement {inside}/{len(rec['grid'])} budgets; steps fraction {frac:.2f} (goal <= 0.33)")


if __name__ == "__main__":
    main()
