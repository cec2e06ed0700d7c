"""Backbone declarations, lr protocols (paper / uniform / layer decay), BatchNorm freezing, optimizer choice."""
import pytest
import torch

from tunedepth.errors import ConfigError
from tunedepth.models import configure_depth, depth_names, get_backbone, trainable_groups
from tunedepth.models.depth import set_train_mode
from tunedepth.settings import TrialConfig
from tunedepth.training.trial import build_lr_scheduler, build_optimizer


def test_alexnet_groups_and_depths_are_the_papers_table_ii():
    spec = get_backbone("alexnet")
    assert spec.group_names == ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
    assert depth_names(spec) == depth_names(get_backbone("tiny-alexnet"))
    model = spec.build(5)
    layers = {"conv1": model.features[0], "conv2": model.features[3], "conv3": model.features[6],
              "conv4": model.features[8], "conv5": model.features[10], "fc6": model.classifier[1],
              "fc7": model.classifier[4], "fc8": model.classifier[6]}
    names = {id(p): n for n, p in model.named_parameters()}
    for group, layer in layers.items():
        assert {spec.group_of(names[id(p)]) for p in layer.parameters()} == {group}
    assert model.classifier[6].out_features == 5
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 5)  # the nominal input size


def test_stage_names_of_modern_backbones():
    assert depth_names(get_backbone("resnet18")) == [
        "fc", "layer4-fc", "layer3-fc", "layer2-fc", "layer1-fc", "stem-fc", "scratch"]
    assert depth_names(get_backbone("resnet50")) == depth_names(get_backbone("resnet18"))
    assert depth_names(get_backbone("densenet121")) == [
        "classifier", "block4-classifier", "block3-classifier", "block2-classifier", "block1-classifier",
        "stem-classifier", "scratch"]
    dense = get_backbone("densenet121")
    assert dense.group_of("features.norm5.weight") == "block4"
    assert dense.group_of("features.transition2.conv.weight") == "block2"
    assert get_backbone("resnet50").build(7).fc.out_features == 7


def test_uniform_protocol_and_layer_decay():
    spec = get_backbone("tiny-alexnet")
    model = spec.build(2)
    groups = {g["name"]: g["lr"] for g in configure_depth(model, spec, "conv4-fc8", 1e-3, protocol="uniform")}
    assert set(groups.values()) == {1e-3}
    assert set(groups) == {f"{g}.{k}" for g in ("conv4", "conv5", "fc6", "fc7", "fc8") for k in ("weight", "bias")}

    groups = {g["name"]: g["lr"] for g in configure_depth(model, spec, "conv4-fc8", 1e-3, layer_decay=0.5)}
    assert groups["fc8.weight"] == pytest.approx(1e-2)  # the new head: 10 alpha, no decay
    assert groups["fc7.weight"] == pytest.approx(1e-3 * 0.5)
    assert groups["fc6.weight"] == pytest.approx(1e-3 * 0.25)
    assert groups["conv4.weight"] == pytest.approx(1e-3 * 0.5 ** 4)
    assert groups["conv4.bias"] == pytest.approx(2 * 1e-3 * 0.5 ** 4)
    scratch = {g["lr"] for g in configure_depth(model, spec, "scratch", 1e-3, layer_decay=0.5, protocol="uniform")}
    assert scratch == {1e-3}  # from scratch there is no new head and nothing pretrained to protect
    with pytest.raises(ConfigError, match="unknown lr_protocol 'caffe'"):
        configure_depth(model, spec, "fc8", 1e-3, protocol="caffe")


def _bn_stats(model, spec, groups):
    return {n: b.clone() for n, b in model.named_buffers() if spec.find_group(n) in groups and "running" in n}


@pytest.mark.parametrize("depth", ["fc", "layer4-fc"])
def test_frozen_batchnorm_keeps_its_running_statistics(depth):
    spec = get_backbone("resnet18")
    torch.manual_seed(0)
    model = spec.build(2)
    opt = torch.optim.SGD(configure_depth(model, spec, depth, 1e-2), lr=1e-2, momentum=0.9)
    frozen = set(spec.group_names) - set(trainable_groups(spec, depth))
    frozen_before = _bn_stats(model, spec, frozen)
    tuned_before = _bn_stats(model, spec, {"layer4"})
    params_before = {n: p.clone() for n, p in model.named_parameters()}
    set_train_mode(model, spec, depth)  # freeze_bn=True (the default)
    x = torch.randn(4, 3, 64, 64) * 3 + 1
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 0, 1])).backward()
    opt.step()
    after = _bn_stats(model, spec, frozen)
    assert frozen_before and all(torch.equal(frozen_before[n], after[n]) for n in frozen_before)
    tuned_after = _bn_stats(model, spec, {"layer4"})
    tuned_changed = any(not torch.equal(tuned_before[n], tuned_after[n]) for n in tuned_before)
    assert tuned_changed == (depth == "layer4-fc")  # a tuned BatchNorm does update its statistics

    set_train_mode(model, spec, depth, freeze_bn=False)  # the switch: frozen BNs follow the target data
    model(x)
    moved = _bn_stats(model, spec, frozen)
    assert any(not torch.equal(after[n], moved[n]) for n in after)
    for n, p in model.named_parameters():  # ... but their affine parameters stay frozen
        if spec.group_of(n) in frozen:
            assert torch.equal(p, params_before[n]), n


def test_alexnet_dropout_goes_with_the_layer_it_feeds():
    spec = get_backbone("alexnet")
    model = spec.build(2)
    set_train_mode(model, spec, "fc7-fc8")
    assert not model.classifier[0].training and not model.classifier[1].training  # fc6 frozen: no dropout
    assert model.classifier[3].training and model.classifier[4].training


def test_weight_decay_spares_biases_and_normalisation():
    spec = get_backbone("resnet18")
    model = spec.build(2)
    groups = configure_depth(model, spec, "layer4-fc", 1e-3, weight_decay=1e-4)
    decay = {g["name"]: g["weight_decay"] for g in groups}
    assert decay == {"layer4.weight": 1e-4, "layer4.norm": 0.0, "fc.weight": 1e-4, "fc.bias": 0.0}
    norm = next(g for g in groups if g["name"] == "layer4.norm")
    assert len(norm["params"]) == 2 * 5  # weight and bias of the 5 BatchNorms of layer4 (2 blocks + downsample)


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW)])
def test_optimizer_is_built_from_the_config(name, cls):
    spec = get_backbone("tiny-alexnet")
    model = spec.build(2)
    cfg = TrialConfig(backbone="tiny-alexnet", optimizer=name, lr=1e-3, depth="fc7-fc8", schedule="cosine", epochs=2)
    opt = build_optimizer(cfg, configure_depth(model, spec, cfg.depth, cfg.lr, cfg.weight_decay))
    assert isinstance(opt, cls)
    assert {g["name"]: g["lr"] for g in opt.param_groups} == pytest.approx(
        {"fc7.weight": 1e-3, "fc7.bias": 2e-3, "fc8.weight": 1e-2, "fc8.bias": 2e-2})
    sched = build_lr_scheduler(cfg, opt, steps_per_epoch=5)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5)  # cosine halfway through 2 epochs


def test_new_trial_keys_are_validated():
    with pytest.raises(ConfigError, match="unknown optimizer 'adam'; choose one of: sgd, adamw"):
        TrialConfig(optimizer="adam")
    with pytest.raises(ConfigError, match="unknown lr_protocol"):
        TrialConfig(lr_protocol="fancy")
    with pytest.raises(ConfigError, match=r"layer_decay .*must be a finite number > 0 and <= 1"):
        TrialConfig(layer_decay=1.5)
    assert TrialConfig.from_dict({"freeze_bn": "false"}).freeze_bn is False
    with pytest.raises(ConfigError, match="'freeze_bn' must be bool"):
        TrialConfig.from_dict({"freeze_bn": "sometimes"})
