"""Peak memory and images/s of the in-memory and the streaming data path on one generated image folder.

Generates an ImageFolder of ``--images`` JPEG frames (two classes, ``--source-px`` square), then, in a fresh
process per path (so each peak RSS is its own), builds the run's data for ``colonoscopy-frames`` at 224 px
(read, near-duplicate hashes, splits, 3 crops per frame) with ``stream`` off and on, and runs the same
network's forward over every sample (the frozen-prefix feature pass of a head-only trial), timing both steps.
Prints peak RSS (``resource.getrusage``: the process's maximum resident set; "worker peak" the largest
DataLoader worker's, which counts the pages it shares with its parent) and the ratios, from one run.
Timings on a shared machine are noisy; the memory figures are not.

    python bench/streaming.py                     # 2000 images (~10 min on 2 busy cores)
    python bench/streaming.py --images 400        # a quick look
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = "--child"


def generate(root: Path, n: int, px: int, seed: int = 0) -> float:
    """``n`` smooth random RGB frames (JPEG), half per class, the second class brighter; returns MB on disk."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        low = rng.integers(0, 200, (8, 8, 3)).astype(np.uint8)
        im = Image.fromarray(low).resize((px, px), Image.BICUBIC)
        arr = np.clip(np.asarray(im, dtype=np.int16) + (40 if i % 2 else 0) + rng.integers(-8, 8, (px, px, 3)), 0, 255)
        Image.fromarray(arr.astype(np.uint8)).save(root / ("b" if i % 2 else "a") / f"{i:06d}.jpg", quality=90)
    return sum(f.stat().st_size for f in root.rglob("*.jpg")) / 2**20


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: kilobytes


def child(folder: str, stream: str, backbone: str, threads: int, groups: int) -> dict:
    """One path, in this process: build the data, then the forward pass over every sample."""
    import torch
    from torch import nn

    from tunedepth.apps import build_split_data, get_app
    from tunedepth.models import get_backbone
    from tunedepth.training.features import compute_features

    torch.set_num_threads(threads)
    spec = get_backbone(backbone)
    model = spec.build(2).eval()
    if groups:  # the bottom groups' output, globally pooled: a cheaper forward, the same reads
        model = nn.Sequential(spec.split(model, groups)[0], nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    base = peak_mb()
    t0 = time.perf_counter()
    data = build_split_data(get_app("colonoscopy-frames"), folder, spec.input_size, seed=0, stream=stream)
    t1 = time.perf_counter()
    data_peak = peak_mb()
    t_read = time.perf_counter()
    for s in ("train", "val", "test"):  # reading alone: every sample once, in batches (memory: a copy)
        x = getattr(data, f"{s}_x")
        for i in range(0, len(x), 64):
            x[i : i + 64].sum()
    t1 = time.perf_counter()
    read_s = t1 - t_read
    n = 0
    for s in ("train", "val", "test"):
        x = getattr(data, f"{s}_x")
        compute_features(model, x, None, 1, torch.device("cpu"), batch_size=64)
        n += len(x)
    t2 = time.perf_counter()
    return {"stream": stream, "samples": n, "frames": len(data.units), "type": type(data.train_x).__name__,
            "base_mb": base, "data_peak_mb": data_peak, "peak_mb": peak_mb(),
            "worker_peak_mb": peak_mb(resource.RUSAGE_CHILDREN),  # the largest DataLoader worker (forked: shares pages)
            "data_s": t_read - t0, "read_s": read_s, "forward_s": t2 - t1}


def run_child(folder: Path, stream: str, backbone: str, threads: int, groups: int, cache: Path) -> dict:
    env = {**os.environ, "TUNEDEPTH_CACHE": str(cache), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, __file__, CHILD, str(folder), stream, backbone, str(threads), str(groups)],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"the {stream} path failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2000, help="frames to generate (default 2000)")
    p.add_argument("--source-px", type=int, default=256, help="side of the generated JPEGs (default 256)")
    p.add_argument("--backbone", default="alexnet", help="network of the forward pass, at its input size "
                   "(default alexnet, 224 px, random weights)")
    p.add_argument("--groups", type=int, default=1, help="forward through the backbone's bottom GROUPS groups, "
                   "globally pooled (default 1: alexnet's conv1, cheap on 2 cores; 0 = the whole network)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "frames"
        t0 = time.perf_counter()
        mb = generate(folder, args.images, args.source_px)
        print(
            f"generated {args.images} JPEG frames of {args.source_px}x{args.source_px} px, two classes: {mb:.0f} MB "
            f"on disk ({time.perf_counter() - t0:.0f}s); app colonoscopy-frames (3 crops per frame) at the "
            f"{args.backbone} input size; forward: "
            f"{f'its bottom {args.groups} group(s), pooled' if args.groups else 'the whole network'}, "
            f"random weights; {args.threads} thread(s), DataLoader workers 2 (streaming)"
        )
        rows = [run_child(folder, s, args.backbone, args.threads, args.groups, Path(tmp) / "cache")
                for s in ("off", "on")]
    print(f"\n{'path':<10} {'samples':>7} {'x type':>11} {'RSS after imports':>17} {'peak RSS data':>13} "
          f"{'peak RSS all':>12} {'worker peak':>11} {'data s':>7} {'data img/s':>10} {'read img/s':>10} {'fwd s':>7} "
          f"{'fwd img/s':>9}")
    for r in rows:
        name = "memory" if r["stream"] == "off" else "streaming"
        print(
            f"{name:<10} {r['samples']:>7} {r['type']:>11} {r['base_mb']:>14.0f} MB {r['data_peak_mb']:>10.0f} MB "
            f"{r['peak_mb']:>9.0f} MB {r.get('worker_peak_mb', 0):>8.0f} MB {r['data_s']:>7.1f} "
            f"{r['frames'] / r['data_s']:>10.1f} "
            f"{r['samples'] / r['read_s']:>10.0f} {r['forward_s']:>7.1f} "
            f"{r['samples'] / r['forward_s']:>9.1f}"
        )
    mem, disk = rows
    extra = lambda r: r["peak_mb"] - r["base_mb"]  # noqa: E731
    print(f"\npeak RSS streaming / memory: {disk['peak_mb'] / mem['peak_mb']:.2f} (above the imports' baseline: "
          f"{extra(disk):.0f} MB vs {extra(mem):.0f} MB, {extra(disk) / extra(mem):.2f}); "
          f"data build speed streaming / memory: {(mem['data_s']) / disk['data_s']:.2f}; "
          f"read speed streaming / memory: {mem['read_s'] / disk['read_s']:.2f}; "
          f"forward speed streaming / memory: {mem['forward_s'] / disk['forward_s']:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        folder, stream, backbone, threads, groups = sys.argv[2:7]
        print(json.dumps(child(folder, stream, backbone, int(threads), int(groups))))
    else:
        main()
