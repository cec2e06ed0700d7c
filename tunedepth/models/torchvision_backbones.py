"""torchvision's ``alexnet``, ``resnet18``, ``resnet50`` and ``densenet121`` as backbones: their layer groups
and stages. Built with ``weights=None`` (torchvision's own init); pretrained weights come from a source
(``tunedepth.models.sources``, the spec's ``imagenet`` names torchvision's weights enum). Output: class
logits (N, C).
"""
from __future__ import annotations

import re
from typing import Callable, Mapping

import torch
from torch import nn

from tunedepth.models.registry import BackboneSpec, register


def _torchvision(arch: str) -> Callable[[int], nn.Module]:
    """torchvision's ``arch`` with random weights and a ``num_classes``-way head (torchvision's own init)."""

    def build(num_classes: int) -> nn.Module:
        import torchvision  # here, not at module level: a trial process that never builds one skips its import

        return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)

    build.__name__ = f"build_{arch}"
    return build


def _register(arch: str, **spec) -> None:
    """Register torchvision's ``arch`` at 224x224: its name, builder and rebuild call follow from ``arch``."""
    register(BackboneSpec(name=arch, input_size=224, build=_torchvision(arch),
                                   rebuild=f"torchvision.models.{arch}(weights=None, num_classes={{num_classes}})",
                                   **spec))


def _alexnet_stages(m: nn.Module) -> list[nn.Module]:
    f, c = m.features, m.classifier  # forward: features -> avgpool -> flatten -> classifier
    return [f[0:3], f[3:6], f[6:8], f[8:10], nn.Sequential(f[10:13], m.avgpool, nn.Flatten(1)),
            c[0:3], c[3:6], c[6]]


_register(
    "alexnet",
    # torchvision's AlexNet: classifier = [Dropout, fc6, ReLU, Dropout, fc7, ReLU, fc8]; each dropout goes
    # with the layer it feeds (as in tiny-alexnet), so a frozen fc6/fc7 also runs without dropout
    groups=(
        ("conv1", ("features.0",)),
        ("conv2", ("features.3",)),
        ("conv3", ("features.6",)),
        ("conv4", ("features.8",)),
        ("conv5", ("features.10",)),
        ("fc6", ("classifier.0", "classifier.1")),
        ("fc7", ("classifier.3", "classifier.4")),
        ("fc8", ("classifier.6",)),
    ),
    stages=_alexnet_stages,
    description="torchvision AlexNet at 224x224, the paper's groups conv1..fc8 (Table II)",
    imagenet="AlexNet_Weights.IMAGENET1K_V1",
)


def _resnet_stages(m: nn.Module) -> list[nn.Module]:
    # the global pooling goes with layer4, so a head-only trial caches one vector per image
    return [nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool), m.layer1, m.layer2, m.layer3,
            nn.Sequential(m.layer4, m.avgpool, nn.Flatten(1)), m.fc]


def _resnet_groups() -> tuple[tuple[str, tuple[str, ...]], ...]:
    stages = tuple((f"layer{i}", (f"layer{i}",)) for i in range(1, 5))
    return (("stem", ("conv1", "bn1")),) + stages + (("fc", ("fc",)),)


_register(
    "resnet18",
    groups=_resnet_groups(),
    stages=_resnet_stages,
    description="torchvision ResNet-18 at 224x224, groups stem, layer1..layer4, fc",
    imagenet="ResNet18_Weights.IMAGENET1K_V1",
)
_register(
    "resnet50",
    groups=_resnet_groups(),
    stages=_resnet_stages,
    description="torchvision ResNet-50 at 224x224, groups stem, layer1..layer4, fc",
    imagenet="ResNet50_Weights.IMAGENET1K_V2",
)

# torchvision's DenseNet checkpoints still use the old module names "norm.1", "conv.2", ... inside dense
# layers (torchvision.models.densenet._load_state_dict renames them the same way)
_OLD_DENSELAYER_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _densenet_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        m = _OLD_DENSELAYER_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def _densenet_groups() -> tuple[tuple[str, tuple[str, ...]], ...]:
    blocks = tuple((f"block{i}", (f"features.denseblock{i}", f"features.transition{i}")) for i in range(1, 4))
    return (
        (("stem", ("features.conv0", "features.norm0")),)
        + blocks
        + (("block4", ("features.denseblock4", "features.norm5")), ("classifier", ("classifier",)))
    )


def _densenet_stages(m: nn.Module) -> list[nn.Module]:
    f = m.features  # forward: features -> relu -> global average pool -> flatten -> classifier
    blocks = [nn.Sequential(getattr(f, f"denseblock{i}"), getattr(f, f"transition{i}")) for i in range(1, 4)]
    top = nn.Sequential(f.denseblock4, f.norm5, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return [nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0), *blocks, top, m.classifier]


_register(
    "densenet121",
    groups=_densenet_groups(),
    stages=_densenet_stages,
    description="torchvision DenseNet-121 at 224x224, groups stem, block1..block4 (dense block + transition), "
                "classifier",
    imagenet="DenseNet121_Weights.IMAGENET1K_V1",
    adapt_state_dict=_densenet_keys,
)
