"""Pretrained weights travel with the input normalisation they were trained with: one owner of that pairing.

A ``SourceWeights`` is a state_dict (a plain ``dict`` to every reader) that also carries ``norm`` = (mean, std)
in [0, 1] units, per channel or one float each. Fine-tuning, the frozen-prefix feature cache and the source
check apply exactly this normalisation (``input_norm``); a trial from scratch uses the engine's default.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from tunedepth.models.engine import MEAN, STD, Norm

DEFAULT_NORM: Norm = (MEAN, STD)


class SourceWeights(dict):
    """A state_dict plus ``norm``, the input normalisation the weights expect (pickles with it)."""

    def __init__(self, state: Mapping[str, torch.Tensor], norm: Norm | None = None):
        super().__init__(state)
        self.norm: Norm = _plain(norm) if norm is not None else DEFAULT_NORM


def _plain(norm: Any) -> Norm:
    mean, std = norm

    def as_tuple(v):
        return tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else float(v)
    return (as_tuple(mean), as_tuple(std))


def input_norm(weights: Mapping[str, torch.Tensor] | None) -> Norm:
    """The normalisation fine-tuning from ``weights`` applies (the default for scratch or bare state_dicts)."""
    return getattr(weights, "norm", DEFAULT_NORM)


def norm_from_meta(meta: Mapping[str, Any] | None) -> Norm | None:
    """(input_mean, input_std) saved beside weights (fractal cache files, a run's checkpoints), else None."""
    if isinstance(meta, Mapping) and meta.get("input_mean") is not None and meta.get("input_std") is not None:
        return _plain((meta["input_mean"], meta["input_std"]))
    return None
