"""A catalogue of bad inputs, each through the real CLI (in process: no Ray is started for any of them).

Every case must: exit non-zero, print exactly one error line on stderr that names the offending file or value,
print no traceback, and leave an earlier run with the same name byte-for-byte unchanged.
"""
from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tunedepth.cli.main import main

EARLIER = "earlier"


def _png(path: Path, size=(40, 40), mode="RGB", seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def _folder(root: Path, classes=("a", "b"), n=12, **kw) -> Path:
    for c in classes:
        for i in range(n):
            _png(root / c / f"{c}{i}.png", seed=hash((c, i)) % 2**31, **kw)
    return root


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Each case: (id, builder(tmp) -> (argv, needle)); argv gets --name/--results-dir appended for run/demo.
def _run(*flags):
    return lambda tmp: (["run", "--smoke", *flags], flags[-1] if flags else "")


def _yaml(text: str, needle: str):
    def build(tmp):
        p = tmp / "cfg.yaml"
        p.write_text(text)
        return ["run", "--config", str(p)], needle
    return build


def _data(make, needle_of=lambda p: p.name, app="colonoscopy-frames"):
    def build(tmp):
        path = make(tmp)
        return ["demo", "--smoke", "--app", app, "--data", str(path)], needle_of(path)
    return build


def _corrupt_png(tmp):
    root = _folder(tmp / "imgs")
    (root / "a" / "a3.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def _truncated_png(tmp):
    root = _folder(tmp / "imgs")
    f = root / "b" / "b2.png"
    f.write_bytes(f.read_bytes()[:60])
    return root


def _csv(text: str):
    def make(tmp):
        _folder(tmp / "imgs")
        p = tmp / "imgs" / "manifest.csv"
        p.write_text(text)
        return p
    return make


def _npz(**arrays):
    def make(tmp):
        p = tmp / "med.npz"
        np.savez(p, **arrays)
        return p
    return make


def _seg(mask_size=(40, 40), spacing=True):
    def make(tmp):
        root = tmp / "seg"
        for i in range(6):
            _png(root / "images" / f"s{i}.png", mode="L", seed=i)
            m = np.zeros((mask_size[1], mask_size[0]), np.uint8)
            m[10:15] = 255
            (root / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(m).save(root / "masks" / f"s{i}_mask.png")
        if spacing:
            (root / "spacing.csv").write_text("image,spacing_um\n*,60\n")
        return root
    return make


def _det(text: str):
    def make(tmp):
        for i in range(4):
            _png(tmp / "det" / f"f{i}.png", size=(64, 64), seed=i)
        p = tmp / "det" / "cands.csv"
        p.write_text(text)
        return p
    return make


def _many_unreadable(tmp):
    root = _folder(tmp / "imgs", classes=("a", "b", "c"))
    for name in ("a/a1.png", "b/b4.png", "c/c7.png"):
        (root / name).write_bytes(b"not an image at all")
    return root


def _bomb(tmp):
    root = _folder(tmp / "imgs")
    Image.new("L", (20000, 10000)).save(root / "a" / "huge.png")  # 2e8 px: over PIL's bomb limit
    return root


def _text_weights(tmp):
    p = tmp / "w.pt"
    p.write_text("these are not weights\n")
    return p


CASES = {
    # flags and values
    "unknown searcher": _run("--searcher", "foo"),
    "unknown scheduler": _run("--scheduler", "foo"),
    "budget zero": _run("--budgets", "0"),
    "budget above one": _run("--budgets", "1.5"),
    "budget not a number": _run("--budgets", "abc"),
    "impossible small budget": _run("--budgets", "0.001"),
    "unknown depth": _run("--depths", "nope"),
    "unknown backbone": _run("--backbone", "vgg99"),
    "unknown app": _run("--app", "nope"),
    "unknown source": _run("--source", "nope"),
    "missing weights file": lambda tmp: (["run", "--smoke", "--source", f"file:{tmp}/missing.pt"], "missing.pt"),
    "weights file is text": lambda tmp: (["run", "--smoke", "--source", f"file:{_text_weights(tmp)}"], "w.pt"),
    "zero epochs": _run("--epochs", "0"),
    "lr zero": _run("--lr-min", "0"),
    "lr range reversed": lambda tmp: (["run", "--smoke", "--lr-min", "1e-2", "--lr-max", "1e-3"], "lr_m"),
    "unknown optimizer": _run("--optimizer", "adam"),
    "unknown lr protocol": _run("--lr-protocol", "foo"),
    "unknown augment": _run("--augment", "foo"),
    "unknown schedule": _run("--schedules", "foo"),
    "batch size zero": _run("--batch-size", "0"),
    "samples zero": _run("--samples", "0"),
    "bool not a bool": _run("--freeze-bn", "maybe"),
    "grace period past epochs": _run("--grace-period", "99"),
    "dead cluster address": lambda tmp: (["run", "--smoke", "--address", f"127.0.0.1:{(p := _dead_port())}"], str(p)),
    "name with a path": lambda tmp: (["run", "--smoke", "--name", "../x"], "../x"),
    "name dot dot": lambda tmp: (["run", "--smoke", "--name", ".."], ".."),
    # issue 27: every numeric flag range-checked before the data is built
    "negative data samples": lambda tmp: (["run", "--smoke", "--data-samples=-5"], "data_samples"),
    "lr max infinite": _run("--lr-max", "inf"),
    "lr min not a number": _run("--lr-min", "nan"),
    "lr min negative": lambda tmp: (["run", "--smoke", "--lr-min=-1e-3"], "lr_min"),
    "scratch lr max infinite": _run("--scratch-lr-max", "inf"),
    "negative epochs": lambda tmp: (["run", "--smoke", "--epochs=-3"], "epochs"),
    "negative batch size": lambda tmp: (["run", "--smoke", "--batch-size=-8"], "batch_size"),
    "cpus per trial zero": lambda tmp: (["run", "--smoke", "--cpus-per-trial", "0"], "cpus_per_trial"),
    "gpus per trial negative": lambda tmp: (["run", "--smoke", "--gpus-per-trial=-1"], "gpus_per_trial"),
    "max concurrent negative": lambda tmp: (["run", "--smoke", "--max-concurrent=-2"], "max_concurrent"),
    "momentum one": lambda tmp: (["run", "--smoke", "--momentum", "1"], "momentum"),
    "negative seed": lambda tmp: (["run", "--smoke", "--seeds=-1"], "seeds"),
    "negative search seed": lambda tmp: (["run", "--smoke", "--search-seed=-3"], "search_seed"),
    "negative data seed": lambda tmp: (["run", "--smoke", "--data-seed=-1"], "data_seed"),
    "reduction factor one": lambda tmp: (["run", "--smoke", "--reduction-factor", "1"], "reduction_factor"),
    "prune z not a number": lambda tmp: (["run", "--smoke", "--prune-z", "nan"], "prune_z"),
    "negative stream bytes": lambda tmp: (["run", "--smoke", "--stream-bytes=-1"], "stream_bytes"),
    "guideline patience zero": lambda tmp: (["run", "--smoke", "--guideline-patience", "0"], "guideline_patience"),
    "negative patience steps": lambda tmp: (["run", "--smoke", "--patience-steps=-1"], "patience_steps"),
    "layer decay zero": lambda tmp: (["run", "--smoke", "--layer-decay", "0"], "layer_decay"),
    "weight decay negative": lambda tmp: (["run", "--smoke", "--weight-decay=-1"], "weight_decay"),
    "epochs not an integer": lambda tmp: (["run", "--smoke", "--epochs", "2.5"], "epochs"),
    # config files
    "config is a folder": lambda tmp: (["run", "--config", str(tmp)], "is a folder"),
    "config binary": lambda tmp: (["run", "--config", str((tmp / "b.yaml", (tmp / "b.yaml").write_bytes(
        b"\xff\xfe\x00\x01binary"))[0])], "b.yaml"),
    "config with NUL bytes": lambda tmp: (["run", "--config", str((tmp / "n.yaml", (tmp / "n.yaml").write_bytes(
        b"epochs\x00: 2\n"))[0])], "NUL"),
    "config a plain string": _yaml("just words\n", "mapping"),
    "config key not a name": _yaml("1: 2\n", "not names"),
    "config key without a value": _yaml("epochs:\n", "epochs"),
    "config list item wrong type": _yaml("budgets: [abc]\n", "budgets"),
    "config list given a mapping": _yaml("seeds: {a: 1}\n", "seeds"),
    "config bool for a number": _yaml("epochs: true\n", "epochs"),
    "config number out of range": _yaml("data_samples: -5\n", "data_samples"),
    "config lr infinite": _yaml("lr_max: .inf\n", "lr_max"),
    "config string given a list": _yaml("app: [a, b]\n", "app"),
    "config file missing": lambda tmp: (["run", "--config", str(tmp / "nope.yaml")], "nope.yaml"),
    "config malformed yaml": _yaml("app: [unclosed\nbudgets: 0.1\n", "cfg.yaml"),
    "config not a mapping": _yaml("- a\n- b\n", "cfg.yaml"),
    "config unknown key": _yaml("bogus_key: 1\n", "bogus_key"),
    "config wrong type": _yaml("epochs: many\n", "epochs"),
    "config unknown searcher": _yaml("searcher: foo\n", "foo"),
    "config unknown depth": _yaml("depths: [nope]\nsmoke: true\n", "nope"),
    "config depth of another backbone": _yaml("backbone: tiny-alexnet\ndepths: [b3-head]\n", "b3-head"),
    "optuna with several seeds": lambda tmp: (["run", "--smoke", "--searcher", "optuna", "--seeds", "0,1"], "optuna"),
    "guideline under a halving scheduler": lambda tmp: (["run", "--smoke", "--searcher", "guideline",
                                                         "--scheduler", "per-depth"], "guideline"),
    # data
    "data path missing": _data(lambda tmp: tmp / "nothing-here"),
    "data layout the app does not read": _data(lambda tmp: (tmp / "x.txt", (tmp / "x.txt").write_text("hi"))[0]),
    "folder with one class": _data(lambda tmp: _folder(tmp / "imgs", classes=("only",)), lambda p: "class"),
    "folder with an empty class": _data(lambda tmp: (_folder(tmp / "imgs"), (tmp / "imgs" / "c").mkdir())[0],
                                        lambda p: "c"),
    "corrupt image": _data(_corrupt_png, lambda p: "a3.png"),
    "truncated image": _data(_truncated_png, lambda p: "b2.png"),
    "image over the bomb limit": _data(_bomb, lambda p: "huge.png"),
    "class with one image": _data(lambda tmp: (_folder(tmp / "imgs"), _png(tmp / "imgs" / "c" / "c0.png"))[0],
                                  lambda p: "c"),
    "csv missing label column": _data(_csv("path\na/a0.png\n"), lambda p: "label"),
    "csv names a missing image": _data(_csv("path,label\na/a0.png,0\nzz/none.png,1\n"), lambda p: "none.png"),
    "npz missing arrays": _data(_npz(x=np.zeros(3)), lambda p: p.name),
    "npz corrupt": _data(lambda tmp: (tmp / "bad.npz", (tmp / "bad.npz").write_bytes(b"PK\x03\x04junk"))[0]),
    "mask size differs from image": _data(_seg(mask_size=(32, 32)), lambda p: "s0", app="intima-media"),
    "segmentation without spacing": _data(_seg(spacing=False), lambda p: "spacing", app="intima-media"),
    "datalist json malformed": _data(lambda tmp: (tmp / "d.json", (tmp / "d.json").write_text("{nope"))[0],
                                     app="intima-media"),
    "detection coordinates outside": _data(_det("image,x,y,label\nf0.png,500,5,1\nf1.png,5,5,0\n"
                                                "f2.png,5,5,1\nf3.png,6,6,0\n"), lambda p: "f0.png",
                                           app="polyp-detection"),
    "detection csv missing column": _data(_det("image,x,label\nf0.png,5,1\n"), lambda p: "y", app="polyp-detection"),
    # the generic classification app (your own folder)
    "generic: folder with one class": _data(lambda tmp: _folder(tmp / "imgs", classes=("only",)), lambda p: "only",
                                            app="classification"),
    "generic: class too small for the smallest budget": lambda tmp: (
        ["run", "--smoke", "--app", "classification", "--budgets", "0.2,1", "--data",
         str((_folder(tmp / "imgs", classes=("a", "b")), _folder(tmp / "imgs", classes=("rare",), n=5))[0])], "'rare'"),
    "generic: unreadable images listed with a count": _data(_many_unreadable, lambda p: "3 of 36 images",
                                                           app="classification"),
    "generic: unknown metric": lambda tmp: (["run", "--smoke", "--app", "classification", "--metric", "dice"], "dice"),
    "generic: unknown resize policy": _run("--app", "classification", "--resize", "stretch"),
    "paper app with a resize policy": _run("--resize", "pad"),
    "generic: mask size differs from image": lambda tmp: (
        ["run", "--smoke", "--app", "segmentation", "--backbone", "monai-unet", "--depths", "scratch", "--data",
         str(_seg(mask_size=(32, 32), spacing=False)(tmp))], "s0"),
    "augment with per-pixel targets": _run("--app", "segmentation", "--backbone", "monai-unet", "--augment", "hflip"),
    "input size the backbone cannot take": _run("--backbone", "tiny-alexnet", "--input-size", "96"),
    # other commands on runs that are not there
    "report of a missing run": lambda tmp: (["report", str(tmp / "results" / "ghost")], "ghost"),
    "resume of a missing run": lambda tmp: (["resume", "ghost", "--results-dir", str(tmp / "results")], "ghost"),
    "compare with a missing run": lambda tmp: (["compare", "ghost", EARLIER, "--results-dir", str(tmp / "results")],
                                               "ghost"),
    "status of a missing run": lambda tmp: (["status", "ghost", "--results-dir", str(tmp / "results")], "ghost"),
    "depths of an unknown backbone": lambda tmp: (["depths", "vgg99"], "vgg99"),
}


def _earlier_run(results: Path) -> dict[str, str]:
    run = results / EARLIER
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: earlier\n")
    (run / "trials.parquet").write_bytes(b"pretend parquet")
    (run / "report.md").write_text("# an earlier answer\n")
    return _checksums(results)


def _checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_loses_nothing(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNEDEPTH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TUNEDEPTH_OFFLINE", "1")
    results = tmp_path / "results"
    before = _earlier_run(results)
    argv, needle = CASES[case](tmp_path)
    if argv[0] in ("run", "demo"):
        if "--name" not in argv:
            argv += ["--name", EARLIER]
        argv += ["--results-dir", str(results)]
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0, f"exit 0 for {argv}"
    assert "Traceback" not in err
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert needle in lines[0], f"{needle!r} not named in: {lines[0]}"
    assert _checksums(results) == before, "an earlier run's files changed"
    assert sorted(p.name for p in results.iterdir() if not p.name.startswith(".")) == [EARLIER]


def test_a_bad_source_fails_before_the_data_is_built(tmp_path, capsys, monkeypatch):
    """`file:` problems and unknown sources are found before the (slow) data build: its log line never appears."""
    monkeypatch.setenv("TUNEDEPTH_CACHE", str(tmp_path / "cache"))
    for source in (f"file:{tmp_path}/missing.pt", "nope"):
        code = main(["run", "--smoke", "--source", source, "--name", "x", "--results-dir", str(tmp_path / "r")])
        out = capsys.readouterr()
        assert code == 2 and "data:" not in out.out and source.split("/")[-1] in out.err


LATE_BEFORE = {  # checked by tunedepth.hpo.validate before the data build, the weights and the results folder
    "optuna seeds": ["--searcher", "optuna", "--seeds", "0,1"],
    "data layout": ["--data", "{tmp}/notes.txt"],
    "data missing": ["--data", "{tmp}/nowhere"],
    "depth of another backbone": ["--backbone", "tiny-alexnet", "--depths", "b3-head"],
    "missing weights file": ["--source", "file:{tmp}/missing.pt"],
    "unknown source": ["--source", "nope"],
    "dead address": ["--address", "127.0.0.1:{port}"],
}


@pytest.mark.parametrize("case", list(LATE_BEFORE))
def test_config_errors_leave_nothing_behind(case, tmp_path, capsys):
    """The whole config is checked first: no data line, no weights, not even the results folder or its lock."""
    (tmp_path / "notes.txt").write_text("not data")
    flags = [f.format(tmp=tmp_path, port=_dead_port()) for f in LATE_BEFORE[case]]
    results = tmp_path / "results"
    code = main(["run", "--smoke", *flags, "--name", "new", "--results-dir", str(results)])
    out = capsys.readouterr()
    assert code == 2 and len(out.err.strip().splitlines()) == 1, out.err
    assert "data:" not in out.out and "weights" not in out.out
    assert not results.exists()
