"""Near-duplicate grouping: recall on altered copies and false merges of unrelated images, per hash recipe.

Originals are natural-looking images from the embedded generators (one colonoscopy frame per video, one
intima-media image per patient: no two originals are related). Every original gets one copy per alteration
(gamma, contrast, a clinical window, a crop of a few percent, a lower resolution, JPEG re-encoding, noise).
The grouping under test (``trainables.data.near_duplicate_groups`` with the recipe's hash kinds) runs on
originals and copies together, as ``build_split_data`` does; then

- recall (per alteration): copies that land in their original's group;
- false merges: pairs of unrelated images (two originals, or copies of two originals) that land in one
  group, and the share of originals merged with an unrelated image in any of the runs.

Each alteration's copies are grouped with the originals in a run of their own, so a copy is never linked to
its original through another alteration's copy.

    PYTHONPATH=$PWD python bench/near_duplicates.py [--n 300] [--smoke]
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image

from trainables.data import HASH_VIEWS, near_duplicate_groups, unit_hash_set


def originals(n: int, seed: int) -> list[np.ndarray]:
    from trainables.apps import colonoscopy, intima

    n_col, n_im = n * 2 // 3, n - n * 2 // 3
    col = colonoscopy.generate(n_col * colonoscopy.FRAMES_PER_VIDEO, 96, seed).images[::colonoscopy.FRAMES_PER_VIDEO]
    im = intima.generate(2 * n_im, 96, seed).images[::2]  # one image per patient (patients hold two)
    grey = [x.float().mean(0).numpy() for x in col] + [x[0].float().numpy() for x in im]
    return [g.astype(np.uint8) for g in grey]


def _pil(x: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


ALTERATIONS = {
    "gamma 0.6": lambda x, r: 255 * (x / 255.0) ** 0.6,
    "gamma 1.7": lambda x, r: 255 * (x / 255.0) ** 1.7,
    "contrast x0.6": lambda x, r: x.mean() + 0.6 * (x - x.mean()),
    "contrast x1.5": lambda x, r: x.mean() + 1.5 * (x - x.mean()),
    "window p10-p90": lambda x, r: (np.clip(x, *np.percentile(x, (10, 90))) - np.percentile(x, 10))
    * 255 / max(np.ptp(np.percentile(x, (10, 90))), 1),
    "crop 2% per side": lambda x, r: _crop(x, 0.02),
    "crop 4% per side": lambda x, r: _crop(x, 0.04),
    "crop 6% per side": lambda x, r: _crop(x, 0.06),
    "half resolution": lambda x, r: np.asarray(_pil(x).resize((x.shape[1] // 2, x.shape[0] // 2), Image.BILINEAR),
                                               dtype=np.float64),
    "jpeg q30": lambda x, r: _jpeg(x, 30),
    "noise sd 8": lambda x, r: x + r.normal(0, 8, x.shape),
    "gamma 1.4 + crop 3% + jpeg q50": lambda x, r: _jpeg(_crop(255 * (x / 255.0) ** 1.4, 0.03), 50),
}


def _crop(x: np.ndarray, frac: float) -> np.ndarray:
    """Cut ``frac`` of the size off every side, then resize back (a re-framed or re-exported copy)."""
    h, w = x.shape
    dy, dx = round(h * frac), round(w * frac)
    return np.asarray(_pil(x).crop((dx, dy, w - dx, h - dy)).resize((w, h), Image.BILINEAR), dtype=np.float64)


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    _pil(x).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float64)


def evaluate(base: list[np.ndarray], copies: dict[str, list[np.ndarray]], views: tuple) -> dict:
    """Group the originals with ONE alteration's copies at a time (no help from other copies' chains)."""
    n = len(base)
    recall, false_pairs, merged, secs = {}, 0, np.zeros(n, dtype=bool), 0.0
    for name, cs in copies.items():
        thumbs = [torch.as_tensor(np.clip(x, 0, 255).astype(np.uint8)).float() for x in list(base) + cs]
        t0 = time.time()
        groups = near_duplicate_groups(unit_hash_set(thumbs, views))
        secs += time.time() - t0
        recall[name] = float(np.mean(groups[n:] == groups[:n]))
        g = groups[:n]
        same = (g[:, None] == g[None, :]) | (groups[n:][:, None] == groups[n:][None, :])  # originals or copies
        false_pairs += int(np.triu(same, 1).sum())
        merged |= same.sum(1) > 1
    return {"recall": recall, "false_pairs": false_pairs, "merged_share": float(merged.mean()), "seconds": secs}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=300, help="unrelated originals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args()
    n = 30 if a.smoke else a.n
    rng = np.random.default_rng(a.seed)
    base = originals(n, a.seed)
    copies = {name: [np.asarray(f(x.astype(np.float64), rng)) for x in base] for name, f in ALTERATIONS.items()}
    print(f"{n} unrelated originals; each alteration's {n} copies grouped with them separately")
    recipes = {"pHash (before)": (("phash", 1.0),), "+ rank pHash": HASH_VIEWS[:2], "+ centre crops (now)": HASH_VIEWS}
    rows = {name: evaluate(base, copies, views) for name, views in recipes.items()}
    width = max(map(len, ALTERATIONS)) + 2
    print(f"{'recall (copy grouped with its original)':<{width}}" + "".join(f"{r:>24}" for r in rows))
    for alt in ALTERATIONS:
        print(f"{alt:<{width}}" + "".join(f"{v['recall'][alt]:>24.3f}" for v in rows.values()))
    mean = {r: np.mean(list(v["recall"].values())) for r, v in rows.items()}
    print(f"{'mean recall':<{width}}" + "".join(f"{mean[r]:>24.3f}" for r in rows))
    pairs = len(ALTERATIONS) * n * (n - 1)  # unrelated pairs among originals and among copies, every alteration
    print(f"{'false-merged unrelated pairs':<{width}}" +
          "".join(f"{v['false_pairs']:>14d} of {pairs:<7d}" for v in rows.values()))
    print(f"{'images merged with an unrelated one':<{width}}" + "".join(f"{v['merged_share']:>24.3f}" for v in rows.values()))
    print(f"{'grouping time (s)':<{width}}" + "".join(f"{v['seconds']:>24.2f}" for v in rows.values()))


if __name__ == "__main__":
    main()
