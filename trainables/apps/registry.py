"""The application registry: app name -> frozen description of its data, head, loss, metric and mode.

Tests parametrize over ``list_apps()``; the trainable and the search never branch on an app's name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from trainables.data.splits import SplitData
from trainables.data.units import KINDS, RawSet, Samples
from trainables.errors import ConfigError


@dataclass(frozen=True)
class DataSize:
    """How many units (frames, volumes, images) an embedded generator makes, before the 60/20/20 split.

    With real data, ``smoke`` caps the units used by a smoke run; ``full`` is ignored (all units are used).
    """

    full: int
    smoke: int


@dataclass(frozen=True)
class App:
    name: str
    description: str
    num_classes: int
    metric: str  # name of the validation metric reported to Tune, e.g. "auc"
    mode: str  # "max" or "min"
    build_data: Callable[[int, int, int], SplitData]  # (n units, image_size, seed) -> splits of the embedded data
    # (labels (N,), class probabilities (N, C), per-sample meta arrays) -> the validation metric
    compute_metric: Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], float]
    sizes: DataSize
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(default=F.cross_entropy)
    # every metric reported for a split (the validation metric among them); None = just ``metric``
    compute_metrics: Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], dict[str, float]] | None = None
    # optional vectorised ``compute_metric`` for the test-set bootstrap: (labels, probs, meta, counts (B, N))
    # -> the metric under each row of per-sample counts (B,), or None where it does not apply (then, and when
    # the field is None, compute_metric is called once per resample)
    batched_metric: Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray], np.ndarray], np.ndarray] | None = None
    kind: str = "classification"  # "classification" | "detection" | "segmentation": picks the real-data loaders
    unit: str = "image"  # what meta["group"] holds: the unit a clinician reads (frame, volume, image)
    head: str = "the backbone's classifier (fc8) with num_classes outputs, softmax + cross-entropy"
    loaders: tuple[str, ...] = ()  # real-data layouts accepted (see trainables.loaders.LAYOUTS)
    generate: Callable[[int, int, int], RawSet] | None = None  # (n units, image_size, seed) -> embedded units
    # (units of one split, split name, image_size, seed, training units) -> samples with meta["unit"]
    make_samples: Callable[[RawSet, str, int, int, RawSet], Samples] | None = None
    neg_per_pos: float = 0.0  # default negative down-sampling of the training split (0 = keep every sample)
    # "label": one class per sample, for backbones with output "label"; "mask": per-pixel targets (Samples.mask,
    # SplitData.*_mask) for backbones with output "mask" (the trial trains and validates on the masks)
    target: str = "label"
    # target "mask": (masks (N, H, W), probs (N, C, H, W), meta) -> (probs (N, C), meta + per-sample summary):
    # what predictions.parquet keeps of a whole-image prediction, enough for compute_metric to score it again
    summarize: Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], tuple[np.ndarray, dict]] | None = None

    def all_metrics(self, labels: np.ndarray, probs: np.ndarray, meta: Mapping[str, np.ndarray]) -> dict[str, float]:
        if self.compute_metrics is None:
            return {self.metric: self.compute_metric(labels, probs, meta)}
        return self.compute_metrics(labels, probs, meta)


APPS: dict[str, App] = {}
TARGETS = ("label", "mask")


def check_backbone(app: App, spec) -> None:
    """A one-line ConfigError, before any data or trial, when ``spec``'s output does not fit ``app``'s target."""
    if app.target == getattr(spec, "output", "label"):
        return
    from trainables.models.backbones import BACKBONES  # lazy: the analysis reads apps without loading models

    fits = sorted(name for name, s in BACKBONES.items() if s.output == app.target)
    alt = sorted(name for name, a in APPS.items() if a.target != app.target and a.kind == app.kind)
    what = "per-pixel masks (whole images)" if app.target == "mask" else "one class per sample"
    hint = f" (or keep --backbone {spec.name} with app {' or '.join(alt)})" if alt else ""
    raise ConfigError(f"app {app.name!r} predicts {what} but backbone {spec.name!r} outputs "
                      f"{'per-pixel logits' if spec.output == 'mask' else 'class logits'}; use --backbone "
                      f"{' or '.join(fits)}{hint}")


def register_app(app: App) -> App:
    if app.name in APPS:
        raise ValueError(f"app {app.name!r} registered twice")
    if app.mode not in ("max", "min"):
        raise ValueError(f"app {app.name!r}: mode must be 'max' or 'min'")
    if app.kind not in KINDS:
        raise ValueError(f"app {app.name!r}: kind must be one of {KINDS}")
    if app.target not in TARGETS or (app.target == "mask") != (app.summarize is not None):
        raise ValueError(f"app {app.name!r}: target must be one of {TARGETS}; a mask app needs summarize")
    APPS[app.name] = app
    return app


def get_app(name: str) -> App:
    try:
        return APPS[name]
    except KeyError:
        raise ConfigError(f"unknown app {name!r}; choose one of: {', '.join(sorted(APPS))}") from None


def list_apps() -> list[str]:
    return sorted(APPS)
