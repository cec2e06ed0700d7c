"""The training core: one epoch of SGD and evaluation, on uint8 image tensors. Knows nothing about Ray."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

MEAN, STD = 0.5, 0.25  # inputs for backbones pretrained here (fractal) or from scratch
IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # what torchvision's ImageNet weights expect
Norm = tuple  # (mean, std): floats or per-channel sequences


class DivergedError(RuntimeError):
    """The loss became NaN or infinite."""


def to_input(x_uint8: torch.Tensor, norm: Norm | None = None) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> float32 network input, normalised by ``norm`` = (mean, std) in [0, 1] units."""
    mean, std = norm or (MEAN, STD)
    x = x_uint8.float() / 255.0
    if isinstance(mean, (int, float)):
        return (x - mean) / std
    shape = (1, -1, 1, 1)
    return (x - torch.tensor(mean, device=x.device).view(shape)) / torch.tensor(std, device=x.device).view(shape)


def train_one_epoch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch_size: int,
    generator: torch.Generator,
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    set_mode: Callable[[], None] | None = None,
    norm: Norm | None = None,
) -> float:
    """One pass over ``(x, y)`` in shuffled mini-batches; returns the mean training loss."""
    set_mode() if set_mode is not None else model.train()
    order = torch.randperm(x.shape[0], generator=generator)
    total, count = 0.0, 0
    for start in range(0, order.numel(), batch_size):
        idx = order[start : start + batch_size]
        logits = model(to_input(x[idx], norm))
        loss = loss_fn(logits, y[idx])
        if not torch.isfinite(loss):
            lr = optimizer.param_groups[0]["lr"]
            raise DivergedError(
                f"training loss is {loss.item()} at step {start // batch_size} (lr {lr:.3g}); lower the learning rate"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if lr_scheduler is not None:
            lr_scheduler.step()
        total += loss.item() * idx.numel()
        count += idx.numel()
    return total / max(count, 1)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 256, norm: Norm | None = None) -> torch.Tensor:
    """Logits (N, C) in eval mode."""
    model.eval()
    return torch.cat([model(to_input(x[i : i + batch_size], norm)) for i in range(0, x.shape[0], batch_size)])


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    metric_fn: Callable[[np.ndarray, np.ndarray, dict], float],
    meta: dict[str, torch.Tensor] | None = None,
    norm: Norm | None = None,
) -> dict[str, float]:
    """One forward pass over a split: ``{"metric": metric_fn(labels, probs, meta), "loss": mean loss}``."""
    logits = predict_logits(model, x, norm=norm)
    loss = float(loss_fn(logits, y))
    if not np.isfinite(loss):
        raise DivergedError(f"evaluation loss is {loss}: the model diverged; lower the learning rate")
    probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
    meta_np = {k: v.cpu().numpy() for k, v in (meta or {}).items()}
    return {"metric": metric_fn(y.cpu().numpy(), probs, meta_np), "loss": loss}
