import pytest
import torch

from trainables.config import ConfigError
from trainables.models import (
    BACKBONES, SCRATCH, configure_depth, depth_index, depth_names, get_backbone, trainable_groups,
)
from trainables.models.depth import BIAS_LR_MULT, HEAD_LR_MULT, set_train_mode

CASES = [(b, d) for b in sorted(BACKBONES) for d in depth_names(BACKBONES[b])]


def test_tiny_alexnet_depths_follow_the_paper():
    assert depth_names(get_backbone("tiny-alexnet")) == [
        "fc8", "fc7-fc8", "fc6-fc8", "conv5-fc8", "conv4-fc8", "conv3-fc8", "conv2-fc8", "conv1-fc8", "scratch",
    ]


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_parameter_belongs_to_exactly_one_declared_group(backbone):
    spec = get_backbone(backbone)
    model = spec.build(2)
    seen = {spec.group_of(n) for n, _ in model.named_parameters()}
    assert seen == set(spec.group_names)


@pytest.mark.parametrize("backbone,depth", CASES)
def test_exactly_the_top_groups_require_grad(backbone, depth):
    spec = get_backbone(backbone)
    model = spec.build(3)
    configure_depth(model, spec, depth, lr=1e-3)
    k = len(spec.groups) if depth == SCRATCH else depth_index(spec, depth)
    expected = set(spec.group_names[len(spec.groups) - k:])
    for name, p in model.named_parameters():
        assert p.requires_grad == (spec.group_of(name) in expected), name
    assert set(trainable_groups(spec, depth)) == expected


@pytest.mark.parametrize("backbone,depth", CASES)
def test_optimizer_groups_carry_the_paper_learning_rates(backbone, depth):
    spec = get_backbone(backbone)
    model = spec.build(2)
    alpha = 1e-3
    groups = configure_depth(model, spec, depth, lr=alpha)
    params_in_groups = {id(p) for g in groups for p in g["params"]}
    assert params_in_groups == {id(p) for p in model.parameters() if p.requires_grad}
    for g in groups:
        layer, kind = g["name"].split(".")
        lr = alpha * (HEAD_LR_MULT if layer == spec.head and depth != SCRATCH else 1.0)
        lr *= BIAS_LR_MULT if kind == "bias" else 1.0
        assert g["lr"] == pytest.approx(lr), g["name"]
    # the optimizer accepts them, and a step changes only trainable parameters
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(groups, lr=alpha, momentum=0.9)
    out = model(torch.randn(4, 3, spec.input_size, spec.input_size))
    out.sum().backward()
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    opt.step()
    for n, p in model.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        assert torch.isfinite(p).all()
        if not p.requires_grad:
            assert not changed, n


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
