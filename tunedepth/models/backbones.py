"""Backbones declare their ordered layer groups once; everything depth-related is derived from that.

A group is a name plus the module-name prefixes of its parameters (like timm's ``group_matcher``).
Groups run bottom -> top; the last group is the classification head, rebuilt for C classes.
A prefix may also name a parameter-free module that belongs to the group (e.g. the dropout in front of
AlexNet's fc6): the group's train/eval mode applies to it.

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

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from tunedepth.errors import ConfigError


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # (group name, parameter-name prefixes), bottom -> top
    input_size: int
    build: Callable[[int], nn.Module]  # num_classes -> model with a freshly initialised head
    description: str = ""
    imagenet: str | None = None  # torchvision weight enum for source "imagenet", e.g. "AlexNet_Weights.IMAGENET1K_V1"
    # or: offline loader of ImageNet weights shipped elsewhere (a package, the HF cache): log -> (state_dict, norm)
    imagenet_weights: Callable[[Callable[[str], None]], tuple[dict[str, torch.Tensor], tuple]] | None = None
    # renames keys of older checkpoints of this architecture (torchvision's DenseNet files); identity if None
    adapt_state_dict: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    # model -> one module per group, bottom -> top, sharing the model's modules, whose composition is
    # ``model.forward``: what lets a frozen prefix be computed once (tunedepth.training.features). None = the forward
    # is not a chain of its groups; such a backbone always runs in full. A stage may pass a tuple of tensors
    # (a UNet's skip levels, seg_unet.unet_stages)
    stages: Callable[[nn.Module], list[nn.Module]] | None = None
    # what the network predicts: "label" = class logits (N, C); "mask" = per-pixel class logits (N, C, H, W)
    output: str = "label"
    # the Python call that rebuilds the architecture outside tunedepth, "{num_classes}" filled in (a state_dict
    # export names it); empty = tunedepth's own module, loadable elsewhere only as TorchScript/ONNX
    rebuild: str = ""

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(g for g, _ in self.groups)

    @property
    def head(self) -> str:
        return self.groups[-1][0]

    def find_group(self, name: str) -> str | None:
        """The group a parameter or module name belongs to (longest matching prefix), or None."""
        best, best_len = None, -1
        for group, prefixes in self.groups:
            for p in prefixes:
                if (name == p or name.startswith(p + ".")) and len(p) > best_len:
                    best, best_len = group, len(p)
        return best

    def adapt(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state_dict`` with this architecture's historical key names updated (a copy; tensors shared)."""
        return self.adapt_state_dict(state_dict) if self.adapt_state_dict else dict(state_dict)

    def split(self, model: nn.Module, n_frozen: int) -> tuple[nn.Module, nn.Module]:
        """(prefix, suffix): the bottom ``n_frozen`` groups and the rest, as modules sharing ``model``'s
        parameters, with ``suffix(prefix(x)) == model(x)``."""
        if self.stages is None:
            raise ValueError(f"backbone {self.name!r} declares no stages; it cannot be split")
        stages = self.stages(model)
        if len(stages) != len(self.groups):
            raise ValueError(f"backbone {self.name!r}: {len(stages)} stages for {len(self.groups)} groups")
        return nn.Sequential(*stages[:n_frozen]), nn.Sequential(*stages[n_frozen:])

    def group_of(self, param_name: str) -> str:
        group = self.find_group(param_name)
        if group is None:
            raise KeyError(f"parameter {param_name!r} of backbone {self.name!r} belongs to no declared layer group")
        return group


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


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in BACKBONES:
        raise ValueError(f"backbone {spec.name!r} registered twice")
    BACKBONES[spec.name] = spec
    return spec


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


def get_backbone(name: str) -> BackboneSpec:
    if name.startswith("unet-timm:"):  # a UNet decoder on any timm encoder with five feature maps
        from tunedepth.models.seg_unet import unet_timm_backbone

        return unet_timm_backbone(name)
    if name.startswith("timm:"):  # any timm architecture, groups from its own group_matcher
        from tunedepth.models.timm_backbones import timm_backbone

        return timm_backbone(name)
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choose one of: {', '.join(sorted(BACKBONES))}, "
                          f"or timm:NAME[@SIZE] (any timm architecture), or unet-timm:NAME[@SIZE] (a UNet "
                          f"on a timm encoder)") from None


def sized(spec: BackboneSpec, input_size: int = 0) -> BackboneSpec:
    """``spec`` taking ``input_size`` px inputs (0: its own size); a ConfigError when its layers cannot."""
    if not input_size or input_size == spec.input_size:
        return spec
    import dataclasses

    model = spec.build(2).eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size))
    except RuntimeError as e:
        raise ConfigError(f"backbone {spec.name!r} cannot take {input_size}px inputs ({str(e).splitlines()[0][:80]}); "
                          f"use --input-size {spec.input_size} (its own) or a backbone with global pooling "
                          "(e.g. resnet18, timm:NAME)") from None
    return dataclasses.replace(spec, input_size=input_size)


def list_backbones() -> list[str]:
    return sorted(BACKBONES)
