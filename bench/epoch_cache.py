"""Epoch time with and without the frozen-prefix cache, for every depth, measured side by side.

For each backbone (the demo's ``efficientnet-lite0`` and ``tiny-alexnet`` at 64 px, ``alexnet`` at 224 px, and the
segmentation UNet ``unet-efficientnet-lite0`` at 64 px on a generated mask folder, whose cache holds the frozen
encoder stages' skip levels) and each depth, one
trial with ``feature_cache`` off and one with it on train the same data from the same weights; the
script times their second epoch (training + validation; the first epoch of a cached trial also computes
the features, reported separately as a one-time cost, shared by every later trial with the same prefix)
and checks that both report the same training loss. "network speed-up" is the same ratio for the network passes
alone (the training pass and the validation forward, without the validation metric's noise estimates).
Pretrained weights are random here (no download): the timing does not depend on their values (the UNet
starts from its offline ImageNet encoder).

    python bench/epoch_cache.py             # all four backbones (~18 min on 2 cores)
    python bench/epoch_cache.py --backbones efficientnet-lite0
    python bench/epoch_cache.py --backbones unet-efficientnet-lite0   # segmentation (~10 min)
    python bench/epoch_cache.py --backbones unet-efficientnet-lite0 --depths decoder   # decoder-only epochs
    python bench/epoch_cache.py --smoke     # seconds-size check of the script itself
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

import tunedepth.models.engine
import tunedepth.training.trial
from tunedepth.apps import build_split_data, get_app
from tunedepth.apps.generic import write_mask_folder
from tunedepth.models import depth_names, get_backbone
from tunedepth.models.sources import get_source_weights
from tunedepth.settings import TrialConfig
from tunedepth.training.features import STORE
from tunedepth.training.trial import TrialRun

# backbone -> embedded frames generated (3 crops each: ~1.8 training samples per frame); for a mask network,
# generated image/mask pairs (~0.6 of them train)
SIZES = {"efficientnet-lite0": 1000, "tiny-alexnet": 1000, "alexnet": 120, "unet-efficientnet-lite0": 120}


class NetworkClock:
    """Seconds spent in the network passes of a step (the training pass and the validation forward), apart
    from the validation metric and its noise estimates (for a mask app, surface distances: most of the step)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        timed = ((tunedepth.training.trial, "train_one_epoch"), (tunedepth.models.engine, "predict_logits"))
        for module, name in timed:
            setattr(module, name, self._timed(getattr(module, name)))

    def _timed(self, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed


CLOCK = NetworkClock()


def time_epochs(cfg: TrialConfig, data, weights) -> tuple[float, float, float, float]:
    """(first epoch s, second epoch s, second epoch's training loss, its network s) of a fresh trial."""
    torch.manual_seed(0)
    run = TrialRun(cfg, data, weights)
    t0 = time.perf_counter()
    run.step()
    t1, net0 = time.perf_counter(), CLOCK.seconds
    loss = run.step()["train_loss"]
    return t1 - t0, time.perf_counter() - t1, loss, CLOCK.seconds - net0


def bench(backbone: str, frames: int, threads: int, depths: list[str] | None = None) -> list[tuple]:
    spec = get_backbone(backbone)
    t0 = time.perf_counter()
    if spec.output == "mask":
        root = write_mask_folder(tempfile.mkdtemp(prefix="tunedepth-bench-masks-"), frames, spec.input_size, 0)
        app, source = "segmentation", "imagenet"
        data = build_split_data(get_app(app), str(root), spec.input_size, 0)
        weights = {source: get_source_weights(source, spec, log=lambda s: None)}
    else:
        app, source = "colonoscopy-frames", "fractal"
        data = get_app(app).build_data(frames, spec.input_size, 0)
        torch.manual_seed(1)
        weights = {source: spec.build(10).state_dict()}  # stand-in pretrained weights (head is replaced)
    print(f"\n{backbone} at {spec.input_size}px: {len(data.train_y)} train / {len(data.val_y)} val samples "
          f"(data {time.perf_counter() - t0:.1f}s), {threads} thread(s)")
    print(f"{'depth':<14} {'full s/ep':>9} {'cached s/ep':>11} {'speed-up':>8} {'network speed-up':>16} "
          f"{'features s (once)':>17}  same loss")
    rows = []
    for depth in depths or depth_names(spec):
        base = dict(
            app=app, backbone=backbone, source=source, depth=depth, budget=1.0, lr=1e-3, epochs=2, batch_size=32
        )
        _, full, loss_full, net_full = time_epochs(TrialConfig.from_dict({**base, "feature_cache": False}), data,
                                                   weights)
        STORE.memory.clear()  # a cold cache: the first cached epoch computes the features
        first, cached, loss_cached, net_cached = time_epochs(TrialConfig.from_dict(base), data, weights)
        same = abs(loss_full - loss_cached) <= 1e-4 * max(1.0, abs(loss_full))
        net = net_full / net_cached
        rows.append((backbone, depth, full, cached, full / cached, max(first - cached, 0.0), same, net))
        print(f"{depth:<14} {full:>9.3f} {cached:>11.3f} {full / cached:>7.1f}x {net:>15.1f}x "
              f"{max(first - cached, 0.0):>17.2f}  {'yes' if same else 'NO'}")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--backbones", default="efficientnet-lite0,tiny-alexnet,alexnet,unet-efficientnet-lite0")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--depths", default="", help="comma-separated depths (default: every depth of each backbone)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import os

    os.environ.setdefault("TUNEDEPTH_CACHE", tempfile.mkdtemp(prefix="tunedepth-bench-cache-"))
    rows = []
    for backbone in args.backbones.split(","):
        frames = 40 if args.smoke else SIZES.get(backbone, 120)
        rows += bench(backbone, frames, args.threads, [d for d in args.depths.split(",") if d])
    print("\nsummary (second-epoch time, full / cached):")
    for backbone in dict.fromkeys(r[0] for r in rows):
        ratios = {r[1]: r[4] for r in rows if r[0] == backbone}
        head = next(iter(ratios))
        net = {r[1]: r[7] for r in rows if r[0] == backbone}
        print(f"  {backbone}: head only ({head}) {ratios[head]:.1f}x (network passes {net[head]:.1f}x); all depths "
              + ", ".join(f"{d} {v:.1f}x" for d, v in ratios.items()))
    print("  same training loss with and without the cache at every depth:",
          "yes" if all(r[6] for r in rows) else "NO")


if __name__ == "__main__":
    main()
