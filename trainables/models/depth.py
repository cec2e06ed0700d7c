"""Tuning depth, derived from a backbone's declared groups: depth k trains the top k groups.

Depth names follow Tajbakhsh et al. (Table II): ``fc8`` (head only), ``fc7-fc8``, ..., ``conv1-fc8``
(every group), and ``scratch`` (every group, random initialisation, no pretrained weights).

Learning rates follow the paper's protocol: frozen groups get lr 0 (and no gradient at all), tuned
pretrained groups get alpha, the new head 10*alpha, biases twice their group's lr. Frozen groups are
also kept in eval mode (dropout off, BatchNorm running statistics frozen); see ``set_train_mode``.
"""
from __future__ import annotations

from torch import nn

from trainables.config import ConfigError
from trainables.models.backbones import BackboneSpec

SCRATCH = "scratch"
HEAD_LR_MULT = 10.0
BIAS_LR_MULT = 2.0


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


def configure_depth(model: nn.Module, spec: BackboneSpec, depth: str, lr: float,
                    weight_decay: float = 0.0) -> list[dict]:
    """Freeze groups below ``depth`` and return optimizer parameter groups with the paper's lrs.

    Every parameter of a frozen group gets ``requires_grad=False`` (so autograd computes nothing for it)
    and appears in no optimizer group. Each returned group carries ``name`` ("<group>.weight"/"<group>.bias");
    weight decay applies to weights only (as Caffe's AlexNet: ``decay_mult: 0`` for biases).
    """
    tuned = set(trainable_groups(spec, depth))
    pretrained = depth != SCRATCH
    buckets: dict[str, list[nn.Parameter]] = {}
    lrs: dict[str, float] = {}
    for pname, p in model.named_parameters():
        group = spec.group_of(pname)
        p.requires_grad_(group in tuned)
        if group not in tuned:
            continue
        group_lr = lr * (HEAD_LR_MULT if (pretrained and group == spec.head) else 1.0)
        kind = "bias" if pname.endswith("bias") else "weight"
        key = f"{group}.{kind}"
        buckets.setdefault(key, []).append(p)
        lrs[key] = group_lr * (BIAS_LR_MULT if kind == "bias" else 1.0)
    return [
        {"name": key, "params": params, "lr": lrs[key], "weight_decay": 0.0 if key.endswith("bias") else weight_decay}
        for key, params in buckets.items()
    ]


def set_train_mode(model: nn.Module, spec: BackboneSpec, depth: str) -> None:
    """``model.train()`` for tuned groups, ``eval()`` for frozen ones (fixed BN statistics, no dropout)."""
    model.train()
    tuned = set(trainable_groups(spec, depth))
    for name, module in model.named_modules():
        group = spec.find_group(name) if name else None
        if group is not None and group not in tuned:
            module.eval()
