"""Every registered app: its generator, its samples and meta, and one epoch at depth 1 and at scratch
through the real trainable (TrialRun), and at depth 1 through Ray Tune on the shared local cluster."""
import sys
import time

import numpy as np
import pytest
import ray
import torch
from ray import tune

from tunedepth.apps import APPS, build_split_data, get_app, list_apps
from tunedepth.data.loaders import LAYOUTS
from tunedepth.data.units import KINDS
from tunedepth.errors import ConfigError
from tunedepth.hpo.trainable import train_depth
from tunedepth.models import BACKBONES, depth_names, get_backbone
from tunedepth.settings import TrialConfig
from tunedepth.training.resolved import check_backbone
from tunedepth.training.trial import TrialRun

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

SPEC = get_backbone("tiny-alexnet")
HEAD_ONLY = depth_names(SPEC)[0]
REQUIRED_META = {"group", "sample_id", "split_group"}
APP_META = {"colonoscopy-frames": {"crop"}, "polyp-detection": {"candidate", "lesion", "scale"},
            "pe-detection": {"candidate", "lesion"},
            "intima-media": {"column", "row", "li_true", "ma_true", "spacing_um"},
            "intima-media-seg": {"li_true", "ma_true", "row_scale", "spacing_um"},
            "classification": set(), "detection": {"candidate", "lesion"}, "segmentation": set()}
# an app's backbone: tiny-alexnet for the classifier apps, monai-unet for the whole-image segmentation app
BACKBONE = {name: "tiny-alexnet" if get_app(name).target == "label" else "monai-unet" for name in list_apps()}


def head_only(app: str) -> str:
    return depth_names(get_backbone(BACKBONE[app]))[0]


@pytest.fixture(scope="module")
def smoke_data():
    return {name: build_split_data(get_app(name), "", get_backbone(BACKBONE[name]).input_size, seed=0, smoke=True)
            for name in list_apps()}


@pytest.fixture(scope="module")
def weights():
    """Per backbone, random weights standing in for the fractal source (no pretraining in these tests)."""
    torch.manual_seed(0)
    return {b: {"fractal": {k: v.clone() for k, v in get_backbone(b).build(16).state_dict().items()}}
            for b in sorted(set(BACKBONE.values()))}


def test_the_four_applications_are_registered():
    assert set(list_apps()) >= {"colonoscopy-frames", "polyp-detection", "pe-detection", "intima-media"}


@pytest.mark.parametrize("name", list_apps())
def test_app_declares_a_complete_contract(name):
    app = get_app(name)
    assert app.kind in KINDS and app.mode in ("max", "min")
    assert app.generate is not None and app.make_samples is not None
    assert app.loaders and all(LAYOUTS[k][0] == app.kind for k in app.loaders)
    assert app.sizes.smoke < app.sizes.full


def _same_images(a, b) -> bool:
    """Equal images (a stacked tensor, or a list of images of different sizes: the generic apps)."""
    return len(a.images) == len(b.images) and all(x.shape == y.shape and torch.equal(x, y)
                                                  for x, y in zip(a.images, b.images))


@pytest.mark.parametrize("name", list_apps())
def test_generator_is_deterministic_fast_and_seeded(name):
    app = get_app(name)
    a, b, c = app.generate(4, 64, 0), app.generate(4, 64, 0), app.generate(4, 64, 1)
    assert _same_images(a, b) and not _same_images(a, c)
    if a.candidates is not None:
        assert a.candidates.equals(b.candidates)
    t0 = time.process_time()  # CPU time: wall time depends on what else runs on a shared machine
    raw = app.generate(app.sizes.smoke, 64, 0)
    assert time.process_time() - t0 < 3.0  # about 1 s on one core
    assert len(raw) == app.sizes.smoke


@pytest.mark.parametrize("name", list_apps())
def test_samples_and_meta(name, smoke_data):
    app, data = get_app(name), smoke_data[name]
    assert data.num_classes == app.num_classes
    size = get_backbone(BACKBONE[name]).input_size
    for x, y, meta in ((data.train_x, data.train_y, data.train_meta), (data.val_x, data.val_y, data.val_meta),
                       (data.test_x, data.test_y, data.test_meta)):
        assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (3, size, size)
        assert y.min() >= 0 and y.max() < app.num_classes and len(y) == len(x)
        assert REQUIRED_META | APP_META[name] <= set(meta)
        assert all(len(v) == len(y) for v in meta.values())
    groups = [set(m["group"].tolist()) for m in (data.train_meta, data.val_meta, data.test_meta)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    split_groups = [set(m["split_group"].tolist()) for m in (data.train_meta, data.val_meta, data.test_meta)]
    assert not (split_groups[0] & split_groups[1] or split_groups[1] & split_groups[2])
    ids = torch.cat([data.train_meta["sample_id"], data.val_meta["sample_id"], data.test_meta["sample_id"]])
    assert ids.unique().numel() == ids.numel()
    rng = np.random.default_rng(0)
    targets = data.targets("val").numpy()  # the labels, or the masks of a whole-image app
    probs = np.moveaxis(rng.dirichlet(np.ones(app.num_classes), targets.shape), -1, 1)
    metrics = app.all_metrics(targets, probs, {k: v.numpy() for k, v in data.val_meta.items()})
    assert app.metric in metrics and np.isfinite(metrics[app.metric])


def test_colonoscopy_frames_are_three_crops_each(smoke_data):
    m = smoke_data["colonoscopy-frames"].val_meta
    assert (np.bincount(m["group"].numpy())[np.unique(m["group"].numpy())] == 3).all()
    assert set(m["crop"].tolist()) == {0, 1, 2}


@pytest.mark.parametrize("name", ["polyp-detection", "pe-detection"])
def test_detection_candidates_have_six_patches_of_one_label(name, smoke_data):
    data = smoke_data[name]
    cand, y = data.val_meta["candidate"].numpy(), data.val_y.numpy()
    assert (np.bincount(cand)[np.unique(cand)] == 6).all()
    for c in np.unique(cand)[:50]:
        assert len(set(y[cand == c].tolist())) == 1
    lesion = data.val_meta["lesion"].numpy()
    assert ((lesion >= 0) == (y == 1)).all()
    if name == "pe-detection":  # the third channel repeats the longitudinal plane
        assert torch.equal(data.val_x[:, 1], data.val_x[:, 2]) and not torch.equal(data.val_x[:, 0], data.val_x[:, 1])
    else:  # three scales, each centred and shifted+mirrored
        assert sorted(np.bincount(data.val_meta["scale"].numpy()).tolist()) == [len(y) // 3] * 3


def test_intima_media_evaluates_whole_columns_of_the_roi(smoke_data):
    data = smoke_data["intima-media"]
    m = {k: v.numpy() for k, v in data.val_meta.items()}
    for unit in np.unique(m["group"]):
        sel = m["group"] == unit
        cols = np.unique(m["column"][sel])
        assert cols.size == 6
        rows = [np.sort(m["row"][sel & (m["column"] == c)]) for c in cols]
        assert all(np.array_equal(r, np.arange(r[0], r[-1] + 1)) for r in rows)  # a contiguous band
        assert all(r[0] < m["li_true"][sel].min() and r[-1] > m["ma_true"][sel].max() for r in rows)
    y = data.val_y.numpy()
    assert (np.bincount(y, minlength=3)[1:] == len(np.unique(m["group"])) * 6).all()  # one LI and one MA per column
    assert set(np.unique(data.train_y.numpy()).tolist()) == {0, 1, 2}


@pytest.mark.parametrize("name", list_apps())
@pytest.mark.parametrize("depth", ["head", "scratch"])
def test_one_epoch_through_trialrun(name, depth, smoke_data, weights):
    app, data = get_app(name), smoke_data[name]
    depth = head_only(name) if depth == "head" else depth
    run = TrialRun(TrialConfig(app=name, backbone=BACKBONE[name], source="fractal", depth=depth, budget=1.0,
                               lr=1e-3, epochs=1, batch_size=64), data, weights[BACKBONE[name]])
    m = run.step()
    assert m["epoch"] == 1 and np.isfinite(m["val_metric"]) and np.isfinite(m["train_loss"])
    assert m["n_train"] == len(data.train_y)
    if app.mode == "max":
        assert 0.0 <= m["val_metric"] <= 1.0
    else:
        assert m["val_metric"] > 0.0


def _train_app(config, datasets, weights):
    """The real trainable, fed the data and backbone of the trial's app (one Tune run covers every app)."""
    backbone = BACKBONE[config["app"]]
    config = {**config, "backbone": backbone, "source": "fractal",
              "depth": head_only(config["app"]) if config["depth"] == "head" else config["depth"]}
    return train_depth(config, datasets[config["app"]], weights[backbone])


@pytest.mark.slow
def test_every_app_one_epoch_at_depth_1_through_tune(ray_local, tmp_path, smoke_data, weights):
    """Every app's head-only trial through Ray Tune (scratch trials run through Tune in the end-to-end tests;
    every app at scratch runs through TrialRun above)."""
    tuner = tune.Tuner(
        tune.with_parameters(_train_app, datasets=smoke_data, weights=weights),
        param_space={"app": tune.grid_search(list_apps()), "depth": "head",
                     "budget": 1.0, "epochs": 1, "batch_size": 64, "lr": 1e-3},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="apps", verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    results = tuner.fit()
    assert not results.errors
    rows = {r.config["app"]: r.metrics for r in results}
    assert set(rows) == set(list_apps())
    for app, metrics in rows.items():
        assert metrics["epoch"] == 1 and np.isfinite(metrics["val_metric"]), app
        assert metrics["source"] == "fractal" and metrics["n_train"] == len(smoke_data[app].train_y)
        scratch = TrialRun(TrialConfig(app=app, backbone=BACKBONE[app], source="fractal", depth="scratch",
                                       budget=1.0, epochs=1, batch_size=64), smoke_data[app], weights[BACKBONE[app]])
        assert 0 < metrics["trainable_params"] < scratch.n_trainable, app


def test_apps_listing_shows_kind_and_layouts(capsys):
    from tunedepth.cli.main import main

    assert main(["apps"]) == 0
    out = capsys.readouterr().out
    for name, app in APPS.items():
        assert name in out and app.kind in out and app.metric in out
    assert "candidates-csv" in out and "medmnist" in out


@pytest.mark.parametrize("app,backbone", [("intima-media-seg", "tiny-alexnet"), ("colonoscopy-frames", "monai-unet"),
                                          ("intima-media", "monai-unet")])
def test_a_wrong_backbone_for_the_app_is_one_line_naming_the_fix(app, backbone):
    with pytest.raises(ConfigError) as e:
        check_backbone(get_app(app), get_backbone(backbone))
    msg = str(e.value)
    assert "\n" not in msg and "--backbone" in msg
    fits = [b for b, s in BACKBONES.items() if s.output == get_app(app).target]
    assert all(b in msg for b in fits)


def test_a_wrong_backbone_stops_the_cli_before_any_data_or_trial(tmp_path, capsys):
    from tunedepth.cli.main import main

    assert main(["run", "--app", "intima-media-seg", "--backbone", "tiny-alexnet", "--smoke",
                 "--results-dir", str(tmp_path), "--name", "wrong"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--backbone monai-unet" in err[0]
    assert not (tmp_path / "wrong" / "tune").exists()


def test_intima_seg_masks_mark_the_rows_between_the_interfaces(smoke_data):
    data = smoke_data["intima-media-seg"]
    mask, meta = data.val_mask.numpy(), {k: v.numpy() for k, v in data.val_meta.items()}
    assert data.val_mask.shape == (len(data.val_y), 96, 96) and set(np.unique(mask)) == {0, 1, 2}
    assert np.allclose(meta["row_scale"], 1.0)  # the generator's 96x96 images at the backbone's 96 px
    for i in range(len(mask)):
        for c in (0, 40, 95):
            col = mask[i, :, c]
            li, ma = round(meta["li_true"][i, c]), round(meta["ma_true"][i, c])
            assert (col[:li] == 0).all() and (col[li:ma + 1] == 1).all() and (col[ma + 1:] == 2).all()
