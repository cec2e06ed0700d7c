"""The streaming path (samples decoded to disk, read per batch) against the in-memory path on one small image
folder: the same units, splits and budgets, the same samples, fingerprints and prefix features, and a trial
that trains on either gives the same numbers."""
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tunedepth.apps import build_split_data, get_app
from tunedepth.data import splits_frame
from tunedepth.data.stream import DiskImages, use_stream
from tunedepth.models import get_backbone
from tunedepth.settings import TrialConfig
from tunedepth.training.features import FeatureStore, compute_features
from tunedepth.training.trial import TrialRun

SPLITS = ("train", "val", "test")


@pytest.fixture()
def folder(tmp_path):
    """Two classes of 36 images each, of mixed sizes, in an ImageFolder tree."""
    rng = np.random.default_rng(0)
    for c, shift in (("a", 0), ("b", 70)):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(36):
            h, w = 60 + 9 * (i % 4), 70 + 5 * (i % 3)
            arr = np.clip(rng.integers(0, 150, (h, w, 3)) + shift, 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / "imgs" / c / f"{i:02d}.png")
    return tmp_path / "imgs"


def _trial(depth: str, **kw) -> TrialConfig:
    return TrialConfig.from_dict({"app": "colonoscopy-frames", "backbone": "tiny-alexnet", "source": "fractal",
                                  "depth": depth, "budget": 0.5, "lr": 0.01, "seed": 0, "epochs": 1,
                                  "batch_size": 16, **kw})


def test_stream_auto_switches_on_the_decoded_size():
    assert not use_stream("auto", 1000, 224, threshold_bytes=1000 * 3 * 224 * 224)
    assert use_stream("auto", 1001, 224, threshold_bytes=1000 * 3 * 224 * 224)
    assert use_stream("on", 1, 64, 1 << 40) and not use_stream("off", 10**9, 224, 0)


def test_stream_on_refuses_apps_that_cut_samples_across_units():
    from tunedepth.errors import ConfigError

    with pytest.raises(ConfigError, match="polyp-detection .*--stream off"):
        build_split_data(get_app("polyp-detection"), "", 64, seed=0, smoke=True, stream="on")


def test_an_unreadable_file_is_one_line_on_either_path(folder):
    from tunedepth.errors import ConfigError

    (folder / "a" / "broken.png").write_bytes(b"not a png")
    for stream in ("off", "on"):
        with pytest.raises(ConfigError, match="broken.png") as e:
            build_split_data(get_app("colonoscopy-frames"), str(folder), 64, seed=0, stream=stream)
        assert len(str(e.value).splitlines()) == 1 and "Traceback" not in str(e.value)


def test_streamed_data_equals_the_in_memory_data(folder, monkeypatch):
    app = get_app("colonoscopy-frames")
    mem = build_split_data(app, str(folder), 64, seed=3, stream="off")
    disk = build_split_data(app, str(folder), 64, seed=3, stream="auto", stream_bytes=0)  # auto: above 0 bytes
    assert isinstance(disk.train_x, DiskImages) and type(mem.train_x) is torch.Tensor
    budgets = (0.25, 0.5, 1.0)
    pd.testing.assert_frame_equal(splits_frame(mem, budgets), splits_frame(disk, budgets))  # units, splits, budgets
    pd.testing.assert_frame_equal(mem.units, disk.units)
    for s in SPLITS:
        x = getattr(disk, f"{s}_x")
        assert torch.equal(x[:], getattr(mem, f"{s}_x")) and disk.fingerprint(s) == mem.fingerprint(s)
        assert torch.equal(getattr(disk, f"{s}_y"), getattr(mem, f"{s}_y"))
        for k, v in getattr(mem, f"{s}_meta").items():
            assert torch.equal(getattr(disk, f"{s}_meta")[k], v), (s, k)
    idx = torch.tensor([5, 0, 6, 7, 1, 30, 5])  # any order, repeats, runs of consecutive rows
    assert torch.equal(disk.train_x[idx], mem.train_x[idx])
    assert torch.equal(disk.train_x.take(idx)[torch.tensor([1, 6])], mem.train_x[idx][[1, 6]])
    assert len(pickle.dumps(disk)) < len(pickle.dumps(mem)) / 20  # Ray ships paths, not pixels
    assert torch.equal(pickle.loads(pickle.dumps(disk.val_x))[:], mem.val_x)

    # the frozen prefix's features, from disk batch by batch, equal those from memory
    spec = get_backbone("tiny-alexnet")
    torch.manual_seed(0)
    prefix, _ = spec.split(spec.build(2), 5)
    f_mem = compute_features(prefix, mem.train_x, None, 2, torch.device("cpu"), batch_size=16)
    f_disk = compute_features(prefix, disk.train_x, None, 2, torch.device("cpu"), batch_size=16)
    assert torch.equal(f_mem, f_disk)

    # a trial trains and validates the same on either, on images (full depth) and on cached features (fc8)
    torch.manual_seed(1)
    weights = {"fractal": spec.build(2).state_dict()}
    for depth, cache in (("conv1-fc8", False), ("fc8", True)):
        monkeypatch.setattr("tunedepth.training.trial.STORE", FeatureStore())
        a = TrialRun(_trial(depth, feature_cache=cache), mem, weights).step()
        b = TrialRun(_trial(depth, feature_cache=cache), disk, weights).step()
        assert a["feature_cache"] == b["feature_cache"] == cache
        assert (a["train_loss"], a["val_metric"], a["val_loss"]) == pytest.approx(
            (b["train_loss"], b["val_metric"], b["val_loss"]), rel=1e-5)
