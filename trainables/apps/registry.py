"""Registration of the built-in applications."""
from __future__ import annotations

import numpy as np

from trainables.apps import App, DataSize, register_app
from trainables.apps.colonoscopy import render_frames
from trainables.data import SplitData, make_splits
from trainables.metrics import compute_roc_auc, compute_roc_auc_weighted


def _colonoscopy_data(n: int, size: int, seed: int) -> SplitData:
    images, labels, _ = render_frames(n, size, seed)
    return make_splits(images, labels, seed)


def _positive_auc(labels: np.ndarray, probs: np.ndarray, meta) -> float:
    return compute_roc_auc(labels, probs[:, 1])


def _positive_auc_batched(labels: np.ndarray, probs: np.ndarray, meta, counts: np.ndarray) -> np.ndarray:
    return compute_roc_auc_weighted(labels, probs[:, 1], counts)


register_app(
    App(
        name="colonoscopy-frames",
        description="informative vs non-informative colonoscopy frames (blur, glare, darkness, water); ROC AUC",
        num_classes=2,
        metric="auc",
        mode="max",
        build_data=_colonoscopy_data,
        compute_metric=_positive_auc,
        batched_metric=_positive_auc_batched,
        sizes=DataSize(full=3000, smoke=600),
    )
)
