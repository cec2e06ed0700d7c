"""Can the search's answer be trusted? The demo search with 3 search seeds vs the converged exhaustive grid, once.

Runs the demo's search (``tunedepth demo``'s config: evidence-based halving, replicates on demand) with
``--seed`` 0, 2, 4 (trial seeds shifted, lr-grid order permuted; data and splits fixed), then the same space as
an exhaustive converged grid (every depth x lr x schedule x seed trained to its plateau: ``--scheduler none``,
cap x ``--grid-cap-factor``). Prints per budget each run's recommended depth and its "not worse" set (the pick
and the depths tied with it on the test split, ``tunedepth report``'s paired bootstrap), then

- stability: budgets at which the pruned runs' not-worse sets share a depth, and the mean size of those sets
  (how decisive the answer is: 1 = one depth, 4 = nothing told apart);
- convergence: selected (budget, depth) cells that reached the cap, per run (goal: none);
- agreement: budgets at which a pruned run's pick lies in the grid's not-worse set (per run, then all);
- the optimizer steps each pruned run spent as a fraction of the grid's (goal <= 1/3);
- scratch - best fine-tune (test, point) per budget and run.

    PYTHONPATH=$PWD python bench/converged_answer.py --smoke      # minutes: a check that it runs
    PYTHONPATH=$PWD python bench/converged_answer.py --results-dir D             # the demo's size: 4 searches
    PYTHONPATH=$PWD python bench/converged_answer.py --results-dir D --reuse     # run only what D lacks

The pruned runs are named as ``tunedepth demo [--seed N] --results-dir D`` names them, so demo runs already
there are reused.

Each search is an ordinary run folder under ``--results-dir``; the figures are read from their files
(``summary.parquet``: best and tied depths; ``trials.parquet``: epoch-equivalents run).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import ray
import yaml

from tunedepth.cli.demo import demo_config
from tunedepth.config import SearchConfig
from tunedepth.hpo.runner import run_search
from tunedepth.settings import TrialConfig
from tunedepth.training.trial import epoch_steps


def recommended(run_dir: Path) -> dict[float, tuple[str, set[str]]]:
    """Per budget: (recommended depth, {it} + the depths tied with it on the test split), from summary.parquet."""
    summary = pd.read_parquet(run_dir / "summary.parquet")
    out = {}
    for b, g in summary.groupby("budget"):
        best = g.loc[g["is_best"].astype(bool), "depth"]
        if len(best):
            tied = g.loc[g["indistinguishable_from_best"].astype(bool), "depth"]
            out[float(b)] = (best.iloc[0], {best.iloc[0], *tied})
    return out


def cell_facts(run_dir: Path) -> dict[float, dict]:
    """Per budget: selected cells that reached the cap, and scratch - best fine-tune by validation (test, point)."""
    s = pd.read_parquet(run_dir / "summary.parquet")
    out = {}
    for b, g in s.groupby("budget"):
        capped = g.loc[g["capped"].fillna(0).astype(int) > 0, "depth"].tolist()
        ft = g[g["depth"] != "scratch"].sort_values("val_metric", ascending=g["mode"].iloc[0] == "min")
        scratch = g[g["depth"] == "scratch"]
        gap = (float(scratch["test_metric"].iloc[0] - ft["test_metric"].iloc[0])
               if len(ft) and len(scratch) else float("nan"))
        out[float(b)] = {"capped": capped, "gap": gap, "cells": len(g)}
    return out


def steps_spent(run_dir: Path) -> int:
    """Optimizer steps of every trial of the run: epoch-equivalents reported x steps per epoch-equivalent."""
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg = SearchConfig.from_dict(saved)
    n_epochs = len(pd.read_parquet(run_dir / "trials.parquet"))
    return n_epochs * epoch_steps(TrialConfig.from_dict(cfg.trial_settings()), int(saved["n_train"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 2, 4], help="search seeds of the pruned runs")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--reuse", action="store_true", help="keep runs already complete under --results-dir")
    p.add_argument("--grid-cap-factor", type=int, default=2, help="the grid's cap = the demo's cap x this")
    p.add_argument("--samples", type=int, default=0, help="learning rates per depth (default: the demo's); "
                                                          "with --budgets, runs are named s<N>-... (no demo reuse)")
    p.add_argument("--budgets", default="", help="comma-separated budgets (default: the demo's)")
    p.add_argument("--report-only", action="store_true", help="run nothing: the figures of the runs there")
    args = p.parse_args()
    results_dir = args.results_dir or tempfile.mkdtemp(prefix="tunedepth-stability-")
    base = SearchConfig(results_dir=results_dir)
    quiet = lambda s: None  # noqa: E731
    t0 = time.time()
    # the pruned runs are named as `tunedepth demo --seed N --results-dir D` names them, so --reuse takes those
    smoke = "demo-smoke" if args.smoke else "demo"
    space = {**({"samples": args.samples} if args.samples else {}),
             **({"budgets": tuple(float(b) for b in args.budgets.split(","))} if args.budgets else {})}
    prefix = f"s{args.samples or 'd'}-b{args.budgets or 'd'}-" if space else ""

    def sized(cfg: SearchConfig) -> SearchConfig:
        return cfg.replace(**space, name=prefix + cfg.name)

    configs = {f"seed {seed}": sized(demo_config(base.replace(name=f"{smoke}-seed{seed}" if seed else smoke),
                                                 args.smoke, seed)) for seed in args.seeds}
    demo = sized(demo_config(base.replace(name="grid"), args.smoke, 0))
    configs["grid"] = demo.replace(scheduler="none", epochs=demo.epochs * args.grid_cap_factor)
    walls: dict[str, float] = {}
    for name, cfg in configs.items():
        run_dir = Path(results_dir) / cfg.name
        if args.report_only or (args.reuse and (run_dir / "summary.parquet").exists()):
            continue
        walls[name] = run_search(cfg, log=quiet).wall_s
        print(f"{name}: {walls[name]:.0f}s", flush=True)
    ray.shutdown()
    runs = {name: Path(results_dir) / cfg.name for name, cfg in configs.items()
            if (Path(results_dir) / cfg.name / "summary.parquet").exists()}
    report(runs, walls, time.time() - t0, results_dir)


def report(runs: dict[str, Path], walls: dict[str, float], wall: float, results_dir: str) -> None:
    rec = {name: recommended(d) for name, d in runs.items()}
    facts = {name: cell_facts(d) for name, d in runs.items()}
    pruned = [n for n in runs if n != "grid"]
    budgets = sorted(set().union(*(r.keys() for r in rec.values())))
    grid = rec.get("grid", {})
    print(f"\nresults under {results_dir}; wall {wall:.0f}s in all; per run: "
          + ", ".join(f"{n} {w:.0f}s" for n, w in walls.items()) + "\n")
    print("per budget and run: pick [not worse: the pick + depths tied with it on test] · inside the grid's "
          "not-worse set · selected cells capped / cells · scratch − best fine-tune (test)\n")
    print("| budget | " + " | ".join(runs) + " |")
    print("|---" * (len(runs) + 1) + "|")
    for b in budgets:
        cells = []
        for n in runs:
            pick, tied = rec[n].get(b, ("-", set()))
            f = facts[n].get(b, {"capped": [], "cells": 0, "gap": float("nan")})
            inside = "" if n == "grid" or not grid else (" ✓" if pick in grid.get(b, ("", set()))[1] else " ✗")
            cells.append(f"`{pick}`{inside} [{', '.join(sorted(tied))}] · capped {len(f['capped'])}/{f['cells']}"
                         + (f" ({', '.join(f['capped'])})" if f["capped"] else "") + f" · {f['gap']:+.3f}")
        print(f"| {b:g} | " + " | ".join(cells) + " |")
    if len(pruned) > 1:
        shared = [b for b in budgets if set.intersection(*(rec[n].get(b, ("", set()))[1] for n in pruned))]
        # each run's pick is best or not worse in every other run
        mutual = [b for b in budgets if all(rec[a].get(b, ("-",))[0] in rec[o].get(b, ("", set()))[1]
                                            for a in pruned for o in pruned)]
        sizes = [len(rec[n][b][1]) for n in pruned for b in budgets if b in rec[n]]
        print(f"\nstability ({len(pruned)} pruned runs): each run's pick is best or not worse in every other run at "
              f"{len(mutual)}/{len(budgets)} budgets; their not-worse sets share a depth at {len(shared)}/"
              f"{len(budgets)}; mean not-worse set size {sum(sizes) / max(len(sizes), 1):.2f} of "
              f"{facts[pruned[0]][budgets[0]]['cells']} depths")
    capped = {n: sum(len(f["capped"]) for f in facts[n].values()) for n in runs}
    print("capped selected cells: " + ", ".join(f"{n} {c}" for n, c in capped.items()) + " (goal: 0)")
    if not grid:
        print("no exhaustive grid run yet: agreement and step fraction need it (rerun with --reuse)")
        return
    grid_steps = steps_spent(runs["grid"])
    for n in pruned:
        inside = sum(rec[n].get(b, ("-",))[0] in grid.get(b, ("", set()))[1] for b in budgets)
        s = steps_spent(runs[n])
        print(f"{n}: pick inside the grid's not-worse set at {inside}/{len(budgets)} budgets; optimizer steps "
              f"{s} of the grid's {grid_steps} = {s / grid_steps:.2f} (goal <= 0.33)")


if __name__ == "__main__":
    main()
