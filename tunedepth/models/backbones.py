"""tunedepth's own backbones, registered into ``tunedepth.models.registry`` (which defines ``BackboneSpec``, the
groups and ``get_backbone``; its names are re-exported here for older imports).

Registered here: ``tiny-alexnet`` (the CPU demo backbone), which outputs class logits (N, C), and MONAI's
2-D ``BasicUNet`` as ``monai-unet``, which outputs per-pixel logits (N, C, H, W) (``output="mask"``) for whole-image
segmentation
apps. Its groups run encoder -> bottleneck -> decoder -> output convolution, so "the top k groups" are the
output convolution and the decoder levels nearest to it. torchvision's ``alexnet``, ``resnet18``,
``resnet50`` and ``densenet121`` live in ``tunedepth.models.torchvision_backbones``; ``efficientnet-lite0``
(the default) and any timm architecture as ``timm:NAME`` in ``tunedepth.models.timm_backbones``; the
segmentation UNets on ImageNet encoders (``unet-efficientnet-lite0``, ``unet-timm:NAME``) in
``tunedepth.models.seg_unet``.
"""
from __future__ import annotations

import torch
from torch import nn

from tunedepth.models.registry import (  # noqa: F401  (re-exported: the names this module defined before)
    BACKBONES,
    BackboneSpec,
    get_backbone,
    list_backbones,
    register_backbone,
    sized,
)


class TinyAlexNet(nn.Module):
    """A narrow AlexNet for 64x64 inputs: the paper's eight layer groups conv1..conv5, fc6, fc7, fc8.

    Same layout as AlexNet (5 conv layers with max-pooling after conv1, conv2 and conv5, two dropout+ReLU
    fully connected layers and a linear classifier), with ~1/4 the channels and no LRN, so that a whole
    depth x budget search runs in minutes on two CPU cores.
    """

    group_names = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")

    def __init__(self, num_classes: int, width: int = 24, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        c1, c2, c3, c4, c5 = width, 2 * width, 3 * width, 3 * width, 2 * width
        self.conv1 = nn.Sequential(nn.Conv2d(3, c1, 5, stride=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.conv2 = nn.Sequential(nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.conv3 = nn.Sequential(nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True))
        self.conv4 = nn.Sequential(nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(inplace=True))
        self.conv5 = nn.Sequential(nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.fc6 = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c5 * 2 * 2, hidden), nn.ReLU(inplace=True)
        )
        self.fc7 = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
        self.fc8 = nn.Linear(hidden, num_classes)
        for m in self.modules():  # He initialisation (as torchvision's VGG/ResNet): trains without BN or LRN
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc8.weight, std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.group_names:
            x = getattr(self, name)(x)
        return x


def _one_to_one(names: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((n, (n,)) for n in names)


register_backbone(
    BackboneSpec(
        name="tiny-alexnet",
        groups=_one_to_one(TinyAlexNet.group_names),
        input_size=64,
        build=TinyAlexNet,
        stages=lambda m: [getattr(m, n) for n in TinyAlexNet.group_names],
        description="narrow AlexNet at 64x64 with the paper's groups conv1..fc8 (demo backbone, CPU-friendly)",
    )
)


# MONAI's BasicUNet (2-D): conv_0 -> down_1..down_4 (encoder) -> upcat_4..upcat_1 (decoder, with skips) ->
# final_conv (1x1, the head). Features are a quarter of MONAI's default so a CPU epoch takes seconds.
UNET_FEATURES = (16, 16, 32, 64, 128, 16)


def _build_monai_unet(num_classes: int) -> nn.Module:
    from monai.networks.nets import BasicUNet

    return BasicUNet(spatial_dims=2, in_channels=3, out_channels=num_classes, features=UNET_FEATURES)


register_backbone(
    BackboneSpec(
        name="monai-unet",
        groups=(
            ("enc1", ("conv_0",)),
            ("enc2", ("down_1",)),
            ("enc3", ("down_2",)),
            ("enc4", ("down_3",)),
            ("bottleneck", ("down_4",)),
            ("dec4", ("upcat_4",)),
            ("dec3", ("upcat_3",)),
            ("dec2", ("upcat_2",)),
            ("dec1", ("upcat_1",)),
            ("out", ("final_conv",)),
        ),
        input_size=96,
        build=_build_monai_unet,
        rebuild="monai.networks.nets.BasicUNet(spatial_dims=2, in_channels=3, out_channels={num_classes}, "
                f"features={UNET_FEATURES})",
        description="MONAI BasicUNet (2-D, features 16-128) at 96x96, per-pixel logits; groups enc1..enc4, "
                    "bottleneck, dec4..dec1, out (for segmentation apps, e.g. intima-media-seg)",
        output="mask",
    )
)
