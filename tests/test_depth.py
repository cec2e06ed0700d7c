"""Depth for every backbone x depth: exactly the top groups train, with the paper's lrs; forward/backward is finite.

Each backbone is built once per module (the torchvision ones are big) and driven with a tiny 64x64 batch:
every backbone here pools adaptively, so it accepts inputs smaller than its nominal size.
"""
import pytest
import torch

from tunedepth.errors import ConfigError
from tunedepth.models import (
    BACKBONES,
    SCRATCH,
    configure_depth,
    depth_index,
    depth_names,
    get_backbone,
    trainable_groups,
)
from tunedepth.models.depth import BIAS_LR_MULT, HEAD_LR_MULT, norm_parameter_names, set_train_mode

CASES = [(b, d) for b in sorted(BACKBONES) for d in depth_names(BACKBONES[b])]
TINY = 64
_MODELS: dict[str, torch.nn.Module] = {}


def built(backbone: str) -> torch.nn.Module:
    """One model per backbone for the whole module (3 classes); gradients cleared on every call."""
    if backbone not in _MODELS:
        torch.manual_seed(0)
        _MODELS[backbone] = get_backbone(backbone).build(3)
    model = _MODELS[backbone]
    for p in model.parameters():
        p.grad = None
    return model


def tiny_batch(spec, n: int = 2) -> torch.Tensor:
    size = min(spec.input_size, TINY)
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_tiny_alexnet_depths_follow_the_paper():
    assert depth_names(get_backbone("tiny-alexnet")) == [
        "fc8", "fc7-fc8", "fc6-fc8", "conv5-fc8", "conv4-fc8", "conv3-fc8", "conv2-fc8", "conv1-fc8", "scratch",
    ]


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_parameter_belongs_to_exactly_one_declared_group(backbone):
    spec = get_backbone(backbone)
    model = built(backbone)
    for name, _ in model.named_parameters():
        owners = [g for g, prefixes in spec.groups if any(name == p or name.startswith(p + ".") for p in prefixes)]
        assert len(owners) == 1, (name, owners)
    seen = {spec.group_of(n) for n, _ in model.named_parameters()}
    assert seen == set(spec.group_names)  # no empty group
    for name, _ in model.named_buffers():  # BatchNorm statistics belong to a group too (they are loaded/frozen)
        assert spec.find_group(name) is not None, name


@pytest.mark.parametrize("backbone,depth", CASES)
def test_exactly_the_top_groups_require_grad(backbone, depth):
    spec = get_backbone(backbone)
    model = built(backbone)
    configure_depth(model, spec, depth, lr=1e-3)
    k = len(spec.groups) if depth == SCRATCH else depth_index(spec, depth)
    expected = set(spec.group_names[len(spec.groups) - k:])
    for name, p in model.named_parameters():
        assert p.requires_grad == (spec.group_of(name) in expected), name
    assert set(trainable_groups(spec, depth)) == expected


@pytest.mark.parametrize("backbone,depth", CASES)
def test_optimizer_groups_carry_the_paper_learning_rates(backbone, depth):
    spec = get_backbone(backbone)
    model = built(backbone)
    alpha, decay = 1e-3, 5e-4
    groups = configure_depth(model, spec, depth, lr=alpha, weight_decay=decay)
    params_in_groups = [id(p) for g in groups for p in g["params"]]
    assert len(params_in_groups) == len(set(params_in_groups))  # no parameter twice
    assert set(params_in_groups) == {id(p) for p in model.parameters() if p.requires_grad}
    norms = norm_parameter_names(model)
    kind_of = {id(p): ("norm" if n in norms else "bias" if n.endswith("bias") else "weight")
               for n, p in model.named_parameters()}
    for g in groups:
        layer, kind = g["name"].split(".")
        assert all(kind_of[id(p)] == kind for p in g["params"]), g["name"]
        lr = alpha * (HEAD_LR_MULT if layer == spec.head and depth != SCRATCH else 1.0)
        lr *= BIAS_LR_MULT if kind == "bias" else 1.0
        assert g["lr"] == pytest.approx(lr), g["name"]
        assert g["weight_decay"] == (decay if kind == "weight" else 0.0), g["name"]
    # the optimizer accepts them; forward/backward on a tiny batch is finite; a step moves only trainable params
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(groups, lr=alpha, momentum=0.9)
    set_train_mode(model, spec, depth)
    x = tiny_batch(spec)
    out = model(x)
    if spec.output == "mask":  # per-pixel logits (N, C, H, W) against a class-id mask (N, H, W)
        assert out.shape == (2, 3, *x.shape[-2:]) and torch.isfinite(out).all()
        target = torch.randint(0, 3, (2, *x.shape[-2:]), generator=torch.Generator().manual_seed(0))
    else:
        assert out.shape == (2, 3) and torch.isfinite(out).all()
        target = torch.tensor([0, 2])
    torch.nn.functional.cross_entropy(out, target).backward()
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    opt.step()
    for n, p in model.named_parameters():
        assert torch.isfinite(p).all(), n
        if not p.requires_grad:
            assert torch.equal(before[n], p.detach()), n
    head_weight = next(n for n, _ in model.named_parameters() if spec.group_of(n) == spec.head)
    assert not torch.equal(before[head_weight], model.get_parameter(head_weight).detach())


def test_frozen_groups_stay_in_eval_mode():
    spec = get_backbone("tiny-alexnet")
    model = spec.build(2)
    set_train_mode(model, spec, "fc7-fc8")
    assert not model.fc6.training and not model.conv1.training
    assert model.fc7.training and model.fc8.training


def test_unknown_depth_is_a_clear_error():
    spec = get_backbone("tiny-alexnet")
    with pytest.raises(ConfigError, match="unknown depth 'fc9'.*choose one of: fc8"):
        depth_index(spec, "fc9")
