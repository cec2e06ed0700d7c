"""Backbones with declared layer groups, tuning depth, and pretrained-weight sources.

This file is the catalogue: it imports every provider module once, and each registers its
backbones into the leaf ``tunedepth.models.registry`` (which imports none of them). Python runs this file
before any module of the package, so importing ``tunedepth.models.registry`` alone also fills the registry.
"""
from tunedepth.models import (  # the catalogue (seg_unet imports timm_backbones, so that registers first)
    backbones,  # noqa: F401  (registers tiny-alexnet, monai-unet)
    seg_unet,  # noqa: F401  (registers unet-efficientnet-lite0 and the prefix unet-timm:NAME)
    timm_backbones,  # noqa: F401  (registers efficientnet-lite0 and the prefix timm:NAME)
    torchvision_backbones,  # noqa: F401  (registers alexnet, resnet18/50, densenet121)
)
from tunedepth.models.depth import (
    SCRATCH,
    configure_depth,
    depth_index,
    depth_names,
    trainable_groups,
)
from tunedepth.models.registry import BACKBONES, BackboneSpec, get_backbone, list_backbones

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
