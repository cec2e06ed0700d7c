"""A training step (batch 32, 64 px) in NCHW vs channels_last on the CPU, side by side, per backbone.

Trials run channels_last on every device (``tunedepth.training.trial.TrialRun``); this prints why: the ratio of
the NCHW step time to the channels_last one, each the median of ``--steps`` steps after a warm-up.

    python bench/channels_last.py [--threads 1] [--steps 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from tunedepth.models import get_backbone


def step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step is a warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", default="efficientnet-lite0,tiny-alexnet")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.backbones.split(","):
        torch.manual_seed(0)
        spec = get_backbone(name)
        model = spec.build(2)
        x = torch.randn(32, 3, spec.input_size, spec.input_size)
        y = torch.randint(0, 2, (32,))
        nchw = step_time(model, x, y, args.steps)
        model.to(memory_format=torch.channels_last)
        nhwc = step_time(model, x.contiguous(memory_format=torch.channels_last), y, args.steps)
        print(f"{name} at {spec.input_size}px, {args.threads} thread(s): NCHW {nchw:.3f} s/step, channels_last "
              f"{nhwc:.3f} s/step: {nchw / nhwc:.2f}x")


if __name__ == "__main__":
    main()
