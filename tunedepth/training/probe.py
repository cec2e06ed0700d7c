"""Source check: is a pretrained source's frozen representation any better than random weights on this app?

A linear probe (scikit-learn logistic regression on standardised features) is fitted on the app's training
split to the penultimate features of the network (the input of its head, globally average-pooled if it is a
map), once from the source's weights and once from random-init weights of the same backbone (the same
inputs, normalised as the source expects), and scored on the validation split with the app's own metric.
A source whose probe does no better than random weights' probe gives fine-tuning nothing to build on: the
search's answer then says more about the source than about depth (README, "Source check").

For a segmentation network (output "mask") the probe is per pixel: its features are the head's inputs, i.e.
the deepest skip levels the decoder reads (``PIXEL_PROBE_LEVELS`` encoder feature maps, resampled to 1/4 of
the input size and concatenated), a logistic regression is fitted to ``PIXEL_PROBE_TRAIN`` sampled training pixels,
and the
validation label maps it predicts (at 1/4 size, against the masks sampled there) are scored by the mean
foreground Dice per image (``metric`` "dice").

Cheap: two forward passes over train + validation and two small logistic regressions (seconds on a CPU).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from tunedepth.apps import App
from tunedepth.data import SplitData
from tunedepth.errors import ConfigError
from tunedepth.metrics.mode import Mode
from tunedepth.models.engine import Norm, to_input
from tunedepth.models.registry import BackboneSpec
from tunedepth.models.sources import load_pretrained
from tunedepth.models.weights import input_norm


@dataclass
class SourceCheck:
    source: str
    backbone: str
    app: str
    metric: str
    mode: str
    features: int  # width of the probed representation
    n_train: int
    n_val: int
    source_val: float  # validation metric of the probe on the source's features
    random_val: float  # ... on random-init features (seed ``random_seed``)
    random_seed: int
    seconds: float

    @property
    def better_than_random(self) -> bool:
        return Mode(self.mode).better(self.source_val, self.random_val)

    def to_dict(self) -> dict:
        return {**asdict(self), "better_than_random": self.better_than_random}


def head_module(model: nn.Module, spec: BackboneSpec) -> nn.Module:
    """The module of the head group (its first prefix): its input is the penultimate representation."""
    return model.get_submodule(dict(spec.groups)[spec.head][0])


@torch.no_grad()
def penultimate_features(model: nn.Module, spec: BackboneSpec, x_uint8: torch.Tensor, norm: Norm | None,
                         batch_size: int = 256) -> np.ndarray:
    """(N, D) inputs of the head for uint8 images ``x_uint8`` (eval mode; maps pooled to vectors)."""
    captured: list[torch.Tensor] = []
    hook = head_module(model, spec).register_forward_pre_hook(lambda m, args: captured.append(args[0].detach()))
    model.eval().to(memory_format=torch.channels_last)  # as trials run: faster convolutions on the CPU too
    try:
        for i in range(0, x_uint8.shape[0], batch_size):
            model(to_input(x_uint8[i : i + batch_size], norm).contiguous(memory_format=torch.channels_last))
    finally:
        hook.remove()
    f = torch.cat([c.flatten(2).mean(-1) if c.dim() > 2 else c.flatten(1) for c in captured])
    return f.float().numpy()


PIXEL_STRIDE = 4  # the pixel probe works on the 1/4-size grid (stride-4 encoder maps need no resampling)
PIXEL_PROBE_TRAIN = 5000  # training pixels (sampled) the pixel probe is fitted on
PIXEL_PROBE_LEVELS = 3  # the deepest skip levels probed (strides 8, 16, 32): the shallow ones pass intensities
# through even when random, so probing them says little about what pretraining learnt


@torch.no_grad()
def skip_features(model: nn.Module, spec: BackboneSpec, x_uint8: torch.Tensor, norm: Norm | None,
                  batch_size: int = 64) -> torch.Tensor:
    """(N, D, H/4, W/4): the deepest ``PIXEL_PROBE_LEVELS`` feature maps the head (decoder) reads, resampled to
    1/4 size and concatenated."""
    import torch.nn.functional as F

    captured: list[torch.Tensor] = []
    size = (x_uint8.shape[-2] // PIXEL_STRIDE, x_uint8.shape[-1] // PIXEL_STRIDE)

    def grab(module, args):
        maps = list(args[0])[-PIXEL_PROBE_LEVELS:] if isinstance(args[0], (list, tuple)) else [args[0]]
        captured.append(torch.cat([F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False)
                                   for m in maps], dim=1))

    hook = head_module(model, spec).register_forward_pre_hook(grab)
    model.eval()
    try:
        for i in range(0, x_uint8.shape[0], batch_size):
            model(to_input(x_uint8[i : i + batch_size], norm))
    finally:
        hook.remove()
    return torch.cat(captured)


def pixel_probe_metric(data: SplitData, train_f: torch.Tensor, val_f: torch.Tensor, n_classes: int,
                       seed: int = 0) -> float:
    """Mean foreground Dice of validation label maps predicted, pixel by pixel, by a logistic regression fitted
    on sampled training pixels (all at 1/4 size; unannotated pixels are neither fitted nor scored)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tunedepth.metrics.segmentation import MASK_IGNORE, compute_mask_dice

    o = PIXEL_STRIDE // 2
    y_train = data.targets("train")[:, o::PIXEL_STRIDE, o::PIXEL_STRIDE].numpy().astype(np.int64)
    y_val = data.targets("val")[:, o::PIXEL_STRIDE, o::PIXEL_STRIDE].numpy().astype(np.int64)
    f = train_f.permute(0, 2, 3, 1).reshape(-1, train_f.shape[1]).numpy()
    y = y_train.reshape(-1)
    keep = np.flatnonzero(y != MASK_IGNORE)
    rng = np.random.default_rng(seed)
    pick = rng.choice(keep, size=min(PIXEL_PROBE_TRAIN, len(keep)), replace=False)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
    clf.fit(np.nan_to_num(f[pick]), y[pick])
    fv = val_f.permute(0, 2, 3, 1).reshape(-1, val_f.shape[1]).numpy()
    pred = clf.predict(np.nan_to_num(fv)).reshape(y_val.shape)
    dice = compute_mask_dice(pred, y_val, n_classes)
    return float(np.nanmean(dice)) if np.isfinite(dice).any() else float("nan")


def probe_metric(app: App, data: SplitData, train_f: np.ndarray, val_f: np.ndarray) -> float:
    """Validation metric of a logistic regression fitted on standardised training features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = data.train_y.numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    clf.fit(np.nan_to_num(train_f), y)
    probs = np.zeros((len(val_f), data.num_classes or app.num_classes))
    probs[:, clf.classes_] = clf.predict_proba(np.nan_to_num(val_f))
    meta = {k: v.cpu().numpy() for k, v in (data.val_meta or {}).items()}
    return float(app.compute_metric(data.val_y.numpy(), probs, meta))


def check_source(app: App, spec: BackboneSpec, data: SplitData, source: str, weights: dict | None,
                 random_seed: int = 0) -> SourceCheck:
    """Linear probe of ``source``'s frozen features vs random-init features, scored on validation (per pixel,
    by Dice, for a segmentation network)."""
    pixels = spec.output == "mask" and app.target == "mask"
    if not pixels and (spec.output != "label" or app.target != "label"):
        raise ConfigError(f"the source check needs backbone {spec.name!r} and app {app.name!r} to predict the same "
                          "kind of target")
    if weights is None:
        raise ConfigError("the source check needs a pretrained source (not scratch): pass --source")
    t0 = time.time()
    norm = input_norm(weights)
    n_classes = data.num_classes or app.num_classes
    scores = []
    for pretrained in (True, False):
        torch.manual_seed(random_seed)
        model = spec.build(n_classes)
        if pretrained:
            load_pretrained(model, spec, weights)
        if pixels:
            f_train, f_val = (skip_features(model, spec, getattr(data, f"{s}_x"), norm) for s in ("train", "val"))
            scores.append(pixel_probe_metric(data, f_train, f_val, n_classes, random_seed))
        else:
            f_train, f_val = (penultimate_features(model, spec, getattr(data, f"{s}_x"), norm)
                              for s in ("train", "val"))
            scores.append(probe_metric(app, data, f_train, f_val))
    metric, mode = ("dice", "max") if pixels else (app.metric, app.mode)
    return SourceCheck(source, spec.name, app.name, metric, mode, f_train.shape[1], len(data.train_y),
                       len(data.val_y), scores[0], scores[1], random_seed, round(time.time() - t0, 1))
