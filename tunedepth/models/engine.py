"""The training core: one epoch (or epoch-equivalent of optimizer steps) of SGD and evaluation. Knows nothing about Ray.

A model's input comes from an ``InputFn``: ``inputs(idx, view)`` returns the network input of samples
``idx`` (``view``: which augmented view of each sample, or None). ``image_inputs`` turns uint8 images into
normalised floats; ``tunedepth.training.features`` serves a frozen prefix's cached outputs through the same
interface, so the loop below is the same with and without the cache, and so are its numbers.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from tunedepth.errors import DivergedError
from tunedepth.settings import AUGMENTS

MEAN, STD = 0.5, 0.25  # inputs for backbones pretrained here (fractal) or from scratch
IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # what torchvision's ImageNet weights expect
Norm = tuple  # (mean, std): floats or per-channel sequences
InputFn = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]

# augmentation -> number of views; view v is the image mirrored left-right when v is odd, then turned v // 2
# quarter turns (view 1, the mirror, is "hflip"'s second view; the 8 views of "flip-rotate" are all the
# mirrors and rotations of a square). A finite set of views is what lets a frozen prefix cache every
# view (tunedepth.training.features) and stay exact.
AUGMENT_VIEWS = {"none": 1, "hflip": 2, "flip-rotate": 8}
assert tuple(AUGMENT_VIEWS) == AUGMENTS


def to_input(x_uint8: torch.Tensor, norm: Norm | None = None) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> float32 network input, normalised by ``norm`` = (mean, std) in [0, 1] units."""
    mean, std = norm or (MEAN, STD)
    x = x_uint8.float() / 255.0
    if isinstance(mean, (int, float)):
        return (x - mean) / std
    shape = (1, -1, 1, 1)
    return (x - torch.tensor(mean, device=x.device).view(shape)) / torch.tensor(std, device=x.device).view(shape)


def apply_views(x: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
    """Each square image of ``x`` (N, C, H, W) as its view ``view[i]`` (see ``AUGMENT_VIEWS``): 0 = itself,
    1 = mirrored left-right (the two views of "hflip"), 2-7 = the other mirrors and quarter turns."""
    view = view.to(x.device).long()
    if view.numel() == 0 or int(view.max()) <= 1:  # hflip: one select, no rotation
        flip = view.bool().view(-1, *([1] * (x.dim() - 1)))
        return torch.where(flip, x.flip(-1), x)
    out = x.clone()
    for v in view.unique().tolist():
        sel = view == v
        out[sel] = _dihedral(x[sel], v)
    return out


def _dihedral(x: torch.Tensor, v: int) -> torch.Tensor:
    """View ``v`` of images ``x``: mirrored left-right if v is odd, then turned (v // 2) quarter turns."""
    y = x.flip(-1) if v % 2 else x
    return torch.rot90(y, v // 2, dims=(-2, -1)) if v // 2 else y


def image_inputs(x_uint8: torch.Tensor, norm: Norm | None = None, channels_last: bool = False) -> InputFn:
    """The ``InputFn`` of uint8 images: index, take each sample's view, normalise."""
    def inputs(idx: torch.Tensor, view: torch.Tensor | None = None) -> torch.Tensor:
        xb = x_uint8[idx]
        if view is not None:
            xb = apply_views(xb, view)
        out = to_input(xb, norm)
        return out.contiguous(memory_format=torch.channels_last) if channels_last and out.dim() == 4 else out
    return inputs


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when ``enabled`` (no loss scaling needed); a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_one_epoch(
    model: nn.Module,
    inputs: InputFn,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch_size: int,
    generator: torch.Generator,
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    set_mode: Callable[[], None] | None = None,
    views: int = 1,
    amp: bool = False,
    steps: int | None = None,
) -> float:
    """``steps`` optimizer steps (default: one pass over the samples) in shuffled mini-batches, each sample with
    a random view of ``views``; mean loss. More steps than one pass holds walk consecutive reshuffled passes, so
    a small data budget gets as many optimizer steps as a large one (an "epoch-equivalent")."""
    set_mode() if set_mode is not None else model.train()
    total, count = 0.0, 0
    for step, (idx, view) in enumerate(_batches(y.shape[0], batch_size, generator, views, steps)):
        with autocast(y.device, amp):
            logits = model(inputs(idx, view))
        loss = loss_fn(logits.float(), y[idx])
        if not torch.isfinite(loss):
            lr = optimizer.param_groups[0]["lr"]
            raise DivergedError(
                f"training loss is {loss.item()} at step {step} (lr {lr:.3g}); lower the learning rate"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if lr_scheduler is not None:
            lr_scheduler.step()
        total += loss.item() * idx.numel()
        count += idx.numel()
    return total / max(count, 1)


def _batches(n: int, batch_size: int, generator: torch.Generator, views: int, steps: int | None):
    """(indices, views) of ``steps`` mini-batches (default one pass): reshuffled passes over ``n`` samples, the
    last batch of a pass possibly smaller."""
    per_pass = math.ceil(n / batch_size)
    steps = per_pass if steps is None else steps
    done = 0
    while done < steps:
        order = torch.randperm(n, generator=generator)
        view_of = torch.randint(views, (n,), generator=generator) if views > 1 else None
        for start in range(0, n, batch_size):
            if done == steps:
                return
            view = view_of[start : start + batch_size] if view_of is not None else None
            yield order[start : start + batch_size], view
            done += 1


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: InputFn, n: int, batch_size: int = 256, amp: bool = False,
                   device: torch.device | None = None) -> torch.Tensor:
    """Logits (N, C) of samples 0..n-1 in eval mode (view 0: the images themselves)."""
    model.eval()
    out = []
    for i in range(0, n, batch_size):
        with autocast(device or torch.device("cpu"), amp):
            out.append(model(inputs(torch.arange(i, min(i + batch_size, n)), None)).float())
    return torch.cat(out) if out else torch.empty(0)


def evaluate(
    model: nn.Module,
    inputs: InputFn,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    metric_fn: Callable[[np.ndarray, np.ndarray, dict], float],
    meta: dict[str, torch.Tensor] | None = None,
    amp: bool = False,
) -> dict[str, float]:
    """One forward pass over a split: ``{"metric": metric_fn(labels, probs, meta), "loss": mean loss}``, plus
    what the metric was computed from (``labels``, ``probs``, ``meta`` as numpy) for its noise estimate."""
    logits = predict_logits(model, inputs, y.shape[0], amp=amp, device=y.device)
    loss = float(loss_fn(logits, y))
    if not np.isfinite(loss):
        raise DivergedError(f"evaluation loss is {loss}: the model diverged; lower the learning rate")
    probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
    meta_np = {k: v.cpu().numpy() for k, v in (meta or {}).items()}
    labels = y.cpu().numpy()
    return {"metric": metric_fn(labels, probs, meta_np), "loss": loss, "labels": labels, "probs": probs,
            "meta": meta_np}
