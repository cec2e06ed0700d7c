"""Dice of the ImageNet encoder (best depth) against scratch, per data budget, for the segmentation UNet.

``unet-efficientnet-lite0`` at 64 px on two datasets: the embedded ``intima-media-seg`` data and a generated
multi-class mask folder (``write_mask_folder``: a disc and a square, 3 classes, read by the ``segmentation``
app). Drives ``TrialRun`` directly (no Ray): for every dataset x budget x depth x lr one trial of ``--epochs``
epoch-equivalents; its best epoch is the app's own selection (validation metric), and that checkpoint's mean
foreground Dice is taken on validation and on test. Per budget the ImageNet depth and scratch lr with the best
validation Dice are compared on test Dice (ImageNet - scratch).

    PYTHONPATH=$PWD python bench/seg_transfer.py           # ~10 min on 2 shared cores
    PYTHONPATH=$PWD python bench/seg_transfer.py --smoke   # the script itself, ~2 min
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from tunedepth.apps import build_split_data, get_app
from tunedepth.apps.generic import write_mask_folder
from tunedepth.models import SCRATCH, get_backbone
from tunedepth.models.sources import get_source_weights
from tunedepth.settings import TrialConfig
from tunedepth.training.trial import TrialRun

BACKBONE = "unet-efficientnet-lite0"


def datasets(units: int) -> dict[str, tuple[str, object]]:
    """name -> (app, SplitData) of ``units`` images each."""
    root = write_mask_folder(tempfile.mkdtemp(prefix="seg-transfer-"), units, 64, seed=0)
    return {"intima-media-seg": ("intima-media-seg", build_split_data(get_app("intima-media-seg"), "", 64, 0,
                                                                      n=units)),
            "generated 3-class": ("segmentation", build_split_data(get_app("segmentation"), str(root), 64, 0))}


def dice(run: TrialRun, split: str) -> float:
    """Mean foreground Dice of the run's best checkpoint on ``split``."""
    data, app = run.data, run.app
    probs = torch.softmax(run.predict(split), 1).numpy()
    meta = {k: v.numpy() for k, v in getattr(data, f"{split}_meta").items()}
    return float(app.all_metrics(data.targets(split).numpy(), probs, meta)["dice"])


def trial(app: str, data, weights, depth: str, budget: float, lr: float, epochs: int) -> tuple[float, float]:
    """(validation Dice, test Dice) of one trial's best epoch."""
    cfg = TrialConfig(app=app, backbone=BACKBONE, source="imagenet", depth=depth, budget=budget, lr=lr,
                      optimizer="adamw", epochs=epochs, batch_size=8, seed=0)
    run = TrialRun(cfg, data, weights)
    while not run.finished:
        run.step()
    run.load_best_model()
    return dice(run, "val"), dice(run, "test")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="24 images, 1 epoch, depth decoder only, one budget")
    p.add_argument("--units", type=int, default=40)
    p.add_argument("--budgets", type=float, nargs="+", default=[0.25, 1.0])
    p.add_argument("--depths", nargs="+", default=["decoder", "enc3-decoder"])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.smoke:
        args.units, args.budgets, args.depths, args.epochs = 24, [1.0], ["decoder"], 1
    torch.set_num_threads(args.threads)
    weights = {"imagenet": get_source_weights("imagenet", get_backbone(BACKBONE), log=lambda s: None)}
    t0 = time.time()
    rows = []
    for name, (app, data) in datasets(args.units).items():
        for budget in args.budgets:
            scores: dict[str, tuple[float, float, float]] = {}  # depth -> (val, test, lr) of its best lr
            for depth in [*args.depths, SCRATCH]:
                for lr in args.lrs:
                    val, test = trial(app, data, weights, depth, budget, lr, args.epochs)
                    print(f"{name:<18} budget {budget:<4g} {depth:<13} lr {lr:<6g} val dice {val:.3f}  test dice "
                          f"{test:.3f}  [{time.time() - t0:.0f}s]", flush=True)
                    if depth not in scores or val > scores[depth][0]:
                        scores[depth] = (val, test, lr)
            best = max((d for d in scores if d != SCRATCH), key=lambda d: scores[d][0])
            n_train = len(data.budget_indices(budget))
            rows.append((name, budget, n_train, best, scores[best][1], scores[SCRATCH][1]))
    print(f"\n{BACKBONE}, source imagenet vs scratch, {args.epochs} epoch-equivalents, lrs {args.lrs}; "
          f"test Dice (depth and lr chosen by validation Dice); {time.time() - t0:.0f}s")
    print(f"{'data':<18} {'budget':>6} {'n_train':>7}  {'best ImageNet depth':<20} {'ImageNet':>8} {'scratch':>8} "
          f"{'ImageNet - scratch':>18}")
    for name, budget, n, depth, imagenet, scratch in rows:
        print(
            f"{name:<18} {budget:>6g} {n:>7}  {depth:<20} {imagenet:>8.3f} {scratch:>8.3f} {imagenet - scratch:>+18.3f}"
        )


if __name__ == "__main__":
    main()
