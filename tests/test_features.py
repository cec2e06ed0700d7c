"""Frozen-prefix caching: same numbers as the full network, computed once, shared, and off when it must be."""
import pytest
import torch

from tunedepth.apps import get_app
from tunedepth.models import get_backbone, list_backbones
from tunedepth.settings import TrialConfig
from tunedepth.training.features import FeatureStore, features_dir, plan_cache
from tunedepth.training.trial import TrialRun


@pytest.fixture(scope="module")
def data():
    return get_app("colonoscopy-frames").build_data(160, 64, 0)


@pytest.fixture(scope="module")
def weights():
    torch.manual_seed(7)
    return {"fractal": {k: v.clone() for k, v in get_backbone("tiny-alexnet").build(16).state_dict().items()}}


def _cfg(**kw):
    base = dict(
        backbone="tiny-alexnet", source="fractal", depth="fc7-fc8", budget=0.5, lr=1e-3, epochs=3, batch_size=16
    )
    return TrialConfig.from_dict({**base, **kw})


@pytest.mark.parametrize("name", [*list_backbones(), "unet-timm:resnet18"])  # a UNet on a FeatureListNet
def test_stages_compose_to_the_forward_and_follow_the_groups(name):
    spec = get_backbone(name)
    if spec.stages is None:
        pytest.skip(f"{name} declares no stages (always runs in full)")
    torch.manual_seed(0)
    model = spec.build(3).eval()
    stages = spec.stages(model)
    assert len(stages) == len(spec.groups)
    names = {id(p): n for n, p in model.named_parameters()}
    for group, stage in zip(spec.group_names, stages):
        assert {spec.group_of(names[id(p)]) for p in stage.parameters()} == {group}
    x = torch.randn(2, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        ref = model(x)
        for n_frozen in (1, len(spec.groups) - 1):
            prefix, suffix = spec.split(model, n_frozen)
            torch.testing.assert_close(suffix(prefix(x)), ref, rtol=1e-4, atol=1e-5)


def assert_same_trajectory(cfg, data, weights, steps: int = 3):
    """Trials with the cache off and on: the same losses and metric at every step, the same weights after."""
    runs, history = {}, {}
    for on in (False, True):  # one after the other: dropout draws from torch's global generator
        runs[on] = TrialRun(TrialConfig.from_dict({**cfg.to_dict(), "feature_cache": on}), data, weights)
        history[on] = [runs[on].step() for _ in range(steps)]
    assert runs[True].cache.on and not runs[False].cache.on, runs[True].cache.reason
    for full, cached in zip(history[False], history[True]):
        for key in ("train_loss", "val_loss", "val_metric"):
            assert cached[key] == pytest.approx(full[key], rel=1e-4, abs=1e-5), key
    for (k, a), b in zip(runs[False].model.state_dict().items(), runs[True].model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=k)
    return runs


@pytest.mark.parametrize("augment", ["none", "hflip"])
@pytest.mark.parametrize("depth", ["fc8", "fc6-fc8", "conv3-fc8"])
def test_cached_prefix_gives_the_same_loss_trajectory(data, weights, depth, augment):
    assert_same_trajectory(_cfg(depth=depth, augment=augment), data, weights)


def test_hflip_draws_both_views(data, weights):
    run = TrialRun(_cfg(depth="fc8", augment="hflip", epochs=1), data, weights)
    net, inputs, _ = run.inputs()
    idx = torch.arange(4)
    same, mirrored = inputs(idx, torch.zeros(4, dtype=torch.long)), inputs(idx, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(same, mirrored)  # the mirrored images have other features
    assert run.cache.views == 2


def test_features_are_computed_once_and_shared_through_the_disk(data, weights, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEDEPTH_CACHE", str(tmp_path))
    store = FeatureStore()
    monkeypatch.setattr("tunedepth.training.trial.STORE", store)
    for budget, lr in ((0.5, 1e-3), (1.0, 3e-3)):  # other budget, other lr: same prefix, same images
        TrialRun(_cfg(depth="fc6-fc8", budget=budget, lr=lr), data, weights).step()
    assert store.computed == 2  # the train and the validation split, once each
    TrialRun(_cfg(depth="fc7-fc8"), data, weights).step()
    assert store.computed == 4  # another prefix

    other_process = FeatureStore()  # nothing in memory: reads the node's files
    monkeypatch.setattr("tunedepth.training.trial.STORE", other_process)
    TrialRun(_cfg(depth="fc6-fc8", budget=0.25), data, weights).step()
    assert other_process.computed == 0
    assert len(list(features_dir().glob("*.pt"))) == 4


def test_truncated_feature_file_is_recomputed(data, weights, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEDEPTH_CACHE", str(tmp_path))
    store = FeatureStore()
    monkeypatch.setattr("tunedepth.training.trial.STORE", store)
    a = TrialRun(_cfg(depth="fc8"), data, weights).step()
    for f in features_dir().glob("*.pt"):
        f.write_bytes(f.read_bytes()[:100])  # a writer killed mid-file
    fresh = FeatureStore()
    monkeypatch.setattr("tunedepth.training.trial.STORE", fresh)
    b = TrialRun(_cfg(depth="fc8"), data, weights).step()
    assert fresh.computed == 2
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6)


def test_cache_plan_says_why_it_is_off(monkeypatch):
    spec = get_backbone("resnet18")
    model = spec.build(2)
    shape = (3, 224, 224)
    plan = lambda **kw: plan_cache(spec, model, **{**dict(n_trained=1, enabled=True, freeze_bn=True,  # noqa: E731
                                                          augment="none", n_samples=10, input_shape=shape), **kw})
    assert plan().on and plan().n_frozen == len(spec.groups) - 1
    assert "freeze_bn" in plan(freeze_bn=False).reason and not plan(freeze_bn=False).on
    assert "every group" in plan(n_trained=len(spec.groups)).reason
    assert "false" in plan(enabled=False).reason
    tiny = get_backbone("tiny-alexnet")  # no BatchNorm: freeze_bn does not matter
    assert plan_cache(tiny, tiny.build(2), 1, enabled=True, freeze_bn=False, augment="none", n_samples=10,
                      input_shape=(3, 64, 64)).on
    monkeypatch.setenv("TUNEDEPTH_FEATURE_CACHE_MB", "0.001")
    off = plan()
    assert not off.on and "TUNEDEPTH_FEATURE_CACHE_MB" in off.reason


def test_test_split_predictions_match_with_and_without_the_cache(data, weights):
    logits = {}
    for on in (False, True):
        run = TrialRun(_cfg(depth="fc6-fc8", feature_cache=on, epochs=1), data, weights)
        run.step()
        logits[on] = run.predict("test")
    assert logits[True].shape == (len(data.test_y), 2)
    torch.testing.assert_close(logits[True], logits[False], rtol=1e-4, atol=1e-4)


def test_real_image_folder_needing_resize_runs_through_the_cache(monkeypatch, tmp_path):
    """Images that MONAI resizes come back as MetaTensors; the data boundary makes them plain, and the cached
    prefix (saved and re-read with ``weights_only=True``) serves every frozen depth (was: features lost, crash)."""
    import numpy as np
    from PIL import Image

    from tunedepth.apps import build_split_data

    rng = np.random.default_rng(0)
    for c, shift in (("a", 0), ("b", 60)):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(40):
            arr = np.clip(rng.integers(0, 160, (100, 100, 3)) + shift, 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / "imgs" / c / f"{i}.png")
    data = build_split_data(get_app("colonoscopy-frames"), str(tmp_path / "imgs"), 64, seed=0)
    assert all(type(t) is torch.Tensor for t in (data.train_x, data.val_x, data.test_x))
    monkeypatch.setenv("TUNEDEPTH_CACHE", str(tmp_path / "cache"))
    store = FeatureStore()
    monkeypatch.setattr("tunedepth.training.trial.STORE", store)
    torch.manual_seed(7)
    w = {"fractal": get_backbone("tiny-alexnet").build(data.num_classes).state_dict()}
    out = TrialRun(_cfg(backbone="tiny-alexnet", depth="fc8", budget=1.0), data, w).step()
    assert store.computed == 2 and torch.isfinite(torch.tensor(out["train_loss"]))
    assert all(type(torch.load(f, weights_only=True)) is torch.Tensor for f in features_dir().glob("*.pt"))


def test_a_feature_file_unreadable_right_after_writing_is_a_clear_error(monkeypatch, tmp_path):
    from tunedepth.errors import FeatureCacheError

    store = FeatureStore()
    with pytest.raises(FeatureCacheError, match="does not load"):
        store.get("k", lambda: {"not": "a tensor"}, directory=tmp_path)  # type: ignore[arg-type,return-value]


@pytest.fixture(scope="module")
def masks(tmp_path_factory):
    from tunedepth.apps import build_split_data
    from tunedepth.apps.generic import write_mask_folder

    root = write_mask_folder(tmp_path_factory.mktemp("masks"), 24, 64, seed=0)
    return build_split_data(get_app("segmentation"), str(root), 64, seed=0)


@pytest.mark.parametrize("depth", ["decoder", "enc4-decoder"])
def test_unet_cached_encoder_prefix_gives_the_same_trajectory(masks, depth):
    """The UNet's frozen encoder stages run once: their skip levels are cached, the upper stages and the decoder
    train on them, with the same losses, Dice and weights step for step as the full network."""
    from tunedepth.models.sources import get_source_weights

    spec = get_backbone("unet-efficientnet-lite0")
    weights = {"imagenet": get_source_weights("imagenet", spec, log=lambda s: None)}
    cfg = TrialConfig.from_dict(dict(app="segmentation", backbone=spec.name, source="imagenet", depth=depth,
                                     budget=1.0, lr=1e-2, epochs=3, batch_size=8))
    runs = assert_same_trajectory(cfg, masks, weights)
    n_frozen = {"decoder": 5, "enc4-decoder": 3}[depth]
    assert runs[True].cache.n_frozen == n_frozen and len(runs[True].cache.shapes) == n_frozen
    assert runs[True].cache.shapes[0] == (16, 32, 32)  # enc1's map, stride 2
    logits = {on: r.predict("test") for on, r in runs.items()}
    assert logits[True].shape[1:] == (masks.num_classes, 64, 64)
    torch.testing.assert_close(logits[True], logits[False], rtol=1e-4, atol=1e-4)
