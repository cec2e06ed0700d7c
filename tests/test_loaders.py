"""Real-data loaders on tiny files the tests write: ImageFolder, CSV manifest, MedMNIST .npz, image/mask
folders, a MONAI datalist JSON, detection candidate CSVs (2-D images and 3-D .npy volumes)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tunedepth.apps import build_split_data, get_app
from tunedepth.apps.colonoscopy import render_frames
from tunedepth.data.loaders import detect_layout, load_units
from tunedepth.data.loaders.files import read_image
from tunedepth.data.loaders.segmentation import boundaries_from_mask
from tunedepth.errors import ConfigError
from tunedepth.settings import TrialConfig
from tunedepth.training.trial import TrialRun

MODES = ("RGB", "L", "RGBA", "P", "I;16", "LA", "CMYK", "1")


def _frame_images(n, seed=0, size=40):
    images, labels, _ = render_frames(n, size, seed)
    return images.permute(0, 2, 3, 1).numpy(), labels.numpy()


def _save(arr, path, mode, size):
    im = Image.fromarray(arr).resize(size)
    if mode == "I;16":
        grey = np.asarray(im.convert("L"), dtype=np.uint16) * 257
        im = Image.fromarray(grey)  # a 16-bit grey image
    elif mode != "RGB":
        im = im.convert(mode)
    im.save(path)


@pytest.fixture()
def image_folder(tmp_path):
    return _image_folder(tmp_path)


def _image_folder(tmp_path):
    """A 2-class ImageFolder of 40 frames in mixed modes, sizes and formats."""
    root = tmp_path / "frames"
    images, labels = _frame_images(40)
    for i, (a, y) in enumerate(zip(images, labels)):
        d = root / ("informative" if y else "blurry")
        d.mkdir(parents=True, exist_ok=True)
        mode = MODES[i % len(MODES)]
        ext = ".jpg" if mode == "CMYK" else ".tif" if mode == "I;16" else ".png"
        _save(a, d / f"f{i:03d}{ext}", mode, (30 + 7 * (i % 5), 40 + 3 * (i % 4)))
    return root


def test_read_image_converts_every_mode(tmp_path):
    a = (np.arange(48 * 32 * 3) % 251).astype(np.uint8).reshape(32, 48, 3)
    for mode in MODES:
        p = tmp_path / f"x_{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'tif' if mode == 'I;16' else 'png'}"
        _save(a, p, mode, (48, 32))
        x = read_image(p)
        assert x.dtype == torch.float32 and x.shape[0] in (1, 3) and tuple(x.shape[1:]) == (32, 48), mode
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0, mode
    assert read_image(tmp_path / "x_RGB.png", grey=True).shape[0] == 1


def test_imagefolder_mixed_modes_and_sizes_become_64px_rgb(image_folder):
    app = get_app("colonoscopy-frames")
    assert detect_layout(image_folder, app) == "imagefolder"
    raw = load_units(image_folder, app)
    assert raw.classes == ("blurry", "informative") and len(raw) == 40
    data = build_split_data(app, str(image_folder), 64, seed=0)
    assert data.train_x.dtype == torch.uint8 and tuple(data.train_x.shape[1:]) == (3, 64, 64)
    assert data.num_classes == 2 and data.classes == ("blurry", "informative")
    assert len(data.train_y) + len(data.val_y) + len(data.test_y) == 3 * 40


def _manifest(tmp_path):
    """45 PNGs of 3 classes, 3 per patient, listed in manifest.csv."""
    images, _ = _frame_images(45, seed=1)
    rows = []
    for i, a in enumerate(images):
        Image.fromarray(a).save(tmp_path / f"img{i}.png")
        rows.append({"path": f"img{i}.png", "label": ["a", "b", "c"][i % 3], "group": f"patient{i // 3}"})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path / "manifest.csv"


def test_csv_manifest_with_groups_and_three_classes(tmp_path):
    data = build_split_data(get_app("colonoscopy-frames"), str(_manifest(tmp_path)), 64, seed=0)
    assert data.num_classes == 3 and data.classes == ("a", "b", "c")
    units = data.units
    assert units.groupby("source_group")["split"].nunique().max() == 1  # a patient never straddles splits
    run = TrialRun(
        TrialConfig(app="colonoscopy-frames", backbone="tiny-alexnet", depth="scratch", epochs=1, batch_size=32),
        data,
        {},
    )
    assert run.model.fc8.out_features == 3 and np.isfinite(run.step()["val_metric"])
    assert get_app("colonoscopy-frames").num_classes == 2  # the app itself is unchanged


def test_missing_and_corrupt_files_are_one_line_errors(tmp_path):
    images, _ = _frame_images(6, seed=2)
    for i, a in enumerate(images):
        Image.fromarray(a).save(tmp_path / f"img{i}.png")
    pd.DataFrame({"path": [f"img{i}.png" for i in range(6)] + ["gone.png"], "label": [0, 1] * 3 + [1]}).to_csv(
        tmp_path / "m.csv", index=False)
    app = get_app("colonoscopy-frames")
    with pytest.raises(ConfigError, match=r"gone\.png not found \(line 8 of .*m\.csv\); fix the path") as e:
        build_split_data(app, str(tmp_path / "m.csv"), 64, 0)
    assert "\n" not in str(e.value)
    (tmp_path / "img3.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    pd.DataFrame({"path": [f"img{i}.png" for i in range(6)], "label": [0, 1] * 3}).to_csv(
        tmp_path / "m.csv", index=False
    )
    with pytest.raises(ConfigError, match=r"cannot read .*img3\.png .*replace the file or remove the entry"):
        build_split_data(app, str(tmp_path / "m.csv"), 64, 0)
    pd.DataFrame({"file": ["img0.png"], "label": [0]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ConfigError, match=r"lacks column\(s\) \['path'\]"):
        build_split_data(app, str(tmp_path / "bad.csv"), 64, 0)
    with pytest.raises(ConfigError, match="no such file or folder"):
        build_split_data(app, str(tmp_path / "nowhere"), 64, 0)
    (tmp_path / "x.npz").write_bytes(b"")
    with pytest.raises(ConfigError, match="does not read this; it takes candidates-csv"):
        build_split_data(get_app("polyp-detection"), str(tmp_path / "x.npz"), 64, 0)


def _medmnist(path, n=(60, 20, 20), shape=(28, 28), classes=4, multilabel=False):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        y = rng.integers(0, classes, (k, 1))
        base = (y[:, :, None] * 60).astype(np.uint8)  # learnable: brightness follows the class
        arrays[f"{split}_images"] = (base + rng.integers(0, 40, (k,) + shape)).astype(np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (k, 5)) if multilabel else y
    np.savez(path, **arrays)
    return path


def test_medmnist_npz_keeps_the_official_split(tmp_path):
    path = _medmnist(tmp_path / "pneumoniamnist.npz")
    app = get_app("colonoscopy-frames")
    raw = load_units(path, app)
    assert len(raw) == 100 and raw.split is not None and (raw.split[:60] == "train").all()
    data = build_split_data(app, str(path), 64, seed=0)
    assert tuple(data.val_x.shape) == (20 * 3, 3, 64, 64) and data.num_classes == 4
    counts = data.units["split"].value_counts().to_dict()
    assert counts == {"train": 60, "val": 20, "test": 20}


def test_medmnist_errors_name_the_file(tmp_path):
    app = get_app("colonoscopy-frames")
    with pytest.raises(ConfigError, match=r"MedMNIST file .*dermamnist\.npz not found; nothing is downloaded"):
        build_split_data(app, str(tmp_path / "dermamnist.npz"), 64, 0)
    with pytest.raises(ConfigError, match="multi-label"):
        load_units(_medmnist(tmp_path / "chestmnist.npz", multilabel=True), app)
    np.savez(tmp_path / "other.npz", images=np.zeros((3, 28, 28)))
    with pytest.raises(ConfigError, match="a MedMNIST file has train_images"):
        load_units(tmp_path / "other.npz", app)


def _ultrasound(tmp_path, n=9, with_spacing=True):
    """Pairs of grey images and intima-media masks (rows 20..27 in every column, shifted per image)."""
    rng = np.random.default_rng(0)
    img_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    img_dir.mkdir()
    mask_dir.mkdir()
    for i in range(n):
        top = 18 + i % 4
        img = (rng.random((48, 56)) * 60).astype(np.uint8)
        img[top : top + 8] += 120
        mask = np.zeros((48, 56), np.uint8)
        mask[top : top + 8, 4:52] = 1
        mode = ("L", "RGB", "I;16")[i % 3]
        im = Image.fromarray(img)
        if mode == "I;16":
            im = Image.fromarray(img.astype(np.uint16) * 200)
        elif mode == "RGB":
            im = im.convert("RGB")
        im.save(img_dir / f"scan{i}.png")
        Image.fromarray(mask * 255).save(mask_dir / f"scan{i}_mask.png")
    if with_spacing:
        pd.DataFrame({"image": ["*", "scan0.png"], "spacing_um": [60.0, 50.0],
                      "group": [None, "p0"]}).to_csv(tmp_path / "spacing.csv", index=False)
    return tmp_path


def test_boundaries_from_mask_by_hand():
    m = np.zeros((6, 4), int)
    m[2:5, 1] = 1
    m[1:3, 2] = 2
    b = boundaries_from_mask(m)
    assert np.isnan(b[:, 0]).all() and np.isnan(b[:, 3]).all()
    assert b[:, 1].tolist() == [2, 4] and b[:, 2].tolist() == [1, 2]


def test_image_mask_folders_for_intima_media(tmp_path):
    root = _ultrasound(tmp_path)
    app = get_app("intima-media")
    assert detect_layout(root, app) == "image-mask-folders"
    raw = load_units(root, app)
    assert raw.spacing_um.tolist()[:2] == [50.0, 60.0]
    top = 18
    assert raw.boundaries[0][0, 10] == top and raw.boundaries[0][1, 10] == top + 7
    data = build_split_data(app, str(root), 64, seed=0)
    assert tuple(data.val_x.shape[1:]) == (3, 64, 64) and set(data.train_y.unique().tolist()) == {0, 1, 2}
    spacing = np.unique(np.r_[data.val_meta["spacing_um"].numpy(), data.test_meta["spacing_um"].numpy(),
                              data.train_meta["spacing_um"].numpy()])
    assert set(spacing.tolist()) <= {50.0, 60.0}


def test_segmentation_errors(tmp_path):
    app = get_app("intima-media")
    (tmp_path / "a").mkdir()
    root = _ultrasound(tmp_path / "a", with_spacing=False)
    with pytest.raises(ConfigError, match=r"no pixel spacing for scan0\.png: add .*spacing\.csv"):
        load_units(root, app)
    (root / "images" / "extra.png").write_bytes((root / "images" / "scan0.png").read_bytes())
    with pytest.raises(ConfigError, match=r"no mask in .* e\.g\. extra\.png"):
        load_units(root, app)


def _datalist(tmp_path):
    """The ultrasound pairs listed in a MONAI/Decathlon datalist, dataset.json."""
    root = _ultrasound(tmp_path)
    items = [{"image": f"images/scan{i}.png", "label": f"masks/scan{i}_mask.png", "group": f"p{i // 2}"}
             for i in range(9)]
    items[0]["spacing_um"] = 45.0
    (root / "dataset.json").write_text(json.dumps({"name": "carotid", "spacing_um": 65.0, "training": items}))
    return root


def test_decathlon_datalist_json(tmp_path):
    root = _datalist(tmp_path)
    app = get_app("intima-media")
    assert detect_layout(root / "dataset.json", app) == "datalist-json"
    raw = load_units(root / "dataset.json", app)
    assert raw.spacing_um.tolist()[:2] == [45.0, 65.0] and raw.groups.tolist()[:3] == ["p0", "p0", "p1"]
    assert raw.names[0] == "images/scan0.png"
    data = build_split_data(app, str(root / "dataset.json"), 64, seed=0)
    assert data.units.groupby("source_group")["split"].nunique().max() == 1
    bad = dict(training=[{"image": "images/scan0.png", "label": "masks/scan0_mask.png"}])
    (root / "nospacing.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="no positive spacing_um"):
        load_units(root / "nospacing.json", app)


def _candidates_2d(tmp_path):
    """12 JPEG frames of 3 videos, one lesion candidate and two others per frame, in candidates.csv."""
    images, _ = _frame_images(12, seed=3, size=80)
    rows = []
    rng = np.random.default_rng(0)
    for i, a in enumerate(images):
        Image.fromarray(a).save(tmp_path / f"frame{i}.jpg")
        rows.append({"image": f"frame{i}.jpg", "x": 40, "y": 40, "label": 1, "group": f"video{i // 4}", "size": 14})
        for _ in range(2):
            rows.append({"image": f"frame{i}.jpg", "x": int(rng.integers(10, 70)), "y": int(rng.integers(10, 70)),
                         "label": 0, "group": f"video{i // 4}"})
    pd.DataFrame(rows).to_csv(tmp_path / "candidates.csv", index=False)
    return rows


def test_detection_candidates_csv_on_2d_frames(tmp_path):
    rows = _candidates_2d(tmp_path)
    app = get_app("polyp-detection")
    assert detect_layout(tmp_path / "candidates.csv", app) == "candidates-csv"
    data = build_split_data(app, str(tmp_path / "candidates.csv"), 64, seed=0, neg_per_pos=0)
    assert len(data.train_y) + len(data.val_y) + len(data.test_y) == 36 * 6
    assert data.units.groupby("source_group")["split"].nunique().max() == 1
    bad = pd.DataFrame(rows)
    bad.loc[1, "x"] = 500
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ConfigError, match="has x outside 0..79"):
        load_units(tmp_path / "bad.csv", app)
    # a lesion the candidate generator missed on frame 0: label 1, empty coordinates; it reaches FROC's count
    missed = pd.DataFrame(rows + [{"image": "frame0.jpg", "label": 1, "group": "video0"}])
    missed.to_csv(tmp_path / "missed.csv", index=False)
    raw = load_units(tmp_path / "missed.csv", app)
    assert len(raw.candidates) == 36 and raw.candidates.groupby("unit")["missed"].first().tolist() == [1] + [0] * 11
    samples = app.make_samples(raw.subset(np.array([0, 1])), "test", 64, 0, raw)
    assert samples.meta["missed_lesions"].tolist() == [1] * 18 + [0] * 18
    pd.DataFrame(rows).assign(label=0).to_csv(tmp_path / "neg.csv", index=False)
    with pytest.raises(ConfigError, match="needs lesion \\(1\\) and non-lesion \\(0\\) candidates"):
        load_units(tmp_path / "neg.csv", app)


def _candidates_3d(tmp_path, n=6):
    """``n`` generated CT volumes as .npy files and their candidates in cands.csv."""
    raw = get_app("pe-detection").generate(n, 64, 0)
    rows = []
    for i in range(n):
        np.save(tmp_path / f"ct{i}.npy", raw.images[i].numpy())
        for r in raw.candidates[raw.candidates.unit == i].itertuples():
            rows.append({"image": f"ct{i}.npy", "x": r.x, "y": r.y, "z": r.z, "label": r.label})
    pd.DataFrame(rows).to_csv(tmp_path / "cands.csv", index=False)
    return raw


def test_detection_candidates_csv_on_3d_volumes(tmp_path):
    app = get_app("pe-detection")
    raw = _candidates_3d(tmp_path)
    loaded = load_units(tmp_path / "cands.csv", app)
    assert loaded.is_3d and len(loaded) == 6 and torch.equal(loaded.images[2], raw.images[2])
    same = app.make_samples(loaded, "val", 64, 0, loaded)
    ref = app.make_samples(raw, "val", 64, 0, raw)
    assert torch.equal(same.x, ref.x)  # the same patches from files as from memory


def test_demo_flags_reach_the_search_config():
    from tunedepth.cli.main import build_parser

    args = build_parser().parse_args(["demo", "--app", "pe-detection", "--data", "/x/c.csv", "--data-samples", "9",
                                      "--smoke"])
    assert (args.app, args.data, args.data_samples, args.smoke) == ("pe-detection", "/x/c.csv", 9, True)


@pytest.mark.slow
def test_search_on_real_files_writes_splits_parquet(ray_local, image_folder, tmp_path):
    from tunedepth.config import SearchConfig
    from tunedepth.hpo.runner import run_search

    cfg = SearchConfig(
        name="real",
        app="colonoscopy-frames",
        backbone="tiny-alexnet",
        data=str(image_folder),
        depths=("scratch",),
        budgets=(0.5, 1.0),
        epochs=1,
        scheduler="none",
        batch_size=16,
        results_dir=str(tmp_path),
    )
    out = run_search(cfg, log=lambda s: None)
    assert not out.errors and len(out.validation) == 2
    splits = pd.read_parquet(tmp_path / "real" / "splits.parquet")
    assert len(splits) == 3 * 40 and set(splits["split"]) == {"train", "val", "test"}
    assert splits["unit"].str.contains("informative/|blurry/").all()  # the user's file names
    train = splits[splits.split == "train"]
    n_half = out.trials.loc[out.trials.budget == 0.5, "n_train"].iloc[0]
    assert (train["budget"] == 0.5).sum() == n_half and (train["budget"] == 1.0).sum() == len(train) - n_half


LAYOUT_CASES = {  # layout: (app, write the files under tmp_path and return the --data path)
    "imagefolder": ("colonoscopy-frames", lambda p: _image_folder(p)),
    "csv-manifest": ("colonoscopy-frames", _manifest),
    "medmnist-npz": ("colonoscopy-frames", lambda p: _medmnist(p / "pneumoniamnist.npz")),
    "image-mask-folders": ("intima-media", _ultrasound),
    "datalist-json": ("intima-media", lambda p: _datalist(p) / "dataset.json"),
    "candidates-csv-2d": ("polyp-detection", lambda p: (_candidates_2d(p), p / "candidates.csv")[1]),
    "candidates-csv-3d": ("pe-detection", lambda p: (_candidates_3d(p, n=8), p / "cands.csv")[1]),
}


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUT_CASES))
def test_every_loader_feeds_a_cached_tune_trial(ray_local, layout, tmp_path, monkeypatch):
    """Each loader's output goes through a real Tune trial at a frozen depth, i.e. through the feature cache
    (saved with ``weights_only`` and read back): the trial ends ``ok`` with a finite metric (issue 16.1)."""
    from tunedepth.config import SearchConfig
    from tunedepth.hpo.runner import run_search
    from tunedepth.models import get_backbone

    app, write = LAYOUT_CASES[layout]
    (tmp_path / "data").mkdir()
    data = write(tmp_path / "data")
    monkeypatch.setenv("TUNEDEPTH_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    torch.save(get_backbone("tiny-alexnet").build(2).state_dict(), tmp_path / "w.pt")
    cfg = SearchConfig(name=layout, app=app, backbone="tiny-alexnet", source=f"file:{tmp_path / 'w.pt'}",
                       data=str(data), depths=("fc8",), budgets=(1.0,), epochs=1, scheduler="none", samples=1,
                       seeds=(0,), batch_size=16, results_dir=str(tmp_path))
    out = run_search(cfg, log=lambda s: None)
    assert not out.errors, out.errors
    assert set(out.trials["status"]) == {"ok"} and np.isfinite(out.trials["val_metric"]).all()
    rows = [json.loads(line) for f in (tmp_path / layout / "tune").glob("*/result.json")
            for line in f.read_text().splitlines() if line.strip()]
    assert rows and all(r["feature_cache"] for r in rows)
    assert list((tmp_path / "cache").rglob("*.pt"))  # the prefix features were written and served
