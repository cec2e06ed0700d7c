"""The ``fractal`` source: FractalDB-style categories of iterated-function-system fractals, and pretraining on them.

Kataoka et al. (ACCV 2020) pretrain CNNs on fractal categories instead of natural images: a category is
an IFS (a few random affine maps, kept if its attractor fills enough of the canvas), its instances are
renderings with one parameter re-weighted, in a random colour, randomly flipped. Everything here is
deterministic from a seed and needs no files or network. ``fractal_weights`` pretrains a backbone once
per (backbone, recipe, code version) and caches the weights under ``$TUNEDEPTH_CACHE`` (default
``~/.cache/tunedepth``) by a hash of that content: the first run pays for it, later runs load the file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from trainables.engine import train_one_epoch
from trainables.models.backbones import BackboneSpec

MAX_MAPS = 4
FILL_MIN = 0.08  # minimum fraction of a 32x32 canvas covered: FractalDB's filling-rate filter
WEIGHTS = (0.8, 0.9, 1.1, 1.2)  # FractalDB-style instance variation: one parameter re-weighted


def random_ifs(rng: np.random.Generator) -> np.ndarray:
    """An IFS of 2-4 contractive affine maps as a (MAX_MAPS, 7) array: rows (a, b, c, d, e, f, p).

    x' = [[a b][c d]] x + (e, f), chosen with probability p (proportional to |det|; 0 for unused rows).
    """
    n_maps = int(rng.integers(2, MAX_MAPS + 1))
    maps = np.zeros((MAX_MAPS, 7))
    maps[:n_maps, :6] = rng.uniform(-1.0, 1.0, size=(n_maps, 6))
    for m in maps[:n_maps]:  # contractive linear parts (spectral norm 0.35-0.85): the attractor exists
        lin = m[:4].reshape(2, 2)
        m[:4] = (lin * rng.uniform(0.35, 0.85) / max(np.linalg.norm(lin, 2), 1e-6)).ravel()
    det = np.abs(maps[:n_maps, 0] * maps[:n_maps, 3] - maps[:n_maps, 1] * maps[:n_maps, 2]) + 1e-3
    maps[:n_maps, 6] = det / det.sum()
    return maps


def render_ifs(maps: np.ndarray, size: int, points: int, rng: np.random.Generator) -> np.ndarray:
    """Render a batch of IFS ``maps`` (N, MAX_MAPS, 7) as binary point images (N, size, size).

    The chaos game runs for all images at once: vectorised over images, sequential over points.
    """
    n = maps.shape[0]
    cum = np.cumsum(maps[:, :, 6], axis=1)
    rows = np.arange(n)
    xy = np.zeros((n, 2))
    coords = np.empty((points, n, 2), dtype=np.float32)
    burn_in = 20
    for t in range(points + burn_in):
        choice = (rng.random(n)[:, None] > cum).sum(axis=1).clip(max=MAX_MAPS - 1)
        m = maps[rows, choice]
        xy = np.stack([m[:, 0] * xy[:, 0] + m[:, 1] * xy[:, 1] + m[:, 4],
                       m[:, 2] * xy[:, 0] + m[:, 3] * xy[:, 1] + m[:, 5]], axis=1)
        if t >= burn_in:
            coords[t - burn_in] = xy
    lo = coords.min(axis=0)
    span = np.maximum((coords.max(axis=0) - lo).max(axis=1, keepdims=True), 1e-6)  # keep the aspect ratio
    pix = ((coords - lo) / span * (size - 1)).round().astype(np.int64).clip(0, size - 1)
    flat = rows[None, :] * size * size + pix[..., 1] * size + pix[..., 0]
    img = np.bincount(flat.ravel(), minlength=n * size * size).reshape(n, size, size)
    return (img > 0).astype(np.float32)


def fractal_categories(num_classes: int, rng: np.random.Generator) -> list[np.ndarray]:
    categories: list[np.ndarray] = []
    while len(categories) < num_classes:
        maps = random_ifs(rng)
        if render_ifs(maps[None], 32, 1000, rng).mean() >= FILL_MIN:
            categories.append(maps)
    return categories


def fractal_dataset(num_classes: int, per_class: int, size: int, seed: int,
                    points: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_classes`` IFS categories x ``per_class`` instances: uint8 images (N, 3, size, size), labels (N,)."""
    rng = np.random.default_rng(seed)
    categories = fractal_categories(num_classes, rng)
    labels = np.repeat(np.arange(num_classes), per_class)
    maps = np.stack([categories[c] for c in labels])
    n = labels.size
    n_maps = (maps[:, :, 6] > 0).sum(axis=1)
    which_map = (rng.random(n) * n_maps).astype(int)
    which_param = rng.integers(0, 6, size=n)
    maps[np.arange(n), which_map, which_param] *= rng.choice(WEIGHTS, size=n)
    shape = render_ifs(maps, size, points, rng)
    shape = np.where(rng.random(n)[:, None, None] < 0.5, shape[:, :, ::-1], shape)
    colour = rng.uniform(0.35, 1.0, size=(n, 3, 1, 1))
    images = (shape[:, None] * colour * 255).round().astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)


FRACTAL_VERSION = 1  # bump when rendering or pretraining changes: old cache files are then not reused


@dataclass(frozen=True)
class FractalRecipe:
    classes: int = 32
    per_class: int = 64
    epochs: int = 12
    lr: float = 1e-3  # AdamW: plain SGD stalls on a BN-free AlexNet from random init
    batch_size: int = 64
    seed: int = 0

    @classmethod
    def smoke(cls, seed: int = 0) -> "FractalRecipe":
        return cls(classes=16, per_class=32, epochs=4, seed=seed)


def cache_dir() -> Path:
    return Path(os.environ.get("TUNEDEPTH_CACHE", Path.home() / ".cache" / "tunedepth"))


def fractal_cache_path(spec: BackboneSpec, recipe: FractalRecipe) -> Path:
    key = json.dumps({"backbone": spec.name, "groups": spec.groups, "size": spec.input_size,
                      "recipe": dataclasses.asdict(recipe), "version": FRACTAL_VERSION}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "sources" / f"{spec.name}-fractal-{digest}.pt"


def pretrain_fractal(spec: BackboneSpec, recipe: FractalRecipe, log: Callable[[str], None] = print) -> dict:
    """Train ``spec`` on fractal categories; returns ``{"state_dict", "meta"}`` (head included)."""
    t0 = time.time()
    x, y = fractal_dataset(recipe.classes, recipe.per_class, spec.input_size, recipe.seed)
    torch.manual_seed(recipe.seed)
    model = spec.build(recipe.classes)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    steps = recipe.epochs * math.ceil(x.shape[0] / recipe.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    g = torch.Generator().manual_seed(recipe.seed)
    for epoch in range(recipe.epochs):
        loss = train_one_epoch(model, x, y, opt, F.cross_entropy, recipe.batch_size, g, sched)
        log(f"fractal pretraining of {spec.name}: epoch {epoch + 1}/{recipe.epochs}, loss {loss:.3f}")
    meta = {"source": "fractal", "backbone": spec.name, "recipe": dataclasses.asdict(recipe),
            "final_train_loss": loss, "seconds": round(time.time() - t0, 1), "version": FRACTAL_VERSION}
    return {"state_dict": model.state_dict(), "meta": meta}


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fractal_weights(spec: BackboneSpec, recipe: FractalRecipe, log: Callable[[str], None] = print,
                    force: bool = False) -> tuple[dict[str, torch.Tensor], Path]:
    """The fractal-pretrained state_dict of ``spec`` (from the cache, or pretrained now and cached) and its file."""
    path = fractal_cache_path(spec, recipe)
    if path.exists() and not force:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            log(f"fractal source for {spec.name}: cached {path}")
            return blob["state_dict"], path
        except Exception as e:  # a corrupt cache file is recomputed, not fatal
            log(f"fractal source cache {path} unreadable ({e.__class__.__name__}); pretraining again")
    log(f"fractal source for {spec.name}: pretraining once ({recipe.classes} categories x {recipe.per_class}, "
        f"{recipe.epochs} epochs), cached at {path}")
    blob = pretrain_fractal(spec, recipe, log)
    atomic_save(blob, path)
    return blob["state_dict"], path
