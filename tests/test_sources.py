"""Pretrained sources: file:PATH (torchvision-format files written here), imagenet from the torch cache / offline,
and the fractal source (deterministic from its seed, cached, and the ``tunedepth pretrain`` command)."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torchvision

from tunedepth.cli.main import main
from tunedepth.errors import ConfigError
from tunedepth.models import get_backbone
from tunedepth.models.fractal import (
    FractalRecipe,
    fractal_cache_path,
    fractal_dataset,
    pretrain_fractal,
    random_resized_crop,
)
from tunedepth.models.sources import download, get_source_weights, imagenet_file, load_pretrained


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    """A torchvision-format AlexNet state_dict (1000-class head, as ImageNet's), saved by torch.save."""
    torch.manual_seed(1)
    state = torchvision.models.alexnet(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "alexnet.pth"
    torch.save(state, path)
    return path, state


def test_torchvision_alexnet_state_dict_loads_through_file(alexnet_file):
    path, state = alexnet_file
    spec = get_backbone("alexnet")
    weights = get_source_weights(f"file:{path}", spec, log=lambda s: None)
    torch.manual_seed(2)
    model = spec.build(2)
    head_before = model.classifier[6].weight.clone()
    load_pretrained(model, spec, weights)
    for key in ("features.0.weight", "features.10.bias", "classifier.1.weight", "classifier.4.bias"):
        assert torch.equal(model.state_dict()[key], state[key]), key
    assert torch.equal(model.classifier[6].weight, head_before)  # the 2-class head stays new


def test_checkpoint_dicts_and_dataparallel_prefixes_are_unwrapped(tmp_path):
    spec = get_backbone("tiny-alexnet")
    state = spec.build(10).state_dict()
    torch.save({"epoch": 3, "model": state, "optimizer": {}}, tmp_path / "trial.pt")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ddp.pt")
    for name in ("trial.pt", "ddp.pt"):
        weights = get_source_weights(f"file:{tmp_path / name}", spec, log=lambda s: None)
        assert all(torch.equal(weights[k], state[k]) for k in state), name


def test_wrong_architecture_is_refused_with_a_clear_message(tmp_path):
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ConfigError) as err:
        get_source_weights(f"file:{tmp_path / 'r18.pth'}", get_backbone("alexnet"), log=lambda s: None)
    msg = str(err.value)
    assert "do not fit backbone 'alexnet'" in msg and "\n" not in msg
    assert "14 missing ['features.0.weight'" in msg and "unexpected ['conv1.weight'" in msg
    assert "they are weights of backbone resnet18" in msg


def test_missing_keys_and_wrong_shapes_are_named(tmp_path):
    spec = get_backbone("tiny-alexnet")
    state = spec.build(2).state_dict()
    del state["conv3.0.weight"]
    state["conv5.0.bias"] = torch.zeros(7)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match=r"1 missing \['conv3.0.weight'\].*1 of wrong shape \['conv5.0.bias \(7,\)"):
        get_source_weights(f"file:{tmp_path / 'bad.pt'}", spec, log=lambda s: None)


def test_unreadable_files_are_clear_errors(tmp_path):
    spec = get_backbone("tiny-alexnet")
    with pytest.raises(ConfigError, match="no such file"):
        get_source_weights(f"file:{tmp_path / 'nope.pt'}", spec)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not readable by torch.load"):
        get_source_weights(f"file:{tmp_path / 'junk.pt'}", spec)
    torch.save({"epoch": 3}, tmp_path / "nostate.pt")
    with pytest.raises(ConfigError, match="holds no state_dict"):
        get_source_weights(f"file:{tmp_path / 'nostate.pt'}", spec)
    with pytest.raises(ConfigError, match="unknown source 'file:'"):
        get_source_weights("file:", spec)


def test_old_densenet_key_names_are_renamed(tmp_path):
    """torchvision's DenseNet files use "norm.1"-style names inside dense layers (and predate num_batches_tracked);
    they load as torchvision loads them."""
    spec = get_backbone("densenet121")
    state = {k: torch.rand_like(v) if v.is_floating_point() else v  # distinct values: BN's init is all ones
             for k, v in torchvision.models.densenet121(weights=None).state_dict().items()}
    old = {re.sub(r"denselayer(\d+)\.(norm|conv)([12])\.", r"denselayer\1.\2.\3.", k): v for k, v in state.items()
           if not ("denselayer" in k and k.endswith("num_batches_tracked"))}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    torch.save(old, tmp_path / "densenet.pth")
    weights = get_source_weights(f"file:{tmp_path / 'densenet.pth'}", spec, log=lambda s: None)
    assert set(weights) == {k for k in state if not ("denselayer" in k and k.endswith("num_batches_tracked"))}
    model = spec.build(2)
    load_pretrained(model, spec, old)
    key = "features.denseblock1.denselayer1.norm1.weight"
    assert torch.equal(model.get_parameter(key), state[key])


def test_imagenet_offline_without_the_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("TUNEDEPTH_OFFLINE", "1")  # never download here, even on a machine with internet
    spec = get_backbone("alexnet")
    with pytest.raises(ConfigError) as err:
        get_source_weights("imagenet", spec)
    msg = str(err.value)
    assert "\n" not in msg
    assert "alexnet-owt-7be5be79.pth" in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "file:PATH, fractal, scratch" in msg
    with pytest.raises(ConfigError, match="backbone 'tiny-alexnet' has no ImageNet weights"):
        get_source_weights("imagenet", get_backbone("tiny-alexnet"))


def test_a_download_that_cannot_start_fails_fast(tmp_path):
    """Without TUNEDEPTH_OFFLINE: a real connection attempt to a closed local port fails at once, in one line."""
    t0 = time.time()
    expected = r"cannot be downloaded \(.*\): put w-0123abcd.pth \(from http://127.0.0.1:9/"
    with pytest.raises(ConfigError, match=expected):
        download("http://127.0.0.1:9/w-0123abcd.pth", tmp_path / "w-0123abcd.pth", "test weights")
    assert time.time() - t0 < 10
    assert not (tmp_path / "w-0123abcd.pth").exists()


def test_imagenet_file_in_torch_home_loads_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("TUNEDEPTH_OFFLINE", "1")
    spec = get_backbone("resnet18")
    url, path = imagenet_file(spec)
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    torch.manual_seed(3)
    state = torchvision.models.resnet18(weights=None).state_dict()  # stands in for the downloaded file
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    logs = []
    weights = get_source_weights("imagenet", spec, log=logs.append)
    assert all(torch.equal(weights[k], state[k]) for k in state)
    assert any(str(path) in m for m in logs)


def test_cli_imagenet_offline_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "TORCH_HOME": str(tmp_path), "TUNEDEPTH_OFFLINE": "1"}
    exe = str(Path(sys.executable).with_name("tunedepth"))
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "tunedepth.cli.main"]
    out = subprocess.run(cmd + ["pretrain", "--source", "imagenet", "--backbone", "resnet50"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "resnet50-11ad3fa6.pth" in out.stderr


def test_fractal_images_are_identical_for_the_same_seed():
    a = fractal_dataset(4, 3, 32, seed=5, points=300)
    b = fractal_dataset(4, 3, 32, seed=5, points=300)
    c = fractal_dataset(4, 3, 32, seed=6, points=300)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_pretrain_command_is_deterministic_and_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUNEDEPTH_CACHE", str(tmp_path))
    spec = get_backbone("tiny-alexnet")
    assert main(["pretrain", "--source", "fractal", "--backbone", "tiny-alexnet", "--smoke"]) == 0
    path = fractal_cache_path(spec, FractalRecipe.smoke())
    assert str(path) in capsys.readouterr().out
    first = torch.load(path, weights_only=True)["state_dict"]
    assert main(["pretrain", "--backbone", "tiny-alexnet", "--smoke", "--force"]) == 0  # pretrained again
    again = torch.load(path, weights_only=True)["state_dict"]
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert fractal_cache_path(spec, FractalRecipe.smoke(seed=1)) != path  # the seed is part of the content hash
    assert main(["pretrain", "--source", "scratch", "--backbone", "tiny-alexnet"]) == 2
    assert "needs no weights" in capsys.readouterr().err


def test_fractal_pretraining_options_are_deterministic():
    """The FractalDB-style options (augmentation, own-statistics inputs, SGD) run and repeat exactly."""
    spec = get_backbone("tiny-alexnet")
    recipe = FractalRecipe(classes=3, per_class=4, epochs=2, batch_size=6, points=300, augment=True,
                           standardize=True, optimizer="sgd", lr=0.01)
    a = pretrain_fractal(spec, recipe, log=lambda s: None)
    b = pretrain_fractal(spec, recipe, log=lambda s: None)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["meta"]["input_mean"] < 0.3  # the fractal images' own statistics (mostly black), not the engine's 0.5
    x = torch.rand(5, 3, 16, 16)
    crops = [random_resized_crop(x, torch.Generator().manual_seed(0)) for _ in range(2)]
    assert crops[0].shape == x.shape and torch.equal(crops[0], crops[1]) and not torch.equal(crops[0], x)
    with pytest.raises(ConfigError, match="optimizer must be 'adamw' or 'sgd'"):
        FractalRecipe(optimizer="lamb")
