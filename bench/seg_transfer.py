"""Dice of the ImageNet encoder (best depth) against scratch, per data budget, for the segmentation UNet.

``unet-efficientnet-lite0`` at 64 px on two datasets: the embedded ``intima-media-seg`` data and a generated
multi-class mask folder (``write_mask_folder``: a disc and a square, 3 classes, read by the ``segmentation``
app). Drives ``TrialRun`` directly (no Ray): for every dataset x budget x depth x lr one trial, trained until its
validation Dice has not improved for ``--patience-steps`` optimizer steps (a plateau), or to the cap of ``--epochs``
epoch-equivalents of ``--epoch-steps`` steps each (equal at every budget). Its best epoch is the app's own
selection (validation metric), and that checkpoint's mean foreground Dice is taken on validation and on test.
Per budget the ImageNet depth and scratch lr with the best validation Dice are compared on test Dice
(ImageNet - scratch), each marked with how its trial ended (a capped score is a lower bound).

    PYTHONPATH=$PWD python bench/seg_transfer.py           # converged: every trial to its plateau
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


def trial(app: str, data, weights, depth: str, budget: float, lr: float, args) -> tuple[float, float, str]:
    """(validation Dice, test Dice, how it ended) of one trial's best epoch; it ends on a validation plateau
    (``patience_steps`` optimizer steps without a better metric: "plateau") or at the cap ("capped": its score
    is a lower bound)."""
    cfg = TrialConfig(app=app, backbone=BACKBONE, source="imagenet", depth=depth, budget=budget, lr=lr,
                      optimizer="adamw", epochs=args.epochs, epoch_steps=args.epoch_steps,
                      patience_steps=args.patience_steps, batch_size=8, seed=0)
    run = TrialRun(cfg, data, weights)
    while not run.finished:
        run.step()
    ended = "capped" if run.capped else "diverged" if run.diverged else f"plateau@{int(run.best['epoch'])}"
    run.load_best_model()
    return dice(run, "val"), dice(run, "test"), ended


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="24 images, 1 epoch, depth decoder only, one budget")
    p.add_argument("--units", type=int, default=40)
    p.add_argument("--budgets", type=float, nargs="+", default=[0.25, 1.0])
    p.add_argument("--depths", nargs="+", default=["decoder", "enc3-decoder", "enc1-decoder"])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3])
    p.add_argument("--epochs", type=int, default=40, help="cap in epoch-equivalents (a ceiling: trials end on a "
                   "validation plateau)")
    p.add_argument("--epoch-steps", type=int, default=10, help="optimizer steps per epoch-equivalent, equal at "
                   "every budget")
    p.add_argument("--patience-steps", type=int, default=100, help="plateau: optimizer steps without a better "
                   "validation Dice")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.smoke:
        args.units, args.budgets, args.depths, args.epochs, args.epoch_steps = 24, [1.0], ["decoder"], 1, 0
    torch.set_num_threads(args.threads)
    weights = {"imagenet": get_source_weights("imagenet", get_backbone(BACKBONE), log=lambda s: None)}
    t0 = time.time()
    rows = []
    for name, (app, data) in datasets(args.units).items():
        for budget in args.budgets:
            scores: dict[str, tuple[float, float, float, str]] = {}  # depth -> (val, test, lr, end), best lr
            for depth in [*args.depths, SCRATCH]:
                for lr in args.lrs:
                    val, test, ended = trial(app, data, weights, depth, budget, lr, args)
                    print(f"{name:<18} budget {budget:<4g} {depth:<13} lr {lr:<6g} val dice {val:.3f}  test dice "
                          f"{test:.3f}  {ended}  [{time.time() - t0:.0f}s]", flush=True)
                    if depth not in scores or val > scores[depth][0]:
                        scores[depth] = (val, test, lr, ended)
            best = max((d for d in scores if d != SCRATCH), key=lambda d: scores[d][0])
            n_train = len(data.budget_indices(budget))
            rows.append((name, budget, n_train, best, scores[best], scores[SCRATCH]))
    print(f"\n{BACKBONE}, source imagenet vs scratch; cap {args.epochs} x {args.epoch_steps or 'one pass'} steps, "
          f"plateau after {args.patience_steps} steps; lrs {args.lrs}; test Dice (depth and lr chosen by validation "
          f"Dice; a capped score is a lower bound); {time.time() - t0:.0f}s")
    print(f"{'data':<18} {'budget':>6} {'n_train':>7}  {'best ImageNet depth':<20} {'ImageNet':>8} {'ended':<11} "
          f"{'scratch':>8} {'ended':<11} {'ImageNet - scratch':>18}")
    for name, budget, n, depth, (_, imagenet, _, i_end), (_, scratch, _, s_end) in rows:
        print(f"{name:<18} {budget:>6g} {n:>7}  {depth:<20} {imagenet:>8.3f} {i_end:<11} {scratch:>8.3f} "
              f"{s_end:<11} {imagenet - scratch:>+18.3f}")


if __name__ == "__main__":
    main()
