"""Validation metric vs optimizer steps at the smallest data budget: how long must a trial train to converge?

Drives ``TrialRun`` directly (no Ray). Each trial validates every ``--every`` optimizer steps (its epoch-equivalent)
up to ``--steps``; prints, per (budget, depth, lr), the validation metric at each checkpoint (mean over seeds) and
the step at which it first reaches 99% of its own best gain over the first validation. The search's default
trial length (``epochs`` x ``epoch_steps``) is sized from this table.

    PYTHONPATH=$PWD python bench/convergence.py                       # budget 0.05, scratch and fc8, ~5 min
    PYTHONPATH=$PWD python bench/convergence.py --budgets 0.05 1.0 --steps 512 --smoke
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from tunedepth.apps import get_app
from tunedepth.models import get_backbone
from tunedepth.models.sources import get_source_weights
from tunedepth.settings import TrialConfig
from tunedepth.training.trial import TrialRun


def curve(cfg: TrialConfig, data, weights, rounds: int) -> list[float]:
    run = TrialRun(cfg, data, weights)
    out = []
    for _ in range(rounds):
        try:
            out.append(run.step()["val_metric"])
        except Exception:  # diverged: the rest of the curve is missing
            out += [float("nan")] * (rounds - len(out))
            break
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--app", default="colonoscopy-frames")
    p.add_argument("--backbone", default="tiny-alexnet")
    p.add_argument("--source", default="fractal")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.05])
    p.add_argument("--depths", nargs="+", default=["scratch", "fc8"])
    p.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=384)
    p.add_argument("--every", type=int, default=16, help="optimizer steps between validations")
    p.add_argument("--smoke", action="store_true", help="tiny data and weights (a check that it runs)")
    p.add_argument("--out", default=None, help="CSV of every validation")
    args = p.parse_args()
    torch.set_num_threads(1)
    app, spec = get_app(args.app), get_backbone(args.backbone)
    data = app.build_data(app.sizes.smoke if args.smoke else app.sizes.full, spec.input_size, 0)
    weights = {args.source: get_source_weights(args.source, spec, smoke=args.smoke)}
    rounds = args.steps // args.every
    t0, rows = time.time(), []
    for budget in args.budgets:
        for depth in args.depths:
            for lr in args.lrs:
                for seed in args.seeds:
                    cfg = TrialConfig(app=args.app, backbone=args.backbone, source=args.source, depth=depth,
                                      budget=budget, lr=lr, seed=seed, epochs=rounds, epoch_steps=args.every,
                                      schedule="constant")
                    for i, v in enumerate(curve(cfg, data, weights, rounds)):
                        rows.append({"budget": budget, "depth": depth, "lr": lr, "seed": seed,
                                     "step": (i + 1) * args.every, "val": v})
                print(f"budget {budget:g} {depth} lr {lr:g} done [{time.time() - t0:.0f}s]", flush=True)
    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False)
    mean = df.groupby(["budget", "depth", "lr", "step"])["val"].mean().unstack("step")
    n_train = {b: int(data.budget_indices(b).numel()) for b in args.budgets}
    print(f"\nvalidation {app.metric} (mean over seeds {args.seeds}) vs optimizer steps (batch {cfg.batch_size}); "
          f"one pass over the full training split = {-(-len(data.train_y) // cfg.batch_size)} steps; "
          f"n_train per budget {n_train}; constant lr")
    shown = [c for c in mean.columns if c in (args.every, 2 * args.every) or c % 64 == 0 or c == mean.columns[-1]]
    print(mean[shown].round(3).to_string())
    print("\nsteps to reach 99% of the best gain over the first validation (mean curve):")
    for key, row in mean.iterrows():
        v = row.to_numpy()
        gain = v - v[0]
        reach = row.index[int((gain >= 0.99 * gain.max()).argmax())] if gain.max() > 0 else row.index[0]
        print(f"  budget {key[0]:g} {key[1]:<8} lr {key[2]:<7g} best {v.max():.3f} at step "
              f"{row.index[int(v.argmax())]}, 99% of gain by step {reach}")
    print(f"wall {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
