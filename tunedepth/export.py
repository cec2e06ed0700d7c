"""``tunedepth export``: one trained cell of a run as a model loadable in plain PyTorch, with its preprocessing.

The chosen trial is the analysis's own choice (``tunedepth.analysis.selecting``): by default the recommended
depth at the largest budget, and in a cell the replicate with the best validation score of the selected
learning rate. Its checkpoint (found by ``tunedepth.run_files.trial_checkpoint``) stores only the groups the trial
tuned (a head-only trial: the head), so the full network is rebuilt as the trial started it and the
checkpoint's best-validation weights go on top (``tunedepth.training.resolved.load_trained``: the trial's config
resolved exactly as ``TrialRun`` resolves it: the app with the run's metric and resize, the backbone at the run's
``--input-size``, the effective source's weights at that size and their normalisation). The export then holds
everything: frozen part and tuned groups, at the input size the run trained at.

Written to the export folder (``tunedepth.run_files.export_paths``): the model (``torchscript``: ``torch.jit.load``
alone; ``state_dict``: a ``torch.load``-able dict plus the constructor that rebuilds the architecture; ``onnx``
when the ``onnx``/``onnxscript`` packages are installed), ``model.json`` (input size, channels, normalisation,
the app's sample protocol, the trial's config) and ``examples.npz``: the first test samples as the network's
uint8 inputs with the probabilities the run stored for them, which the export reproduces before it returns.
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from tunedepth.analysis.selecting import best_depths, select_cells
from tunedepth.config import load_config
from tunedepth.errors import ConfigError
from tunedepth.run_files import (
    EXPORT_FORMATS,
    RESULTS_DIR,
    ExportPaths,
    export_paths,
    load_run,
    run_dir_of,
    trial_checkpoint,
    write_json,
    write_npz,
)
from tunedepth.training.resolved import CHECKPOINT_FILE, TrainedModel, load_trained

Log = Callable[[str], None]
TOLERANCE = 1e-4  # largest |difference| of a probability between the export and the run's stored predictions


@dataclass(frozen=True)
class Choice:
    """The trial an export takes: the cell (budget, depth) and its best replicate by validation."""

    budget: float
    depth: str
    trial_id: str
    lr: float
    seed: int
    epoch: int
    val_metric: float
    recommended: bool  # the cell is the run's recommended depth at this budget


def choose_trial(trials: pd.DataFrame, mode: str, budget: float | None = None, depth: str | None = None) -> Choice:
    """The cell ``budget`` x ``depth`` (defaults: the largest budget, its best depth by validation) and its
    representative trial (``select_cells``: the replicate of the selected lr with the best validation score)."""
    cells = select_cells(trials, mode)
    if cells.empty:
        raise ConfigError("the run has no trial with a finite validation score; nothing to export")
    budgets = sorted(float(b) for b in cells["budget"].unique())
    b = budgets[-1] if budget is None else float(budget)
    if not any(np.isclose(b, budgets)):
        raise ConfigError(f"--budget {budget:g} is not a budget of this run; choose one of "
                          f"{', '.join(f'{x:g}' for x in budgets)}")
    at = cells[np.isclose(cells["budget"].astype(float), b)]
    best = best_depths(at, mode).iloc[0]
    if depth is None:
        row = best
    elif depth in set(at["depth"]):
        row = at[at["depth"] == depth].iloc[0]
    else:
        raise ConfigError(f"--depth {depth} has no selected trial at budget {b:g}; choose one of "
                          f"{', '.join(at.sort_values('depth_index')['depth'])}")
    return Choice(float(row["budget"]), str(row["depth"]), str(row["trial_id"]), float(row["lr"]), int(row["seed"]),
                  int(row["epoch"]), float(row["val_metric"]), str(row["depth"]) == str(best["depth"]))


def preprocessing(spec, app, norm, n_channels: int) -> dict:
    """What a caller does to an image before the network, and what the output means, as plain JSON."""
    mean, std = (tuple(v) if isinstance(v, (list, tuple)) else (float(v),) * n_channels for v in norm)
    protocol = (app.make_samples.__doc__ or "").strip() if app.make_samples else ""
    return {
        "input_size": [spec.input_size, spec.input_size], "channels": n_channels, "layout": "NCHW",
        "dtype": "uint8 in 0..255 (RGB order as the run read it)",
        "normalise": "x = (uint8 / 255 - mean[c]) / std[c] per channel c, float32",
        "mean": list(mean), "std": list(std),
        "output": ("logits (N, C, H, W) per pixel; softmax over dim 1" if spec.output == "mask"
                   else "logits (N, C); softmax over dim 1 gives the class probabilities"),
        "samples": (f"the app {app.name!r} feeds the network samples of each {app.unit} (its crops/patches); "
                    f"score a {app.unit} as the run did: {app.description}"),
        "sample_protocol": " ".join(protocol.split()),
    }


def constructor(spec, num_classes: int) -> str:
    """The Python call that rebuilds the architecture for the state_dict format (empty: tunedepth's own)."""
    return (spec.rebuild.format(num_classes=num_classes) if spec.rebuild else
            f"none outside tunedepth: {spec.name} is tunedepth's own module; export with --format torchscript")


def normalise(x_uint8: np.ndarray, pre: dict) -> torch.Tensor:
    """``pre``'s normalisation of uint8 images (N, C, H, W): what a plain-PyTorch caller does (see the docs)."""
    mean = torch.tensor(pre["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(pre["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return (torch.as_tensor(x_uint8).float() / 255.0 - mean) / std


def stored_examples(run_dir: Path, preds: dict | None, choice: Choice, trained: TrainedModel, n: int,
                    log: Log) -> dict | None:
    """The first ``n`` test samples as uint8 inputs and the probabilities the run stored for them (this trial's
    block of predictions.parquet); None without stored predictions or for per-pixel outputs (stored summarised)."""
    from tunedepth.apps import build_split_data

    block = next(
        (
            v
            for (b, d, s), v in (preds or {}).items()
            if np.isclose(b, choice.budget) and d == choice.depth and str(v["info"]["trial_id"]) == choice.trial_id
        ),
        None,
    )
    app, spec = trained.trial.app, trained.trial.spec  # the trial's own: metric, resize, input size
    if n <= 0 or block is None or spec.output == "mask":
        return None
    cfg = load_config(str(run_dir))
    data = build_split_data(app, cfg.data, spec.input_size, cfg.data_seed, smoke=cfg.smoke, n=cfg.data_samples,
                            log=log, stream=cfg.stream, stream_bytes=cfg.stream_bytes, masks=cfg.masks)
    if len(data.test_y) != len(block["labels"]) or not np.array_equal(data.test_y.numpy(), block["labels"]):
        raise ConfigError(f"the test split rebuilt from {cfg.data or 'the embedded data'} differs from the run's "
                          f"stored one (changed data?); export with --examples 0")
    k = min(n, len(block["labels"]))
    out = {"x": data.test_x[:k].numpy(), "label": block["labels"][:k], "probs": block["probs"][:k],
           "sample": block["samples"][:k]}
    if "group" in block["meta"]:  # the unit of each sample: the run scored a unit by averaging its samples
        out["group"] = block["meta"]["group"][:k]
    return out


def save_model(model: torch.nn.Module, fmt: str, path: Path, example: torch.Tensor) -> None:
    if fmt == "state_dict":
        torch.save(model.state_dict(), path)
    elif fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            torch.jit.save(torch.jit.trace(model, example, check_trace=False), str(path))
    else:
        torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},),  # any batch size
                          external_data=False)  # one self-contained file (these models are far below 2 GB)


def reload(model: torch.nn.Module, fmt: str, path: Path):
    """The saved file read back as a caller would (a function images -> logits), or None where that needs a
    package this machine lacks (ONNX: onnxruntime)."""
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path))
    if fmt == "state_dict":
        model.load_state_dict(torch.load(path, weights_only=True))
        return model
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path))
    return lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def check_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"--format {fmt!r} is unknown; choose one of {', '.join(EXPORT_FORMATS)}")
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if fmt == "onnx" and missing:
        raise ConfigError(f"--format onnx needs the package(s) {', '.join(missing)}: `pip install "
                          f"{' '.join(missing)}`, or export with --format torchscript / state_dict")


def reproduce(model, examples: dict, pre: dict) -> float:
    """Largest |difference| between the network's probabilities on the examples and the stored ones."""
    with torch.no_grad():
        probs = torch.softmax(model(normalise(examples["x"], pre)).double(), dim=1).numpy()
    return float(np.abs(probs - examples["probs"]).max())


def check_reproduces(model, examples: dict, pre: dict, what: str) -> float:
    diff = reproduce(model, examples, pre)
    if not diff <= TOLERANCE:
        raise ConfigError(f"{what}'s test probabilities differ from the run's stored ones by {diff:.2g} "
                          f"(> {TOLERANCE:g}); were the source weights changed since the run?")
    return diff


@dataclass
class Exported:
    choice: Choice
    paths: ExportPaths
    max_diff: float | None  # vs the stored test predictions (None: no examples)
    n_examples: int


def export_run(run: str, results_dir: str = RESULTS_DIR, budget: float | None = None, depth: str | None = None,
               fmt: str = "torchscript", out: str | None = None, n_examples: int = 16, log: Log = print) -> Exported:
    """Export one cell's trained model of run ``run`` (a name under ``results_dir`` or a run folder)."""
    from tunedepth.training.resolved import resolve_app

    check_format(fmt)
    cfg = load_config(run, results_dir)
    run_dir = run_dir_of(cfg)
    files = load_run(run_dir)
    choice = choose_trial(files.trials, resolve_app(cfg).mode, budget, depth)  # as the analysis does (its metric)
    trained = load_trained(trial_checkpoint(run_dir, files.config, choice.trial_id, CHECKPOINT_FILE),
                           smoke=cfg.smoke, log=log)
    trial, model, epoch, n_classes = trained.trial, trained.model, trained.epoch, trained.num_classes
    trial_config, spec = trial.config.to_dict(), trial.spec
    pre = preprocessing(spec, trial.app, trial.norm, n_channels=3)
    examples = stored_examples(run_dir, files.predictions, choice, trained, n_examples, log)
    if examples:  # the rebuilt model first (nothing written if it is not the run's), then the file as saved
        check_reproduces(model, examples, pre, "the rebuilt model")
    paths = export_paths(run_dir, choice.budget, choice.depth, fmt, out)
    save_model(model, fmt, paths.model, torch.zeros(1, 3, spec.input_size, spec.input_size))
    loaded = reload(model, fmt, paths.model) if examples else None
    max_diff = check_reproduces(loaded, examples, pre, f"the saved {paths.model.name}") if loaded is not None \
        else None
    write_json({
        "format": fmt, "model_file": paths.model.name, "num_classes": n_classes,
        "constructor": constructor(spec, n_classes) if fmt == "state_dict" else "",
        "preprocessing": pre,
        "choice": {**vars(choice), "epoch": epoch, "metric": files.config.get("metric")},
        "run": {k: files.config.get(k) for k in ("name", "app", "backbone", "source", "data", "data_seed", "smoke")},
        "trial_config": trial_config,
        "versions": {"torch": torch.__version__},
        "examples": ({"file": paths.examples.name, "n": len(examples["label"]), "max_abs_diff": max_diff,
                      "tolerance": TOLERANCE} if examples else None),
    }, paths.config)
    if examples:
        write_npz(paths.examples, **examples)
    return Exported(choice, paths, max_diff, len(examples["label"]) if examples else 0)
