"""Source check: a linear probe on frozen penultimate features, source vs random-init weights.

Null case: a "source" that is exactly the random-init control scores exactly the same (not better than
random). Effect case: ImageNet EfficientNet-Lite0 features beat random ones on the colonoscopy task. The
report's note reads only the JSON (no torch)."""
import json

import pytest
import torch

from tunedepth.analysis.source_check import source_check_note
from tunedepth.apps import get_app
from tunedepth.models import get_backbone
from tunedepth.models.sources import get_source_weights
from tunedepth.models.weights import SourceWeights
from tunedepth.training.probe import check_source, penultimate_features

APP = get_app("colonoscopy-frames")


@pytest.fixture(scope="module")
def data():
    return APP.build_data(80, 64, 0)


def test_a_source_equal_to_the_random_control_is_no_better(data):
    spec = get_backbone("tiny-alexnet")
    torch.manual_seed(0)  # the probe's random control is seed 0: the same weights
    same = SourceWeights(spec.build(2).state_dict())
    check = check_source(APP, spec, data, "file:same.pt", same)
    assert check.source_val == pytest.approx(check.random_val)
    assert not check.better_than_random
    assert check.features == 256 and check.n_train == len(data.train_y)  # fc7's output feeds fc8


def test_imagenet_lite0_features_beat_random_ones(data):
    spec = get_backbone("efficientnet-lite0")
    weights = get_source_weights("imagenet", spec, log=lambda s: None)
    check = check_source(APP, spec, data, "imagenet", weights)
    assert check.features == 1280
    assert check.better_than_random and check.source_val > check.random_val + 0.05, check


def test_penultimate_features_are_the_heads_input(data):
    spec = get_backbone("tiny-alexnet")
    model = spec.build(2).eval()
    f = penultimate_features(model, spec, data.val_x[:5], None)
    with torch.no_grad():
        logits = model(torch.as_tensor(data.val_x[:5]).float() / 255 * 4 - 2)  # (x - 0.5) / 0.25
    torch.testing.assert_close(model.fc8(torch.from_numpy(f)), logits, rtol=1e-4, atol=1e-4)


def test_report_note_only_when_no_better_than_random(tmp_path):
    check = {"source": "fractal", "backbone": "tiny-alexnet", "app": "colonoscopy-frames", "metric": "auc",
             "mode": "max", "features": 256, "n_train": 360, "n_val": 120, "source_val": 0.834, "random_val": 0.903,
             "random_seed": 0, "seconds": 1.0, "better_than_random": False}
    path = tmp_path / "source_check.json"
    assert source_check_note(path) is None  # no file: no note
    path.write_text(json.dumps(check))
    note = source_check_note(path)
    assert note.startswith("source fractal does no better than random weights") and "0.834" in note and "0.903" in note
    path.write_text(json.dumps({**check, "source_val": 0.95, "better_than_random": True}))
    assert source_check_note(path) is None


@pytest.mark.slow
def test_weights_keep_their_normalisation_through_rays_object_store(ray_local):
    """Trials receive the weights through tune.with_parameters (ray.put): the norm must survive it."""
    weights = SourceWeights({"w": torch.ones(3)}, ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    back = ray_local.get(ray_local.put({"imagenet": weights}))["imagenet"]
    assert back.norm == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)) and torch.equal(back["w"], weights["w"])
