"""Backbones with declared layer groups, tuning depth, and pretrained-weight sources."""
from tunedepth.models import (
    seg_unet,  # noqa: F401  (registers unet-efficientnet-lite0)
    timm_backbones,  # noqa: F401  (registers efficientnet-lite0)
    torchvision_backbones,  # noqa: F401  (registers alexnet, resnet18/50, densenet121)
)
from tunedepth.models.backbones import BACKBONES, BackboneSpec, get_backbone, list_backbones
from tunedepth.models.depth import (
    SCRATCH,
    configure_depth,
    depth_index,
    depth_names,
    trainable_groups,
)

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "SCRATCH",
    "configure_depth",
    "depth_index",
    "depth_names",
    "get_backbone",
    "list_backbones",
    "trainable_groups",
]
