"""``tunedepth export``: the choice is the analysis's, and the exported model, loaded in a Python that never
imports tunedepth, reproduces the run's stored test predictions from the stored inputs and the JSON's
preprocessing."""
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.test_report import known_cells, write_run
from tunedepth.analysis.selecting import best_depths, select_cells
from tunedepth.cli.main import main
from tunedepth.export import choose_trial

# run in ``python -I`` (no PYTHONPATH, no cwd on sys.path): torch and numpy only; prints the probabilities
PLAIN_LOAD = r"""
import json, sys
import numpy as np, torch
folder = sys.argv[1]
cfg = json.load(open(f"{folder}/model.json"))
pre = cfg["preprocessing"]
if cfg["format"] == "torchscript":
    model = torch.jit.load(f"{folder}/{cfg['model_file']}")
else:
    import timm, torchvision, monai  # whichever the constructor names
    model = eval(cfg["constructor"])
    model.load_state_dict(torch.load(f"{folder}/{cfg['model_file']}", weights_only=True))
model.eval()
ex = np.load(f"{folder}/examples.npz")
assert ex["x"].dtype == np.uint8 and list(ex["x"].shape[1:]) == [pre["channels"], *pre["input_size"]]
mean = torch.tensor(pre["mean"]).view(1, -1, 1, 1)
std = torch.tensor(pre["std"]).view(1, -1, 1, 1)
with torch.no_grad():
    probs = torch.softmax(model((torch.from_numpy(ex["x"]).float() / 255 - mean) / std).double(), dim=1)
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "tunedepth")
print(json.dumps({"probs": probs.tolist(), "sample": ex["sample"].tolist(), "tunedepth_modules": loaded}))
"""


# run in ``python -I`` with numpy and onnxruntime alone (no torch): the ONNX export's probabilities
PLAIN_ONNX = r"""
import json, sys
import numpy as np, onnxruntime
folder = sys.argv[1]
cfg = json.load(open(f"{folder}/model.json"))
pre = cfg["preprocessing"]
ex = np.load(f"{folder}/examples.npz")
mean, std = (np.float32(pre[k]).reshape(1, -1, 1, 1) for k in ("mean", "std"))
x = (ex["x"].astype(np.float32) / 255 - mean) / std
session = onnxruntime.InferenceSession(f"{folder}/{cfg['model_file']}")
logits = np.concatenate([session.run(None, {"input": x[i:i + 5]})[0] for i in range(0, len(x), 5)]).astype(np.float64)
probs = np.exp(logits - logits.max(axis=1, keepdims=True))
probs /= probs.sum(axis=1, keepdims=True)
print(json.dumps({"probs": probs.tolist(), "sample": ex["sample"].tolist(), "torch": "torch" in sys.modules}))
"""


def test_default_choice_is_the_recommended_depth_at_the_largest_budget_and_bad_choices_are_one_line(tmp_path, capsys):
    run = write_run(tmp_path / "known", known_cells())
    trials = pd.read_parquet(run / "trials.parquet")
    choice = choose_trial(trials, "max")
    cells = select_cells(trials, "max")
    best = best_depths(cells[cells.budget == 1.0], "max").iloc[0]
    assert (
        (choice.budget, choice.depth, choice.trial_id)
        == (1.0, best["depth"], best["trial_id"])
        == (1.0, "conv4-fc8", best["trial_id"])
    )
    assert choice.recommended
    other = choose_trial(trials, "max", budget=0.1, depth="fc8")
    assert (other.budget, other.depth, other.recommended) == (0.1, "fc8", False)
    refusals = [(["--budget", "0.5"], "choose one of 0.1, 1"), (["--depth", "conv9"], "choose one of fc8"),
                (["--format", "onnx9"], "invalid choice")]
    if not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript")):  # the test extra installs them
        refusals.append((["--format", "onnx"], "pip install"))
    for flags, words in refusals:
        capsys.readouterr()
        rc = main(["export", str(run), *flags])
        err = capsys.readouterr().err
        assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, err
    # no checkpoints (tune/ is absent in a hand-written run): one line naming the trial and the fix
    rc = main(["export", str(run)])
    err = capsys.readouterr().err
    assert rc == 2 and "has no checkpoint" in err and "rerun the search" in err


def plain_load(folder: Path, script: str = PLAIN_LOAD) -> dict:
    proc = subprocess.run([sys.executable, "-I", "-c", script, str(folder)], capture_output=True, text=True,
                          timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stored_probs(run: Path, trial_id: str, samples) -> np.ndarray:
    preds = pd.read_parquet(run / "predictions.parquet")
    block = preds[preds.trial_id == trial_id].set_index("sample").loc[samples]
    return block[[c for c in preds.columns if c.startswith("prob_")]].to_numpy()


@pytest.mark.slow
def test_exported_models_reproduce_the_stored_test_predictions_without_tunedepth(tiny_smoke_run, tmp_path, capsys):
    run = tmp_path / "tiny"  # the session's one smoke search (tests/conftest.py; fc8, conv4-fc8, conv1-fc8,
    shutil.copytree(tiny_smoke_run[1], run)  # scratch), shared with test_report; export writes into a copy
    summary = pd.read_parquet(run / "summary.parquet")

    # default: the recommended depth at the largest budget, its best replicate, as torchscript
    assert main(["export", "tiny", "--results-dir", str(tmp_path)]) == 0
    best = summary[(summary.budget == summary.budget.max()) & summary.is_best].iloc[0]
    folder = run / "export" / f"{best.depth}_b1"
    meta = json.loads((folder / "model.json").read_text())
    assert meta["choice"]["trial_id"] == best.trial_id and meta["choice"]["depth"] == best.depth
    out = plain_load(folder)
    assert out["tunedepth_modules"] == []
    np.testing.assert_allclose(out["probs"], stored_probs(run, best.trial_id, out["sample"]), atol=1e-5)

    # a head-only trial: its checkpoint holds fc8 alone; the export holds the source's frozen conv1..fc7 too
    head = summary[(summary.budget == 0.25) & (summary.depth == "fc8")].iloc[0]
    assert main(["export", str(run), "--budget", "0.25", "--depth", "fc8", "--format", "state_dict",
                 "--out", str(tmp_path / "head")]) == 0
    state = torch.load(tmp_path / "head" / "model.state_dict.pt", weights_only=True)
    assert {k.split(".")[0] for k in state} == {f"conv{i}" for i in range(1, 6)} | {"fc6", "fc7", "fc8"}
    assert "none outside tunedepth" in json.loads((tmp_path / "head" / "model.json").read_text())["constructor"]
    assert main(["export", str(run), "--budget", "0.25", "--depth", "fc8", "--out", str(tmp_path / "head-ts")]) == 0
    out = plain_load(tmp_path / "head-ts")
    np.testing.assert_allclose(out["probs"], stored_probs(run, head.trial_id, out["sample"]), atol=1e-5)
    assert "reproduces the run's stored test probabilities on 16 samples" in capsys.readouterr().out

    # ONNX, one self-contained file, read back with onnxruntime and numpy alone, in batches of 5 (dynamic batch)
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed (pip install -e '.[test]' installs it)")
    assert main(["export", str(run), "--budget", "0.25", "--depth", "fc8", "--format", "onnx",
                 "--out", str(tmp_path / "head-onnx")]) == 0
    assert sorted(p.name for p in (tmp_path / "head-onnx").iterdir()) == ["examples.npz", "model.json", "model.onnx"]
    out = plain_load(tmp_path / "head-onnx", PLAIN_ONNX)
    assert out["torch"] is False
    np.testing.assert_allclose(out["probs"], stored_probs(run, head.trial_id, out["sample"]), atol=1e-5)


@pytest.mark.slow
def test_a_run_at_another_input_size_exports_at_that_size(ray_local, tmp_path):
    """``--input-size 32`` on resnet18 (its own: 224): the export rebuilds the trial at 32 px, as it trained
    (source scratch at depth fc: the frozen layers are the trial's own random ones, rebuilt from its seed), and
    reproduces the run's stored test predictions from 32 px inputs."""
    from tunedepth.config import SearchConfig, smoke_config
    from tunedepth.hpo.runner import run_search

    cfg = smoke_config(SearchConfig(name="sized", backbone="resnet18", source="scratch", input_size=32,
                                    results_dir=str(tmp_path), depths=("fc", "scratch")))
    run_search(cfg, log=lambda s: None)
    run = tmp_path / "sized"
    summary = pd.read_parquet(run / "summary.parquet")
    cell = summary[(summary.budget == 1.0) & (summary.depth == "fc")].iloc[0]
    assert main(["export", str(run), "--budget", "1", "--depth", "fc", "--out", str(tmp_path / "fc")]) == 0
    meta = json.loads((tmp_path / "fc" / "model.json").read_text())
    assert meta["preprocessing"]["input_size"] == [32, 32] and meta["trial_config"]["input_size"] == 32
    out = plain_load(tmp_path / "fc")  # asserts the examples are (C, 32, 32), then predicts them
    np.testing.assert_allclose(out["probs"], stored_probs(run, cell.trial_id, out["sample"]), atol=1e-5)
