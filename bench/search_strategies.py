"""Trials and epochs each search strategy spends on the demo app, and whether they agree on the answer.

Runs, on the embedded colonoscopy-frames app (tiny-alexnet, fractal source, 5 budgets, 9 depths, lr fixed at
--lr so that strategies differ only in how they search): grid (exhaustive), grid + Ray's budget-stratified ASHA
(reduction factor 3 and 4), grid +
successive halving per budget (``--scheduler per-budget``), one seed,
optuna (per-budget TPE, --optuna-samples trials per budget) + ASHA, and the paper's guideline. Prints one
row per strategy and, per budget, the best depth each picked (by validation).

    python bench/search_strategies.py            # full size (~10 min on 2 cores)
    python bench/search_strategies.py --smoke    # seconds-size check of the script itself
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import ray

from tunedepth.config import SearchConfig, smoke_config
from tunedepth.hpo.runner import run_search

STRATEGIES = {
    "grid": dict(searcher="grid", scheduler="none"),
    "grid+asha": dict(searcher="grid", scheduler="asha"),
    "grid+asha4": dict(searcher="grid", scheduler="asha", reduction_factor=4),
    "grid+per-budget": dict(searcher="grid", scheduler="per-budget"),
    "optuna+asha": dict(searcher="optuna", scheduler="asha"),
    "guideline": dict(searcher="guideline", scheduler="none"),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optuna-samples", type=int, default=5)
    p.add_argument("--results-dir", default=None)
    args = p.parse_args()
    results_dir = args.results_dir or tempfile.mkdtemp(prefix="tunedepth-bench-")
    base = SearchConfig(backbone="tiny-alexnet", source="fractal", lr_min=args.lr, lr_max=args.lr, seeds=(0,),
                        results_dir=results_dir)  # the tiny-alexnet demo the README numbers measured
    if args.smoke:
        base = smoke_config(base)
    rows, answers = [], {}
    for name, kw in STRATEGIES.items():
        cfg = base.replace(name=name, **kw, samples=args.optuna_samples if kw["searcher"] == "optuna" else 1)
        t0 = time.time()
        out = run_search(cfg, log=lambda s: None)
        table = out.validation.set_index("budget")
        answers[name] = table["best_depth"].to_dict()
        rows.append((name, out.trials["trial_id"].nunique(), len(out.trials), time.time() - t0))
        if name == "guideline":
            guide = json.loads((out.run_dir / "guideline.json").read_text())
    ray.shutdown()
    grid_epochs = rows[0][2]
    print(f"\nresults under {results_dir}")
    print(f"{'strategy':<13} {'trials':>6} {'epochs':>6} {'epochs/grid':>11} {'wall s':>7}")
    for name, trials, epochs, wall in rows:
        print(f"{name:<13} {trials:>6} {epochs:>6} {epochs / grid_epochs:>11.2f} {wall:>7.0f}")
    budgets = sorted(answers["grid"])
    print("\nbest depth per budget (validation):")
    print(f"{'budget':>7} " + " ".join(f"{n:>12}" for n in STRATEGIES) + "  same as grid?")
    for b in budgets:
        picks = [answers[n].get(b, "-") for n in STRATEGIES]
        print(f"{b:>7g} " + " ".join(f"{d:>12}" for d in picks) + "  " +
              " ".join("y" if d == picks[0] else "n" for d in picks[1:]))
    print("\nguideline stop reasons:")
    for b, v in guide.items():
        print(
            f"  budget {b}: chose {v['best_depth']} after {v['trials']} trials / {v['epochs']} epochs; "
            f"{v['stop_reason']}"
        )


if __name__ == "__main__":
    main()
