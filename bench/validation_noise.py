"""The cost of a mask app's validation noise estimate per epoch, before and after it was made cheap.

Each validation of a trial scores the metric once, on 24 random halves of the split (its standard error, paired
across trials) and on 6 shuffles (its chance level): 31 evaluations. For a mask app every evaluation from the
per-pixel output recomputes each image's Dice and surface distances; ``TrialRun`` now scores the halves from
the per-image summary (``tunedepth.training.trial.summarised``, computed once: exact, tests/test_paired_evidence.py),
so the halves cost one summary, and the segmentation app scores its Dice alone (``label_map_dice``, no
surface distances). Prints, per app, the seconds of both ways on its embedded validation split and
their ratio, from one run, and that the halves agree.

    PYTHONPATH=$PWD python bench/validation_noise.py [--size 64] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch

from tunedepth.apps import build_split_data, get_app
from tunedepth.apps.registry import picked_metric
from tunedepth.metrics.noise import compute_chance, compute_halves
from tunedepth.training.trial import summarised


def noise(app, labels, probs, meta, fast: bool, metric=None):
    metric = metric or app.compute_metric
    h_probs, h_meta = summarised(app, labels, probs, meta) if fast else (probs, meta)
    halves = compute_halves(metric, labels, h_probs, h_meta, seed=0)
    chance = compute_chance(metric, labels, probs, meta, seed=1)
    return halves, chance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"{'app':<18} {'val images':>10} {'before s':>8} {'after s':>7} {'ratio':>6}  halves agree   (before: every "
          "metric of the app per evaluation, halves from the per-pixel output; after: the validation metric alone, "
          "halves from the summary)")
    for name in ("segmentation", "intima-media-seg"):
        app = get_app(name)
        data = build_split_data(app, "", args.size, seed=0)
        labels = data.targets("val").numpy()
        meta = {k: v.numpy() for k, v in data.val_meta.items()}
        g = torch.Generator().manual_seed(0)
        onehot = torch.nn.functional.one_hot(torch.as_tensor(labels).clamp(0, app.num_classes - 1).long(),
                                             app.num_classes).permute(0, 3, 1, 2)
        probs = torch.softmax(torch.randn(onehot.shape, generator=g) + 2 * onehot, 1).numpy()
        times, out = {}, {}
        every = partial(picked_metric, app.compute_metrics, app.metric)  # what compute_metric was before
        for fast in (False, True):
            t0 = time.perf_counter()
            for _ in range(args.repeats):
                out[fast] = noise(app, labels, probs, meta, fast, metric=None if fast else every)
            times[fast] = (time.perf_counter() - t0) / args.repeats
        agree = np.allclose(out[True][0], out[False][0], rtol=1e-12, atol=1e-12, equal_nan=True)
        print(f"{name:<18} {len(labels):>10d} {times[False]:>8.2f} {times[True]:>7.2f} "
              f"{times[False] / times[True]:>5.1f}x  {agree}")


if __name__ == "__main__":
    main()
