"""The application registry: app name -> frozen description of its data, head, loss, metric and mode.

Tests parametrize over ``list_apps()``; the trainable and the search never branch on an app's name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from trainables.config import ConfigError
from trainables.data import SplitData


@dataclass(frozen=True)
class DataSize:
    """How many samples an embedded generator makes (total, before the 60/20/20 split)."""

    full: int
    smoke: int


@dataclass(frozen=True)
class App:
    name: str
    description: str
    num_classes: int
    metric: str  # name of the validation metric reported to Tune, e.g. "auc"
    mode: str  # "max" or "min"
    build_data: Callable[[int, int, int], SplitData]  # (n_samples, image_size, seed) -> splits
    # (labels (N,), class probabilities (N, C), per-sample meta arrays) -> the validation metric
    compute_metric: Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], float]
    sizes: DataSize
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(default=F.cross_entropy)
    # every metric reported for a split (the validation metric among them); None = just ``metric``
    compute_metrics: Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], dict[str, float]] | None = None
    # optional vectorised ``compute_metric`` for the test-set bootstrap: (labels, probs, meta, counts (B, N))
    # -> the metric under each row of per-sample counts (B,); None = call compute_metric once per resample
    batched_metric: Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray], np.ndarray], np.ndarray] | None = None

    def all_metrics(self, labels: np.ndarray, probs: np.ndarray, meta: Mapping[str, np.ndarray]) -> dict[str, float]:
        if self.compute_metrics is None:
            return {self.metric: self.compute_metric(labels, probs, meta)}
        return self.compute_metrics(labels, probs, meta)


APPS: dict[str, App] = {}


def register_app(app: App) -> App:
    if app.name in APPS:
        raise ValueError(f"app {app.name!r} registered twice")
    if app.mode not in ("max", "min"):
        raise ValueError(f"app {app.name!r}: mode must be 'max' or 'min'")
    APPS[app.name] = app
    return app


def get_app(name: str) -> App:
    try:
        return APPS[name]
    except KeyError:
        raise ConfigError(f"unknown app {name!r}; choose one of: {', '.join(sorted(APPS))}") from None


def list_apps() -> list[str]:
    return sorted(APPS)


from trainables.apps import registry as _registry  # noqa: E402,F401  (registers the built-in apps)
