"""The generic classification app: its metrics against scikit-learn, the resize policies, the 8 views of
flip-rotate, the per-run input size, the metric's direction from tunedepth.metrics.mode, and a search end to end on
a generated 3-class folder of PNGs."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from tunedepth.apps import build_split_data, get_app
from tunedepth.apps.generic import SHAPES, generate_shapes
from tunedepth.apps.patches import fit_square
from tunedepth.errors import ConfigError
from tunedepth.metrics import (
    compute_balanced_accuracy,
    compute_macro_f1,
    compute_mask_boundary_error,
    compute_mask_dice,
    label_metrics,
)
from tunedepth.metrics.mode import METRIC_MODES
from tunedepth.models import get_backbone
from tunedepth.models.engine import AUGMENT_VIEWS, apply_views
from tunedepth.models.registry import sized


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [2, 3, 5])
def test_label_metrics_match_scikit_learn(seed, k):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, 200)
    probs = rng.dirichlet(np.ones(k), 200) + 0.3 * np.eye(k)[labels] * rng.random((200, 1))
    probs /= probs.sum(axis=1, keepdims=True)
    pred = probs.argmax(1)
    assert compute_balanced_accuracy(labels, probs) == pytest.approx(balanced_accuracy_score(labels, pred))
    assert compute_macro_f1(labels, probs) == pytest.approx(f1_score(labels, pred, average="macro"))
    auc = roc_auc_score(labels, probs[:, 1]) if k == 2 else roc_auc_score(labels, probs, multi_class="ovr")
    assert label_metrics(labels, probs, {})["auc"] == pytest.approx(auc)


def test_macro_f1_counts_a_predicted_class_absent_from_the_labels():
    labels, pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    probs = np.eye(3)[pred]
    assert compute_macro_f1(labels, probs) == pytest.approx(f1_score(labels, pred, average="macro"))


@pytest.mark.parametrize("metric", ["auc", "balanced-accuracy", "macro-f1"])
def test_the_run_metric_and_its_direction(metric):
    app = get_app("classification", metric)
    assert app.metric == metric and app.mode == METRIC_MODES[metric] == "max"
    labels = np.repeat([0, 1, 2], 4)
    assert app.compute_metric(labels, np.eye(3)[labels], {}) == pytest.approx(1.0)


def test_wrong_metric_or_resize_is_one_line_naming_the_choices():
    for args, words in ((("classification", "dice"), "balanced-accuracy"), (("colonoscopy-frames", "macro-f1"), "auc"),
                        (("colonoscopy-frames", "", "pad"), "own resizing protocol")):
        with pytest.raises(ConfigError) as e:
            get_app(*args)
        assert "\n" not in str(e.value) and words in str(e.value)


def test_resize_policies_keep_or_fill_the_aspect_ratio():
    img = torch.ones(1, 20, 40)  # a wide white image
    assert fit_square(img, 32, "resize").min() == pytest.approx(1.0)
    pad = fit_square(img, 32, "pad")
    assert pad.shape == (1, 32, 32) and pad[0, :7].max() == 0 and pad[0, 16].min() == pytest.approx(1.0)
    ramp = torch.linspace(0, 1, 40).expand(1, 20, 40)
    crop = fit_square(ramp, 32, "crop")  # the centre of the ramp: neither end survives
    assert crop.shape == (1, 32, 32) and 0.1 < float(crop.min()) and float(crop.max()) < 0.9


def test_generic_samples_follow_the_policy():
    raw = generate_shapes(6, 32, 0)
    assert len({tuple(im.shape) for im in raw.images}) > 1  # varying aspect ratios
    for policy in ("resize", "pad", "crop"):
        s = get_app("classification", "", policy).make_samples(raw, "train", 32, 0, raw)
        assert s.x.shape == (6, 3, 32, 32) and s.x.dtype == torch.uint8
    narrow = int(np.argmin([im.shape[-1] for im in raw.images]))
    padded = get_app("classification", "", "pad").make_samples(raw, "train", 32, 0, raw).x[narrow]
    assert padded[:, :, 0].max() == 0  # a narrow image is padded left and right


def test_flip_rotate_views_are_the_eight_symmetries_of_a_square():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    assert AUGMENT_VIEWS["flip-rotate"] == 8
    views = [apply_views(x, torch.full((2,), v)) for v in range(8)]
    assert torch.equal(views[1], x.flip(-1)) and torch.equal(views[2], torch.rot90(x, 1, (-2, -1)))
    assert len({tuple(v[0].flatten().tolist()) for v in views}) == 8
    mixed = apply_views(x, torch.tensor([3, 6]))
    assert torch.equal(mixed[0], views[3][0]) and torch.equal(mixed[1], views[6][1])


def test_input_size_needs_a_backbone_that_takes_it():
    spec = sized(get_backbone("resnet18"), 48)
    assert spec.input_size == 48 and sized(spec, 0) is spec
    with pytest.raises(ConfigError) as e:
        sized(get_backbone("tiny-alexnet"), 96)
    assert "\n" not in str(e.value) and "--input-size 64" in str(e.value)


@pytest.mark.parametrize("seed", range(3))
def test_mask_dice_is_the_f1_of_the_pixels(seed):
    rng = np.random.default_rng(seed)
    true = (rng.random((4, 16, 16)) < 0.3).astype(int)
    pred = np.where(rng.random((4, 16, 16)) < 0.2, 1 - true, true)
    dice = compute_mask_dice(pred, true, 2)
    for i in range(4):
        assert dice[i] == pytest.approx(f1_score(true[i].ravel(), pred[i].ravel()))
    true[0] = 0  # no foreground: no score
    assert np.isnan(compute_mask_dice(pred, true, 2)[0])


def test_mask_boundary_error_by_hand():
    true = np.zeros((3, 20, 20), int)
    true[:, 4:14, 5] = 1  # a vertical line
    pred = np.zeros_like(true)
    pred[0, 4:14, 5] = 1  # exact
    pred[1, 4:14, 8] = 1  # 3 px to the right: every boundary pixel is 3 px from the other line
    err = compute_mask_boundary_error(pred, true, 2)  # image 2 predicts nothing: the diagonal
    np.testing.assert_allclose(err, [0.0, 3.0, np.hypot(20, 20)])


def test_generic_segmentation_reads_label_masks_without_spacing(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(9):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "masks").mkdir(exist_ok=True)
        w = 40 + 8 * (i % 3)
        Image.fromarray(rng.integers(0, 255, (32, w), dtype=np.uint8)).save(tmp_path / "images" / f"s{i}.png")
        m = np.zeros((32, w), np.uint8)
        m[4:12, 4:12], m[20:28, 20:30] = 128, 255 * (i % 2)  # two classes of foreground, values 128 and 255
        Image.fromarray(m).save(tmp_path / "masks" / f"s{i}.png")
    data = build_split_data(get_app("segmentation", "dice", "pad"), str(tmp_path), 32, 0)
    assert data.num_classes == 3 and data.classes == ("0", "128", "255")
    assert set(np.unique(data.train_mask.numpy()).tolist()) == {0, 1, 2, 255}  # padding is not annotated


def test_generic_detection_cuts_one_patch_per_candidate():
    app = get_app("detection")
    raw = app.generate(12, 64, 0)
    s = app.make_samples(raw, "train", 32, 0, raw)
    assert len(s.y) == len(raw.candidates) and s.x.shape[1:] == (3, 32, 32)
    assert np.array_equal(np.sort(s.meta["candidate"]), np.arange(len(raw.candidates)))
    assert app.metric == "froc" and app.mode == "max"


def shape_folder(root: Path, n: int = 90) -> Path:
    """A 3-class image folder of PNGs of varying aspect (disc/, square/, cross/)."""
    raw = generate_shapes(n, 40, 1)
    for i, (im, k) in enumerate(zip(raw.images, raw.labels)):
        (root / SHAPES[k]).mkdir(parents=True, exist_ok=True)
        Image.fromarray((im[0].numpy() * 255).astype(np.uint8)).save(root / SHAPES[k] / f"img{i:03d}.png")
    return root


@pytest.mark.slow
def test_search_on_a_generated_three_class_folder_with_macro_f1(tmp_path):
    folder = shape_folder(tmp_path / "shapes")
    env = dict(os.environ)  # the session's source cache (conftest)
    exe = str(Path(sys.executable).with_name("tunedepth"))
    cmd = [exe, "run", "--app", "classification", "--data", str(folder), "--metric", "macro-f1", "--smoke",
           "--backbone", "tiny-alexnet", "--depths", "scratch", "--resize", "pad", "--augment", "flip-rotate",
           "--name", "shapes", "--results-dir", str(tmp_path / "results")]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "test macro-f1" in run.stdout and "best tuning depth per data budget" in run.stdout
    saved = yaml.safe_load((tmp_path / "results" / "shapes" / "config.yaml").read_text())
    assert (saved["metric"], saved["mode"], saved["resize"], saved["augment"]) == ("macro-f1", "max", "pad",
                                                                                  "flip-rotate")
    assert "macro-f1" in (tmp_path / "results" / "shapes" / "report.md").read_text()
