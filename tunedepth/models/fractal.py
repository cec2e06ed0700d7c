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

from tunedepth.cache import cache_dir
from tunedepth.errors import ConfigError
from tunedepth.models.engine import MEAN, STD, InputFn, train_one_epoch
from tunedepth.models.registry import BackboneSpec
from tunedepth.models.weights import SourceWeights, norm_from_meta

MAX_MAPS = 4
FILL_MIN = 0.08  # minimum fraction of a 32x32 canvas covered: FractalDB's filling-rate filter
WEIGHTS = (0.8, 0.9, 1.1, 1.2)  # FractalDB-style instance variation: one parameter re-weighted
RENDER_BUDGET = 8_000_000  # chaos-game points rendered at once (images x points per image)


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
    chunk = max(1, RENDER_BUDGET // max(points, 1))  # bounded memory at 224px: render a chunk of images at a time
    shape = np.concatenate([render_ifs(maps[i : i + chunk], size, points, rng) for i in range(0, n, chunk)])
    shape = np.where(rng.random(n)[:, None, None] < 0.5, shape[:, :, ::-1], shape)
    colour = rng.uniform(0.35, 1.0, size=(n, 3, 1, 1))
    images = (shape[:, None] * colour * 255).round().astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)


FRACTAL_VERSION = 2  # bump when rendering or pretraining changes: old cache files are then not reused


@dataclass(frozen=True)
class FractalRecipe:
    """How the fractal source is made. Every field is part of the cache key."""

    classes: int = 32
    per_class: int = 64
    epochs: int = 12
    optimizer: str = "adamw"  # "adamw" or "sgd" (momentum 0.9, nesterov, 1 epoch warmup); cosine schedule
    lr: float = 1e-3  # AdamW: SGD from random init dies on the BN-free tiny AlexNet (all ReLUs off)
    weight_decay: float = 1e-4
    batch_size: int = 64
    points: int = 2000  # chaos-game points per image at 64x64; scaled with the image area for other sizes
    # FractalDB's training practices, off by default: on the demo they did not help transfer (README, bench/)
    augment: bool = False  # random resized crop (area 0.35-1) + horizontal flip per sample
    standardize: bool = False  # inputs standardised by the fractal data's own mean/std (else the engine's)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"fractal recipe optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if min(self.classes, self.per_class, self.epochs, self.batch_size, self.points) < 1 or self.classes < 2:
            raise ConfigError(f"fractal recipe needs >= 2 classes and positive sizes, got {self}")

    @classmethod
    def smoke(cls, seed: int = 0) -> "FractalRecipe":
        return cls(classes=16, per_class=32, epochs=4, seed=seed)

    def points_for(self, size: int) -> int:
        return max(1, round(self.points * (size / 64) ** 2))


def fractal_cache_path(spec: BackboneSpec, recipe: FractalRecipe) -> Path:
    key = json.dumps({"backbone": spec.name, "groups": spec.groups, "size": spec.input_size,
                      "recipe": dataclasses.asdict(recipe), "version": FRACTAL_VERSION}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "sources" / f"{spec.name}-fractal-{digest}.pt"


def random_resized_crop(x: torch.Tensor, g: torch.Generator, min_scale: float = 0.35) -> torch.Tensor:
    """Per-sample random crop (area ``min_scale``-1, square) resized back, and a random horizontal flip."""
    n = x.shape[0]
    side = torch.sqrt(min_scale + (1 - min_scale) * torch.rand(n, generator=g))
    shift = (1 - side)[:, None] * (2 * torch.rand(n, 2, generator=g) - 1)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = side * flip, side
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def pixel_mean_std(x: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of uint8 images in [0, 1] units, from their histogram (no float copy)."""
    counts = torch.bincount(x.flatten(), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    mean = float((counts * values).sum() / counts.sum())
    var = float((counts * (values - mean) ** 2).sum() / counts.sum())
    return mean, max(var, 1e-12) ** 0.5


def _fractal_inputs(x: torch.Tensor, mean: float, std: float, augment: torch.Generator | None) -> InputFn:
    """The engine's ``InputFn`` of the fractal images: [0, 1], optionally a random resized crop, standardised."""
    def inputs(idx: torch.Tensor, view: torch.Tensor | None = None) -> torch.Tensor:
        xb = x[idx].float() / 255
        if augment is not None:
            xb = random_resized_crop(xb, augment)
        return (xb - mean) / std
    return inputs


def _optimizer(model: torch.nn.Module, recipe: FractalRecipe, n: int):
    """The recipe's optimizer and its per-step schedule: cosine, after one epoch of linear warmup for SGD."""
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                              weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    per_epoch = math.ceil(n / recipe.batch_size)
    steps = recipe.epochs * per_epoch
    warmup = min(per_epoch, steps // 10) if recipe.optimizer == "sgd" else 0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / (warmup + 1) if s < warmup else 0.5 * (1 + math.cos(math.pi * s / steps)))
    return opt, sched


def pretrain_fractal(spec: BackboneSpec, recipe: FractalRecipe, log: Callable[[str], None] = print) -> dict:
    """Train ``spec`` on fractal categories; returns ``{"state_dict", "meta"}`` (head included)."""
    t0 = time.time()
    x, y = fractal_dataset(recipe.classes, recipe.per_class, spec.input_size, recipe.seed,
                           points=recipe.points_for(spec.input_size))
    mean, std = pixel_mean_std(x) if recipe.standardize else (MEAN, STD)
    log(f"fractal data: {x.shape[0]} images at {spec.input_size}px ({time.time() - t0:.1f}s)")
    torch.manual_seed(recipe.seed)
    model = spec.build(recipe.classes)
    opt, sched = _optimizer(model, recipe, x.shape[0])
    g = torch.Generator().manual_seed(recipe.seed)
    inputs = _fractal_inputs(x, mean, std, g if recipe.augment else None)
    correct = [0]

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # counts right answers on the way
        correct[0] += int((logits.argmax(1) == target).sum())
        return F.cross_entropy(logits, target)

    for epoch in range(recipe.epochs):
        correct[0] = 0
        loss = train_one_epoch(model, inputs, y, opt, loss_fn, recipe.batch_size, g, lr_scheduler=sched)
        acc = correct[0] / x.shape[0]
        log(f"fractal pretraining of {spec.name}: epoch {epoch + 1}/{recipe.epochs}, loss {loss:.3f}, "
            f"train accuracy {acc:.2f}")
    meta = {"source": "fractal", "backbone": spec.name, "recipe": dataclasses.asdict(recipe), "input_mean": mean,
            "input_std": std, "final_train_loss": loss, "final_train_accuracy": acc,
            "seconds": round(time.time() - t0, 1), "version": FRACTAL_VERSION}
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
                    force: bool = False) -> tuple[SourceWeights, Path]:
    """The fractal-pretrained state_dict of ``spec`` (from the cache, or pretrained now and cached) and its file;
    the weights carry the input normalisation of their pretraining (``standardize``: the fractal data's own)."""
    if spec.output != "label":  # FractalDB pretraining is classification of fractal categories
        raise ConfigError(f"source fractal pretrains a classifier; backbone {spec.name!r} outputs per-pixel masks: "
                          f"use --source file:PATH (a state_dict saved from {spec.name}) or --depths scratch")
    path = fractal_cache_path(spec, recipe)
    if path.exists() and not force:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            log(f"fractal source for {spec.name}: cached {path}")
            return SourceWeights(blob["state_dict"], norm_from_meta(blob.get("meta"))), path
        except Exception as e:  # a corrupt cache file is recomputed, not fatal
            log(f"fractal source cache {path} unreadable ({e.__class__.__name__}); pretraining again")
    log(f"fractal source for {spec.name}: pretraining once ({recipe.classes} categories x {recipe.per_class}, "
        f"{recipe.epochs} epochs), cached at {path}")
    blob = pretrain_fractal(spec, recipe, log)
    atomic_save(blob, path)
    return SourceWeights(blob["state_dict"], norm_from_meta(blob["meta"])), path
