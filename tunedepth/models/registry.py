"""The backbone registry, a leaf: it imports no backbone module (modelled on timm's ``_registry.py``).

Provider modules import it and register into it: ``register(spec)`` for a named backbone, ``register_prefix``
for a family resolved from its name (``timm:NAME[@SIZE]`` in ``tunedepth.models.timm_backbones``,
``unet-timm:NAME[@SIZE]`` in ``tunedepth.models.seg_unet``). The catalogue is ``tunedepth/models/__init__.py``,
which imports every provider once; since Python runs a package's ``__init__`` before any of its modules,
``from tunedepth.models.registry import get_backbone`` alone already finds every backbone.

A backbone declares its ordered layer groups once; everything depth-related is derived from that. A group is a
name plus the module-name prefixes of its parameters (like timm's ``group_matcher``). Groups run bottom -> top;
the last group is the classification head, rebuilt for C classes. A prefix may also name a parameter-free module
that belongs to the group (e.g. the dropout in front of AlexNet's fc6): the group's train/eval mode applies to it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from tunedepth.errors import ConfigError

Log = Callable[[str], None]


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # (group name, parameter-name prefixes), bottom -> top
    input_size: int
    build: Callable[[int], nn.Module]  # num_classes -> model with a freshly initialised head
    description: str = ""
    imagenet: str | None = None  # torchvision weight enum for source "imagenet", e.g. "AlexNet_Weights.IMAGENET1K_V1"
    # or: offline loader of ImageNet weights shipped elsewhere (a package, the HF cache): log -> (state_dict, norm)
    imagenet_weights: Callable[[Log], tuple[dict[str, torch.Tensor], tuple]] | None = None
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


BACKBONES: dict[str, BackboneSpec] = {}  # name -> spec, filled by the provider modules


@dataclass(frozen=True)
class Prefix:
    """A family of backbones named ``PREFIX + rest``, each spec built on demand from its name."""
    prefix: str
    resolve: Callable[[str], BackboneSpec]  # the full name -> its spec (a ConfigError when it names none)
    syntax: str  # how the error message lists it, e.g. "timm:NAME[@SIZE] (any timm architecture)"


PREFIXES: dict[str, Prefix] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` under its name; a name registered twice is a ValueError (two modules claiming it)."""
    if spec.name in BACKBONES:
        raise ValueError(f"backbone {spec.name!r} registered twice")
    BACKBONES[spec.name] = spec
    return spec


register_backbone = register  # the name the provider modules used before the registry was its own module


def register_prefix(prefix: str, resolve: Callable[[str], BackboneSpec], syntax: str) -> None:
    """Resolve every backbone name starting with ``prefix`` with ``resolve`` (the longest matching prefix wins)."""
    if prefix in PREFIXES:
        raise ValueError(f"backbone prefix {prefix!r} registered twice")
    PREFIXES[prefix] = Prefix(prefix, resolve, syntax)


def resolver(name: str) -> Prefix | None:
    """The registered prefix family that ``name`` belongs to, or None."""
    matches = [p for p in PREFIXES.values() if name.startswith(p.prefix)]
    return max(matches, key=lambda p: len(p.prefix)) if matches else None


def get_backbone(name: str) -> BackboneSpec:
    family = resolver(name)
    if family is not None:
        return family.resolve(name)
    try:
        return BACKBONES[name]
    except KeyError:
        families = "".join(f", or {p.syntax}" for p in sorted(PREFIXES.values(), key=lambda p: p.prefix))
        raise ConfigError(f"unknown backbone {name!r}; choose one of: {', '.join(sorted(BACKBONES))}"
                          f"{families}") from None


def list_backbones() -> list[str]:
    return sorted(BACKBONES)


def sized(spec: BackboneSpec, input_size: int = 0) -> BackboneSpec:
    """``spec`` taking ``input_size`` px inputs (0: its own size); a ConfigError when its layers cannot."""
    if not input_size or input_size == spec.input_size:
        return spec
    model = spec.build(2).eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size))
    except RuntimeError as e:
        raise ConfigError(f"backbone {spec.name!r} cannot take {input_size}px inputs ({str(e).splitlines()[0][:80]}); "
                          f"use --input-size {spec.input_size} (its own) or a backbone with global pooling "
                          "(e.g. resnet18, timm:NAME)") from None
    return dataclasses.replace(spec, input_size=input_size)
