"""Pretrained-weight sources, chosen by name: ``fractal`` (formula-driven, offline) or ``scratch``.

``fractal`` pretrains the backbone on FractalDB-style categories (see ``trainables.models.fractal``)
and caches the weights under ``$TUNEDEPTH_CACHE`` (default ``~/.cache/tunedepth``), keyed by a hash of
the backbone, the recipe and the code version: the first run pays for it, later runs load the file.
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

import torch
import torch.nn.functional as F
from torch import nn

from trainables.config import ConfigError
from trainables.engine import train_one_epoch
from trainables.models.backbones import BackboneSpec
from trainables.models.fractal import fractal_dataset

FRACTAL_VERSION = 1
SOURCES = ("fractal", "scratch")


@dataclass(frozen=True)
class FractalRecipe:
    classes: int = 32
    per_class: int = 64
    epochs: int = 12
    lr: float = 1e-3  # AdamW: plain SGD stalls on a BN-free AlexNet from random init
    batch_size: int = 64
    seed: int = 0

    @classmethod
    def smoke(cls) -> "FractalRecipe":
        return cls(classes=16, per_class=32, epochs=4)


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


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def get_source_weights(source: str, spec: BackboneSpec, *, smoke: bool = False,
                       log: Callable[[str], None] = print) -> dict[str, torch.Tensor] | None:
    """Pretrained state_dict for ``spec`` from ``source`` (None for scratch); cached where it is computed."""
    if source == "scratch":
        return None
    if source != "fractal":
        raise ConfigError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    recipe = FractalRecipe.smoke() if smoke else FractalRecipe()
    path = fractal_cache_path(spec, recipe)
    if path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            log(f"fractal source for {spec.name}: cached {path}")
            return blob["state_dict"]
        except Exception as e:  # a corrupt cache file is recomputed, not fatal
            log(f"fractal source cache {path} unreadable ({e.__class__.__name__}); pretraining again")
    log(f"fractal source for {spec.name}: pretraining once ({recipe.classes} categories x {recipe.per_class}, "
        f"{recipe.epochs} epochs), cached at {path}")
    blob = pretrain_fractal(spec, recipe, log)
    _atomic_save(blob, path)
    return blob["state_dict"]


def load_pretrained(model: nn.Module, spec: BackboneSpec, state_dict: dict[str, torch.Tensor]) -> None:
    """Load every non-head parameter from ``state_dict``; the head stays freshly initialised."""
    own = model.state_dict()
    body = {k: v for k, v in state_dict.items() if spec.find_group(k) != spec.head}
    missing = [k for k in own if spec.find_group(k) != spec.head and k not in body]
    unexpected = [k for k in body if k not in own]
    wrong = [k for k in body if k in own and own[k].shape != body[k].shape]
    if missing or unexpected or wrong:
        raise ConfigError(
            f"pretrained weights do not fit backbone {spec.name!r}: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, wrong shape {wrong[:5]}; use weights saved from the same backbone"
        )
    model.load_state_dict(body, strict=False)
