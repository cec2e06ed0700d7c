"""Tuning depth, derived from a backbone's declared groups: depth k trains the top k groups.

Depth names follow Tajbakhsh et al. (Table II): ``fc8`` (head only), ``fc7-fc8``, ..., ``conv1-fc8``
(every group), and ``scratch`` (every group, random initialisation, no pretrained weights). For other
backbones the names come from their groups the same way: ``fc``, ``layer4-fc``, ..., ``stem-fc``.

Learning rates per parameter group (``configure_depth``, the one place that computes them):

- frozen groups: ``requires_grad=False`` (autograd computes nothing for them) and in no optimizer group,
  i.e. lr 0;
- protocol ``paper`` (Tajbakhsh et al.): tuned pretrained groups alpha, the new head 10*alpha, biases
  twice their group's lr; protocol ``uniform``: every tuned parameter alpha;
- ``layer_decay`` < 1 multiplies a pretrained group's lr by ``layer_decay**d``, d = number of groups
  between it and the head (layer-wise lr decay); at depth ``scratch`` there is no new head and no decay;
- weight decay on weights only: biases and normalisation parameters get none.

Frozen groups are kept in eval mode (no dropout; BatchNorm running statistics frozen), see ``set_train_mode``.
"""
from __future__ import annotations

from torch import nn

from tunedepth.errors import ConfigError
from tunedepth.models.registry import BackboneSpec
from tunedepth.settings import LR_PROTOCOLS
from tunedepth.space import SCRATCH  # noqa: E402, F401  (the depth name, declared once in the space)

HEAD_LR_MULT = 10.0
BIAS_LR_MULT = 2.0
# protocol -> (lr multiplier of the new head, lr multiplier of biases)
PROTOCOL_MULTS: dict[str, tuple[float, float]] = {"paper": (HEAD_LR_MULT, BIAS_LR_MULT), "uniform": (1.0, 1.0)}
assert set(PROTOCOL_MULTS) == set(LR_PROTOCOLS)

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def depth_names(spec: BackboneSpec) -> list[str]:
    """Depth names from shallowest (head only) to deepest (all groups), then ``scratch``."""
    g = spec.group_names
    names = [g[-1]] + [f"{g[-k]}-{g[-1]}" for k in range(2, len(g) + 1)]
    return names + [SCRATCH]


def depth_index(spec: BackboneSpec, depth: str) -> int:
    """Number of groups trained (1 = head only ... len(groups) = all); scratch sorts last (len(groups) + 1)."""
    names = depth_names(spec)
    if depth not in names:
        raise ConfigError(f"unknown depth {depth!r} for backbone {spec.name!r}; choose one of: {', '.join(names)}")
    return names.index(depth) + 1


def trainable_groups(spec: BackboneSpec, depth: str) -> tuple[str, ...]:
    k = min(depth_index(spec, depth), len(spec.groups))
    return spec.group_names[-k:]


def group_lr(spec: BackboneSpec, group: str, depth: str, lr: float, protocol: str = "paper",
             layer_decay: float = 1.0) -> float:
    """The lr of ``group``'s weights at ``depth`` (0.0 if the group is frozen); biases get ``bias_lr_mult``x."""
    if group not in trainable_groups(spec, depth):
        return 0.0
    if depth == SCRATCH:
        return lr
    head_mult, _ = _mults(protocol)
    below_head = len(spec.groups) - 1 - spec.group_names.index(group)
    return lr * (head_mult if below_head == 0 else layer_decay ** below_head)


def bias_lr_mult(protocol: str) -> float:
    return _mults(protocol)[1]


def _mults(protocol: str) -> tuple[float, float]:
    try:
        return PROTOCOL_MULTS[protocol]
    except KeyError:
        raise ConfigError(f"unknown lr_protocol {protocol!r}; choose one of: {', '.join(PROTOCOL_MULTS)}") from None


def norm_parameter_names(model: nn.Module) -> set[str]:
    """Names of the parameters of normalisation layers (BatchNorm, GroupNorm, LayerNorm, ...)."""
    return {f"{m}.{p}" if m else p for m, module in model.named_modules() if isinstance(module, NORM_TYPES)
            for p, _ in module.named_parameters(recurse=False)}


def configure_depth(model: nn.Module, spec: BackboneSpec, depth: str, lr: float, weight_decay: float = 0.0,
                    *, protocol: str = "paper", layer_decay: float = 1.0) -> list[dict]:
    """Freeze groups below ``depth`` and return optimizer parameter groups with the protocol's lrs.

    Every parameter of a frozen group gets ``requires_grad=False`` and appears in no optimizer group. Each
    returned group carries ``name`` "<group>.weight", "<group>.bias" or "<group>.norm" (normalisation-layer
    parameters: the group's lr, no weight decay), its ``lr`` and its ``weight_decay``.
    """
    tuned = set(trainable_groups(spec, depth))
    bias_mult = bias_lr_mult(protocol)
    norms = norm_parameter_names(model)
    buckets: dict[str, list[nn.Parameter]] = {}
    settings: dict[str, tuple[float, float]] = {}
    for pname, p in model.named_parameters():
        group = spec.group_of(pname)
        p.requires_grad_(group in tuned)
        if group not in tuned:
            continue
        base = group_lr(spec, group, depth, lr, protocol, layer_decay)
        if pname in norms:
            kind, key_lr, key_wd = "norm", base, 0.0
        elif pname.endswith("bias"):
            kind, key_lr, key_wd = "bias", base * bias_mult, 0.0
        else:
            kind, key_lr, key_wd = "weight", base, weight_decay
        key = f"{group}.{kind}"
        buckets.setdefault(key, []).append(p)
        settings[key] = (key_lr, key_wd)
    return [{"name": key, "params": params, "lr": settings[key][0], "weight_decay": settings[key][1]}
            for key, params in buckets.items()]


def set_train_mode(model: nn.Module, spec: BackboneSpec, depth: str, freeze_bn: bool = True) -> None:
    """``model.train()`` for tuned groups, ``eval()`` for frozen ones (no dropout, fixed BN statistics).

    With ``freeze_bn=False`` the BatchNorm layers of frozen groups are put back in train mode: their affine
    parameters stay frozen, but they normalise with batch statistics and update their running statistics.
    """
    model.train()
    tuned = set(trainable_groups(spec, depth))
    frozen_modules = [(name, module) for name, module in model.named_modules()
                      if name and spec.find_group(name) not in (None, *tuned)]
    for _, module in frozen_modules:
        module.eval()
    if not freeze_bn:
        for _, module in frozen_modules:
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train()
