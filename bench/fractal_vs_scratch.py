"""Validation AUC of scratch vs the fractal source at its best depth, per data budget, on the demo app.

Drives ``TrialRun`` directly (no Ray): for every budget x depth x lr x seed one trial of ``--epochs`` epochs;
a trial's score is its best validation epoch (early stopping on validation, as the search does); a depth's
score is its best trial over the learning rates (mean over seeds when several are given).

    PYTHONPATH=$PWD python bench/fractal_vs_scratch.py                # budgets 0.1 and 1.0, ~11 min on 1 core
    PYTHONPATH=$PWD python bench/fractal_vs_scratch.py --lr-protocol uniform --seeds 0 1 --out /tmp/trials.csv
    PYTHONPATH=$PWD python bench/fractal_vs_scratch.py --fractal-recipe '{"classes": 128, "per_class": 24, \
        "epochs": 24, "lr": 0.002, "weight_decay": 0.05, "augment": true, "standardize": true}'
"""
from __future__ import annotations

import argparse
import json
import time

import pandas as pd
import torch

from tunedepth.apps import get_app
from tunedepth.models import SCRATCH, get_backbone
from tunedepth.models.fractal import FractalRecipe, fractal_weights
from tunedepth.models.sources import get_source_weights
from tunedepth.settings import TrialConfig
from tunedepth.training.trial import TrialRun

DEPTHS = ("fc8", "fc7-fc8", "fc6-fc8", "conv4-fc8", "conv1-fc8", SCRATCH)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--app", default="colonoscopy-frames")
    p.add_argument("--backbone", default="tiny-alexnet")
    p.add_argument("--source", default="fractal")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.1, 1.0])
    p.add_argument("--depths", nargs="+", default=list(DEPTHS))
    p.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr-protocol", default="paper", help="paper (head 10x, biases 2x) or uniform")
    p.add_argument("--samples", type=int, default=0, help="dataset size (0 = the app's full size)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fractal-recipe", default=None,
                   help='JSON of FractalRecipe fields overriding the default recipe, e.g. \'{"augment": true}\'')
    p.add_argument("--out", default=None, help="CSV of every trial's best epoch")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    app, spec = get_app(args.app), get_backbone(args.backbone)
    data = app.build_data(args.samples or app.sizes.full, spec.input_size, 0)
    t0 = time.time()
    if args.source == "fractal" and args.fractal_recipe:
        weights = {args.source: fractal_weights(spec, FractalRecipe(**json.loads(args.fractal_recipe)))[0]}
    else:
        weights = {args.source: get_source_weights(args.source, spec)}
    print(f"source {args.source}: ready in {time.time() - t0:.0f}s")
    rows = []
    for budget in args.budgets:
        for depth in args.depths:
            for lr in args.lrs:
                for seed in args.seeds:
                    cfg = TrialConfig(app=args.app, backbone=args.backbone, source=args.source, depth=depth,
                                      budget=budget, lr=lr, epochs=args.epochs, seed=seed,
                                      lr_protocol=args.lr_protocol)
                    run = TrialRun(cfg, data, weights)
                    try:
                        curve = [run.step()["val_metric"] for _ in range(args.epochs)]
                        best, epoch = max((v, i + 1) for i, v in enumerate(curve))
                    except Exception as e:  # a diverged trial counts as failed, like in the search
                        best, epoch = float("nan"), 0
                        print(f"  {depth} lr {lr:g} seed {seed}: {e}")
                    rows.append({"budget": budget, "depth": depth, "lr": lr, "seed": seed, "best_val": best,
                                 "best_epoch": epoch, "n_train": int(run.idx.numel())})
                    print(f"budget {budget:g} {depth:<10} lr {lr:<7g} seed {seed}: best val {app.metric} "
                          f"{best:.4f} (epoch {epoch})  [{time.time() - t0:.0f}s]", flush=True)
    trials = pd.DataFrame(rows)
    if args.out:
        trials.to_csv(args.out, index=False)
    per_depth = trials.groupby(["budget", "depth", "lr"])["best_val"].mean().groupby(["budget", "depth"]).max()
    print(f"\n{args.app}, {args.backbone}, source {args.source}, lr_protocol {args.lr_protocol}: validation "
          f"{app.metric}, best lr per depth, mean over seeds {args.seeds}")
    print(per_depth.unstack("depth")[list(args.depths)].round(4).to_string())
    print()
    for budget, by_depth in per_depth.groupby(level="budget"):
        by_depth = by_depth.droplevel("budget")
        tuned = by_depth.drop(SCRATCH, errors="ignore")
        print(f"budget {budget:g}: scratch {by_depth.get(SCRATCH, float('nan')):.4f}   "
              f"{args.source} best depth {tuned.idxmax()} {tuned.max():.4f}")


if __name__ == "__main__":
    main()
