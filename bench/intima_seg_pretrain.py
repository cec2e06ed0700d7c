"""Weights for the ``file:`` source of ``monai-unet`` on intima-media-seg: the same network trained from scratch
on a disjoint synthetic cohort (another data seed, so no image of the run's data is seen).

    PYTHONPATH=$PWD python bench/intima_seg_pretrain.py --out /tmp/unet-im.pt [--images 200] [--epochs 20]

Offline there are no meaningful pretrained UNet weights (the fractal source pretrains classifiers), so this
in-domain source is what the README's fine-tuning numbers for intima-media-seg start from.
"""
from __future__ import annotations

import argparse
import time

import torch

from tunedepth.apps import build_split_data, get_app
from tunedepth.settings import TrialConfig
from tunedepth.training.trial import TrialRun


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--data-seed", type=int, default=1000)
    p.add_argument("--lr", type=float, default=3e-3)
    args = p.parse_args()
    torch.set_num_threads(2)
    data = build_split_data(get_app("intima-media-seg"), "", 96, args.data_seed, n=args.images)
    cfg = TrialConfig(app="intima-media-seg", backbone="monai-unet", depth="scratch", lr=args.lr, optimizer="adamw",
                      lr_protocol="uniform", schedule="cosine", epochs=args.epochs, batch_size=16, seed=0,
                      data_seed=args.data_seed)
    run = TrialRun(cfg, data, {})
    t0 = time.time()
    for _ in range(args.epochs):
        m = run.step()
        print(f"epoch {m['epoch']:3d}  train loss {m['train_loss']:.3f}  val mae_um {m['val_metric']:.1f}  "
              f"({time.time() - t0:.0f}s)", flush=True)
    epoch = run.load_best_model()
    torch.save(run.model.state_dict(), args.out)
    print(f"saved the best validation epoch ({epoch}, mae_um {run.best['val_metric']:.1f}) to {args.out}")


if __name__ == "__main__":
    main()
