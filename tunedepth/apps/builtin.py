"""Registration of the built-in applications: the paper's four (Tajbakhsh et al., IEEE TMI 2016) and the generic
``classification``, ``segmentation`` and ``detection`` apps for your own images (``tunedepth.apps.generic``)."""
from __future__ import annotations

from functools import partial

import numpy as np
import torch.nn.functional as F

from tunedepth.apps import colonoscopy, generic, intima, pe, polyp
from tunedepth.apps.build import build_split_data
from tunedepth.apps.patches import RESIZE_POLICIES
from tunedepth.apps.registry import App, DataSize, get_app, register_app
from tunedepth.data.units import IGNORE
from tunedepth.metrics import (
    aggregate_mean,
    classification_metrics,
    compute_roc_auc_weighted,
    detection_metrics,
    interface_metrics,
    label_map_dice,
    label_map_metrics,
    label_map_summary,
    label_metrics,
    mask_interface_batched,
    mask_interface_metrics,
    mask_interface_summary,
)

POLYP_FP_PER_FRAME = (0.01, 0.02, 0.05, 0.1)
PE_FP_PER_VOLUME = (1.0, 2.0, 3.0, 4.0, 5.0)


def _embedded(name: str):
    """``build_data(n, image_size, seed)`` of app ``name``: its generator through ``build_split_data``."""
    def build(n: int, image_size: int, seed: int):
        return build_split_data(get_app(name), "", image_size, seed, n=n)
    return build


_frames = classification_metrics


def _frames_auc(labels, probs, meta) -> float:
    """Frame-level ROC AUC alone (``classification_metrics``' "auc" without the sensitivities)."""
    return classification_metrics(labels, probs, meta, fprs=())["auc"]


def _frames_auc_batched(labels, probs, meta, counts):
    """Frame-level AUC under every row of bootstrap counts at once (two classes; None otherwise).

    The bootstrap resamples whole frames, so a frame's crops share one count: average the crops per frame,
    then weight each frame by its count.
    """
    probs = np.asarray(probs)
    if probs.shape[1] != 2:
        return None
    units = np.asarray(meta["group"]) if "group" in meta else np.arange(len(labels))
    _, first = np.unique(units, return_index=True)
    _, unit_probs, unit_labels = aggregate_mean(units, probs, labels)
    return compute_roc_auc_weighted(unit_labels, unit_probs[:, 1], np.atleast_2d(counts)[:, first])

_polyps = partial(detection_metrics, points=POLYP_FP_PER_FRAME)
_emboli = partial(detection_metrics, points=PE_FP_PER_VOLUME)

register_app(App(
    name="colonoscopy-frames",
    description="informative vs non-informative colonoscopy frames; frame score = mean over 3 crops; "
                "ROC AUC, sensitivity at 10/15/20% FPR",
    num_classes=2, metric="auc",
    build_data=_embedded("colonoscopy-frames"),
    compute_metric=_frames_auc, compute_metrics=_frames, batched_metric=_frames_auc_batched,
    sizes=DataSize(full=1000, smoke=200),
    kind="classification", unit="frame", loaders=("imagefolder", "csv", "medmnist"),
    generate=colonoscopy.generate, make_samples=colonoscopy.frame_crops,
))

register_app(App(
    name="polyp-detection",
    description="polyp candidates on colonoscopy frames; 6 patches (3 scales, shifted/mirrored) per candidate; "
                "FROC per frame, normalised partial area to 0.1 FP/frame",
    num_classes=2, metric="froc_pauc",
    build_data=_embedded("polyp-detection"),
    compute_metrics=_polyps,
    sizes=DataSize(full=400, smoke=80),
    kind="detection", unit="frame", loaders=("candidates-csv",),
    generate=polyp.generate, make_samples=polyp.candidate_patches, neg_per_pos=2.0,
))

register_app(App(
    name="pe-detection",
    description="pulmonary-embolism candidates in CT-like volumes; vessel-aligned 2-channel patches; "
                "FROC at 1-5 FP/volume, normalised partial area to 5",
    num_classes=2, metric="froc_pauc",
    build_data=_embedded("pe-detection"),
    compute_metrics=_emboli,
    sizes=DataSize(full=80, smoke=16),
    kind="detection", unit="volume", loaders=("candidates-csv",),
    generate=pe.generate, make_samples=pe.vessel_patches, neg_per_pos=2.0,
))

register_app(App(
    name="intima-media",
    description="carotid ultrasound; per-pixel 3-class patches (background, lumen-intima, media-adventitia); "
                "boundary per column; mean absolute boundary error (um), Dice",
    num_classes=3, metric="mae_um",
    build_data=_embedded("intima-media"),
    compute_metrics=interface_metrics,
    sizes=DataSize(full=100, smoke=24),
    kind="segmentation", unit="image", loaders=("image-mask-folders", "datalist-json"),
    generate=intima.generate, make_samples=intima.interface_patches,
))

register_app(App(
    name="intima-media-seg",
    description="carotid ultrasound, the segmentation head: whole images, per-pixel masks (above LI, intima-media, "
                "below MA) with --backbone monai-unet; boundary per column; mean absolute boundary error (um), Dice",
    num_classes=3, metric="mae_um",
    build_data=_embedded("intima-media-seg"),
    compute_metrics=mask_interface_metrics,
    batched_metric=mask_interface_batched,
    sizes=DataSize(full=100, smoke=24),
    loss=intima.mask_loss,
    kind="segmentation", unit="image", loaders=("image-mask-folders", "datalist-json"),
    head="a segmentation backbone's per-pixel output (monai-unet), softmax + MONAI DiceCELoss",
    generate=intima.generate, make_samples=intima.image_masks,
    target="mask", summarize=mask_interface_summary,
))


# ------------------------------------------------------------------ the generic apps (your own data)

register_app(App(
    name="classification",
    description="your images, binary or multi-class; no app protocol: each image fitted to the input (--resize), "
                "scored per image by --metric auc|balanced-accuracy|macro-f1",
    num_classes=3, metric="auc",
    build_data=_embedded("classification"),
    compute_metrics=label_metrics, metric_choices=("auc", "balanced-accuracy", "macro-f1"),
    resize_policies=RESIZE_POLICIES,
    sizes=DataSize(full=300, smoke=90),
    kind="classification", unit="image", loaders=("imagefolder", "csv", "medmnist"),
    generate=generic.generate_shapes, make_samples=generic.image_samples,
))

register_app(App(
    name="detection",
    description="your 2-D images with candidate points (candidates-csv); no app protocol: one centred patch per "
                "candidate; FROC per image, normalised partial area to 1 FP/image (--metric froc)",
    num_classes=2, metric="froc",
    build_data=_embedded("detection"),
    compute_metrics=generic.froc_metrics, metric_choices=("froc",),
    resize_policies=("resize",),
    sizes=DataSize(full=400, smoke=80),
    kind="detection", unit="image", loaders=("candidates-csv",),
    generate=polyp.generate, make_samples=generic.candidate_patch,
))

register_app(App(
    name="segmentation",
    description="your images and label masks (any classes); no app protocol: whole images fitted to the input "
                "(--resize), a segmentation backbone (monai-unet); --metric dice|boundary-error (pixels)",
    num_classes=2, metric="dice",
    build_data=_embedded("segmentation"),
    compute_metrics=label_map_metrics, metric_choices=("dice", "boundary-error"), metric_fns={"dice": label_map_dice},
    resize_policies=RESIZE_POLICIES, interfaces=False,
    sizes=DataSize(full=100, smoke=24),
    loss=partial(F.cross_entropy, ignore_index=IGNORE),
    kind="segmentation", unit="image", loaders=("image-mask-folders", "datalist-json"),
    head="a segmentation backbone's per-pixel output (monai-unet), softmax + cross-entropy (unannotated pixels "
         "ignored)",
    generate=generic.generate_shape_masks, make_samples=generic.image_masks,
    target="mask", summarize=label_map_summary,
))
