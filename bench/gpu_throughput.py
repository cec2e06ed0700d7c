"""GPU throughput of trials: img/s per depth for ``alexnet`` at 224 px, and with 1, 2 and 4 trials per GPU.

One command, under 8 minutes on one H100-class GPU (no Ray: it measures what a trial does with its GPU;
Ray's ``--gpus-per-trial 0.5`` / ``0.25`` places 2 / 4 such trials on one GPU):

1. per depth (fc8 ... conv1-fc8, scratch): training img/s of one trial with the full network and with the
   frozen-prefix cache, both with bfloat16 autocast and channels_last (``amp``), measured after one
   warm-up epoch (which also computes the cached features);
2. aggregate training img/s of k = 1, 2, 4 trials at once on the same GPU (separate processes, as Ray runs
   them), at depth ``--shared-depth`` (default conv1-fc8: every layer trained, nothing cached).

Images are random uint8 tensors (throughput does not depend on their content) and the weights random
stand-ins for ImageNet's (no download).

    python bench/gpu_throughput.py                        # on the GPU (~4 min on an H100)
    python bench/gpu_throughput.py --device cpu --smoke   # seconds-size check of the script on a CPU
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

from tunedepth.data import SplitData
from tunedepth.models import depth_names, get_backbone
from tunedepth.settings import TrialConfig
from tunedepth.training.trial import TrialRun

BACKBONE = "alexnet"


def synthetic_data(n_train: int, n_val: int, size: int, seed: int = 0) -> SplitData:
    g = torch.Generator().manual_seed(seed)
    img = lambda n: torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)  # noqa: E731
    lab = lambda n: torch.arange(n) % 2  # noqa: E731
    return SplitData(train_x=img(n_train), train_y=lab(n_train), train_rank=torch.rand(n_train, generator=g),
                     val_x=img(n_val), val_y=lab(n_val), test_x=img(2), test_y=lab(2))


def train_img_per_s(depth: str, data: SplitData, weights: dict, device: str, epochs: int, batch_size: int,
                    feature_cache: bool) -> float:
    """Training images per second of one trial over ``epochs`` epochs after a warm-up epoch."""
    cfg = TrialConfig.from_dict(dict(backbone=BACKBONE, source="fractal", depth=depth, lr=1e-3,
                                     epochs=epochs + 1, batch_size=batch_size, feature_cache=feature_cache,
                                     amp=True))
    run = TrialRun(cfg, data, weights, device=device)
    run.step()  # warm-up: cudnn autotuning, cached features
    sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        run.step()
    sync(device)
    return epochs * len(data.train_y) / (time.perf_counter() - t0)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def worker(args: argparse.Namespace) -> None:
    """One trial of the shared-GPU test; prints its img/s and its start/end times as JSON."""
    data, weights = setup(args)
    t0 = time.time()
    rate = train_img_per_s(args.shared_depth, data, weights, args.device, args.epochs, args.batch_size, True)
    print(json.dumps({"img_per_s": rate, "start": t0, "end": time.time()}))


def setup(args: argparse.Namespace) -> tuple[SplitData, dict]:
    torch.backends.cudnn.benchmark = True
    size = get_backbone(BACKBONE).input_size
    torch.manual_seed(0)
    return synthetic_data(args.n_train, max(args.n_train // 8, 4), size), \
        {"fractal": get_backbone(BACKBONE).build(10).state_dict()}


def shared(args: argparse.Namespace, k: int) -> float:
    """Aggregate img/s of k trial processes on one device."""
    cmd = [sys.executable, __file__, "--worker"] + [a for a in sys.argv[1:] if a != "--worker"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(k)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a worker process failed")
    return sum(o["img_per_s"] for o in outs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--n-train", type=int, default=4096)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--shared-depth", default="conv1-fc8")
    p.add_argument("--trials-per-gpu", default="1,2,4")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (a check of the script, e.g. on a CPU)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.smoke:
        args.n_train, args.epochs, args.batch_size = 16, 1, 8
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; run on a GPU machine or pass --device cpu --smoke")
    os.environ.setdefault("TUNEDEPTH_CACHE", tempfile.mkdtemp(prefix="tunedepth-bench-cache-"))  # workers inherit it
    if args.worker:
        return worker(args)

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"{BACKBONE} at 224 px on {name}: {args.n_train} training images, batch {args.batch_size}, "
          f"bfloat16 autocast + channels_last on CUDA")
    data, weights = setup(args)
    print(f"{'depth':<11} {'full img/s':>10} {'cached img/s':>12} {'speed-up':>8}")
    for depth in depth_names(get_backbone(BACKBONE)):
        full = train_img_per_s(depth, data, weights, args.device, args.epochs, args.batch_size, False)
        cached = train_img_per_s(depth, data, weights, args.device, args.epochs, args.batch_size, True)
        print(f"{depth:<11} {full:>10.0f} {cached:>12.0f} {cached / full:>7.1f}x", flush=True)
    del data
    print(f"\ntrials sharing one device at depth {args.shared_depth}:")
    print(f"{'trials':>6} {'aggregate img/s':>15} {'vs 1 trial':>10}")
    base = None
    for k in (int(v) for v in args.trials_per_gpu.split(",")):
        rate = shared(args, k)
        base = base or rate
        print(f"{k:>6} {rate:>15.0f} {rate / base:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
