"""Near-duplicate grouping: recall on processed copies and false merges among look-alike images.

Originals are distinct images that look alike, so a false merge is a real risk: ``lookalikes`` draws smooth
brain-MRI-like slices of one family (a head ellipse of random size and place, a bright rim, ventricle-like dark
blobs and brighter lesion-like blobs, smooth texture, noise); ``--family generators`` uses the embedded apps'
generators instead (one colonoscopy frame per video, one intima-media image per patient). Every original gets
one copy per alteration (contrast, gamma, a clinical window, unsharp mask, JPEG re-compression, crops of up to
5% per side, shifts, a combination). The grouping under test (``tunedepth.data.near_duplicate_groups``) runs on
originals and copies together, as ``build_split_data`` does, one alteration at a time (a copy is never linked
to its original through another alteration's copy); then

- recall (per alteration): copies that land in their original's group;
- false merges: the share of originals grouped with another original (or its copy) in any of the runs.

    PYTHONPATH=$PWD python bench/near_duplicates.py [--n 400] [--family lookalikes|generators] [--smoke]
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image, ImageFilter

from tunedepth.data import HASH_VIEWS, merge_groups, near_duplicate_groups, unit_hash_set
from tunedepth.data.structure import structure_pairs, unit_signatures


def lookalikes(n: int, seed: int, size: int = 128) -> list[np.ndarray]:
    """``n`` distinct smooth brain-slice-like uint8 images of one family (independent draws)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        cy, cx = 0.5 + rng.uniform(-0.04, 0.04, 2)
        ay, ax = rng.uniform(0.34, 0.44), rng.uniform(0.28, 0.38)
        r = np.sqrt(((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2)
        head = 1 / (1 + np.exp((r - 1) * 40))
        img = 25 + 95 * head + 60 * np.exp(-((r - 0.95) / 0.04) ** 2)  # tissue and a bright rim (skull)
        for k in range(int(rng.integers(3, 7))):  # ventricle-like dark and lesion-like bright blobs
            by, bx = cy + rng.uniform(-0.6, 0.6) * ay, cx + rng.uniform(-0.6, 0.6) * ax
            s = rng.uniform(0.03, 0.09)
            img += (
                rng.choice([-1, 1])
                * rng.uniform(25, 60)
                * np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * s * s))
                * head
            )
        img += 12 * gaussian_filter(rng.normal(size=(size, size)), 3) * head + rng.normal(0, 2, (size, size))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def generator_images(n: int, seed: int) -> list[np.ndarray]:
    from tunedepth.apps import colonoscopy, intima

    n_col, n_im = n * 2 // 3, n - n * 2 // 3
    col = colonoscopy.generate(n_col * colonoscopy.FRAMES_PER_VIDEO, 96, seed).images[::colonoscopy.FRAMES_PER_VIDEO]
    im = intima.generate(2 * n_im, 96, seed).images[::2]  # one image per patient (patients hold two)
    grey = [x.float().mean(0).numpy() for x in col] + [x[0].float().numpy() for x in im]
    return [g.astype(np.uint8) for g in grey]


def _pil(x: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


def _f(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


def _crop(x: np.ndarray, top: float, left: float, bottom: float | None = None, right: float | None = None):
    """Cut the given fractions off each side, then resize back (a re-framed or re-exported copy)."""
    h, w = x.shape
    bottom, right = top if bottom is None else bottom, left if right is None else right
    box = (round(w * left), round(h * top), w - round(w * right), h - round(h * bottom))
    return _f(_pil(x).crop(box).resize((w, h), Image.BILINEAR))


def _shift(x: np.ndarray, fy: float, fx: float) -> np.ndarray:
    """Content moved by (fy, fx) of the size, the uncovered edge filled by the nearest row/column."""
    h, w = x.shape
    dy, dx = round(h * fy), round(w * fx)
    iy, ix = np.clip(np.arange(h) - dy, 0, h - 1), np.clip(np.arange(w) - dx, 0, w - 1)
    return x[iy][:, ix]


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    _pil(x).save(buf, format="JPEG", quality=quality)
    return _f(Image.open(io.BytesIO(buf.getvalue())))


def _window(x: np.ndarray, lo_p: float, hi_p: float) -> np.ndarray:
    lo, hi = np.percentile(x, (lo_p, hi_p))
    return (np.clip(x, lo, hi) - lo) * 255 / max(hi - lo, 1)


def _unsharp(x: np.ndarray, radius: float, percent: int) -> np.ndarray:
    return _f(_pil(x).filter(ImageFilter.UnsharpMask(radius=radius, percent=percent, threshold=0)))


ALTERATIONS = {
    "contrast x0.6": lambda x: x.mean() + 0.6 * (x - x.mean()),
    "contrast x1.5": lambda x: x.mean() + 1.5 * (x - x.mean()),
    "gamma 0.6": lambda x: 255 * (x / 255.0) ** 0.6,
    "gamma 1.7": lambda x: 255 * (x / 255.0) ** 1.7,
    "window p5-p95": lambda x: _window(x, 5, 95),
    "unsharp r2 150%": lambda x: _unsharp(x, 2, 150),
    "unsharp r4 250%": lambda x: _unsharp(x, 4, 250),
    "jpeg q30": lambda x: _jpeg(x, 30),
    "jpeg q60 twice": lambda x: _jpeg(_jpeg(x, 60), 60),
    "crop 2% per side": lambda x: _crop(x, 0.02, 0.02),
    "crop 5% per side": lambda x: _crop(x, 0.05, 0.05),
    "crop 5% one corner": lambda x: _crop(x, 0.05, 0.05, 0.0, 0.0),
    "shift 3% right": lambda x: _shift(x, 0.0, 0.03),
    "shift 4% diagonal": lambda x: _shift(x, 0.04, -0.04),
    "gamma 1.4 + unsharp + crop 3% + jpeg q50": lambda x: _jpeg(_crop(_unsharp(255 * (x / 255.0) ** 1.4, 2, 120),
                                                                       0.03, 0.03), 50),
}


def make_copies(base: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    return {name: [np.clip(f(x.astype(np.float64)), 0, 255).astype(np.uint8) for x in base]
            for name, f in ALTERATIONS.items()}


def by_hashes(views: tuple):
    return lambda images: near_duplicate_groups(unit_hash_set(images, views))


def by_structure(images: torch.Tensor) -> np.ndarray:
    """The grouping ``build_split_data`` uses (``tunedepth.data.structure``)."""
    return merge_groups(np.arange(len(images)), structure_pairs(unit_signatures(images)))


RECIPES = {"pHash alone": by_hashes((("phash", 1.0),)), "4 hash views (before)": by_hashes(HASH_VIEWS),
           "structure (now)": by_structure}


def evaluate(base: list[np.ndarray], copies: dict[str, list[np.ndarray]], group=by_structure) -> dict:
    """Group the originals with ONE alteration's copies at a time (no help from other copies' chains)."""
    n = len(base)
    recall, merged, secs, hashed = {}, np.zeros(n, dtype=bool), 0.0, 0
    for name, cs in copies.items():
        every = list(base) + list(cs)
        images = (torch.as_tensor(np.stack(every)).float() if len({x.shape for x in every}) == 1
                  else [torch.as_tensor(x).float() for x in every])  # sizes differ: a list, as loaders give
        t0 = time.perf_counter()
        groups = group(images)
        secs, hashed = secs + time.perf_counter() - t0, hashed + len(images)
        recall[name] = float(np.mean(groups[n:] == groups[:n]))
        own = np.r_[np.arange(n), np.arange(n)]  # which original each image is (or is a copy of)
        for g in np.unique(groups):
            members = np.unique(own[groups == g])
            if len(members) > 1:
                merged[members] = True
    return {"recall": recall, "false_merge": float(merged.mean()), "ms_per_1000": 1000 * secs / hashed * 1000}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=400, help="distinct originals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--family", choices=("lookalikes", "generators"), default="lookalikes")
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args()
    n = 40 if a.smoke else a.n
    base = lookalikes(n, a.seed) if a.family == "lookalikes" else generator_images(n, a.seed)
    copies = make_copies(base)
    print(f"{n} distinct {a.family} originals; each alteration's {n} copies grouped with them separately")
    rows = {name: evaluate(base, copies, group) for name, group in RECIPES.items()}
    width = max(map(len, ALTERATIONS)) + 2
    print(f"{'recall (copy grouped with its original)':<{width}}" + "".join(f"{r:>24}" for r in rows))
    for alt in ALTERATIONS:
        print(f"{alt:<{width}}" + "".join(f"{v['recall'][alt]:>24.3f}" for v in rows.values()))
    print(f"{'min recall':<{width}}" + "".join(f"{min(v['recall'].values()):>24.3f}" for v in rows.values()))
    print(f"{'mean recall':<{width}}" + "".join(f"{np.mean(list(v['recall'].values())):>24.3f}" for v in rows.values()))
    print(f"{'originals falsely merged':<{width}}" + "".join(f"{v['false_merge']:>24.3f}" for v in rows.values()))
    print(f"{'hash + group, ms / 1000 images':<{width}}" + "".join(f"{v['ms_per_1000']:>24.0f}" for v in rows.values()))


if __name__ == "__main__":
    main()
