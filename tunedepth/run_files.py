"""The run folder ``results/<name>/``: its paths, its files' schemas, reading them back and atomic writes.

One owner for every file of a run: ``config.yaml``, ``splits.parquet``, ``epochs.jsonl`` (every epoch
result as the driver received it, appended live), ``trials.parquet`` (validation curves, built from it),
``predictions.parquet`` (test-split probabilities of each budget x depth x replicate seed),
``summary.parquet``, ``report.md``, the scheduler's resume state ``promotion.json``, ``optuna.db`` (the Optuna
studies), ``tune/`` (Tune's experiment folder, with TensorBoard event files per trial), ``extensions.json`` and
``tune-extend<N>-<stamp>/`` (``tunedepth extend``: capped trials continued to a higher cap), and ``export/``
(``tunedepth export``: a model, its ``model.json``, and ``examples.npz``). Needs neither Ray nor the training
code, so ``tunedepth report``,
``compare`` and ``status`` read runs with pandas/pyarrow alone.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from tunedepth.errors import ConfigError

RESULTS_DIR = "results"  # the default folder of the runs (--results-dir), declared once

CONFIG_FILE, TRIALS_FILE, PREDICTIONS_FILE = "config.yaml", "trials.parquet", "predictions.parquet"
SUMMARY_FILE, REPORT_FILE, SPLITS_FILE = "summary.parquet", "report.md", "splits.parquet"
EPOCHS_FILE = "epochs.jsonl"  # every result the driver received, one JSON line each (tunedepth.hpo.results.EpochLog)
PROMOTION_FILE = "promotion.json"  # tunedepth.hpo.promotion's decisions (tunedepth.jsonstate), read back by resume
EXTENSIONS_FILE = "extensions.json"  # tunedepth extend: each completed extension's experiment and trial ids
OPTUNA_FILE = "optuna.db"  # searcher optuna: one study per budget ("budget-0.05", ...), SQLite
EXPORT_DIR = "export"  # tunedepth export: export/<depth>_b<budget>/ holds model.*, model.json, examples.npz
EXPORT_FORMATS = {"torchscript": "model.torchscript.pt", "state_dict": "model.state_dict.pt", "onnx": "model.onnx"}
REQUIRED_FILES = (CONFIG_FILE, TRIALS_FILE)

TRIAL_COLUMNS = (
    "trial_id", "app", "backbone", "source", "depth", "depth_index", "budget", "lr", "schedule", "seed",
    "epoch", "val_metric", "val_loss", "train_loss", "time_s", "n_train", "metric", "status",
)
# summary.parquet: one row per budget x depth (README "Output"); apps with several test metrics add
# ``test_<name>`` columns after these (point estimates of App.all_metrics besides the main metric)
SUMMARY_COLUMNS = (
    "app", "backbone", "source", "metric", "mode", "budget", "n_train", "depth", "depth_index",
    "trial_id", "trial_ids", "lr", "schedule", "seed", "n_seeds", "seeds", "selected_epoch", "evaluated_epoch",
    "epochs_run", "complete", "converged", "capped",
    "trials", "epochs_spent", "val_metric", "n_test", "test_metric", "test_metric_low", "test_metric_high",
    "is_best", "verdict", "indistinguishable_from_best", "p_vs_best", "p_vs_best_holm",
    "delta_vs_best", "delta_vs_best_low", "delta_vs_best_high",
    "delta_vs_scratch", "delta_vs_scratch_low", "delta_vs_scratch_high",
)
# predictions.parquet: run-level columns, then sample, label, prob_0..prob_{C-1}, meta_<key>...; one block
# per budget x depth x seed (every replicate seed of the selected learning rate)
PREDICTION_RUN_COLUMNS = (
    "app", "backbone", "source", "budget", "depth", "depth_index", "trial_id", "lr", "seed",
    "selected_epoch", "evaluated_epoch",
)
PREDICTION_SAMPLE_COLUMNS = ("sample", "label")
META_PREFIX = "meta_"
PROB_PREFIX = "prob_"


# ---------------------------------------------------------------------------------------- writes
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class DiskFull(ConfigError):
    """A run file could not be written for lack of space (ENOSPC, or a quota: EDQUOT): one line, exit 2."""


def _atomic(path: Path, write: Callable[[str], object]) -> None:
    """``write(tmp)`` then rename over ``path``. The file gets the mode a plain ``open`` would (0644 under the
    usual umask 022), not mkstemp's private 0600: colleagues on shared storage can read a run. A full disk
    leaves ``path`` as it was (absent, or the previous complete file) and no temp file, and raises ``DiskFull``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix + ".tmp")
    except OSError as e:
        _raise_if_full(e, path)
        raise
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        _raise_if_full(e, path)
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _raise_if_full(e: OSError, path: Path) -> None:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFull(f"no space left on the disk of {path.parent} writing {path.name} (left as it was, nothing "
                       f"half-written kept): free space there, or give --results-dir on another disk, and run "
                       f"again") from None


def write_parquet(df: pd.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write atomically: a reader never sees a half-written file. ``metadata``: extra schema key/values."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        extra = {f"tunedepth.{k}".encode(): str(v).encode() for k, v in metadata.items()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    _atomic(path, lambda tmp: pq.write_table(table, tmp))


def write_text(text: str, path: Path) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_json(data: dict, path: Path) -> None:
    write_text(json.dumps(data, indent=2, default=_plain_json) + "\n", path)


def _plain_json(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value.tolist() if isinstance(value, np.ndarray) \
        else str(value)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            # numpy's stub types **arrays against its keyword allow_pickle: bool (numpy>=2.1); not named here, as
            # numpy 2.0 would store it as an array
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
    _atomic(path, write)


def append_json_line(row: dict, path: Path) -> None:
    """One JSON line appended and flushed: an append-only log that a killed driver leaves readable."""
    with open(path, "a") as f:
        f.write(json.dumps(row, default=_plain_json) + "\n")


def write_config(config: dict, run_dir: Path) -> None:
    write_text(yaml.safe_dump(config, sort_keys=False), Path(run_dir) / CONFIG_FILE)


# ----------------------------------------------------------------------------------------- reads
def read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise ConfigError(f"{path} is unreadable ({type(e).__name__}); rerun the search or restore the file") from None


def read_json_lines(path: Path) -> list[dict]:
    """The rows of an append-only JSON-lines log; a last line cut short by a kill is skipped."""
    if not Path(path).exists():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"{path} is missing; is {run_dir} a tunedepth run folder?")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise ConfigError(f"{path} is not valid YAML; restore it from the run") from None
    if not isinstance(config, dict) or "app" not in config:
        raise ConfigError(f"{path} has no 'app' key; restore it from the run")
    return config


def resolve_run(name_or_path: str, results_dir: str = RESULTS_DIR) -> Path:
    """A run folder given as a path, or as a name under ``results_dir``."""
    for candidate in (Path(name_or_path), Path(results_dir) / name_or_path):
        if candidate.is_dir() and (candidate / TRIALS_FILE).exists():
            return candidate.resolve()
    raise ConfigError(f"no run {name_or_path!r}: neither {name_or_path} nor {Path(results_dir) / name_or_path} "
                      f"holds a {TRIALS_FILE}; give a run folder or a name under --results-dir")


def prediction_rows(run_info: dict, labels: np.ndarray, probs: np.ndarray, meta: dict) -> pd.DataFrame:
    """One (budget, depth, seed) block of predictions.parquet: run-level columns, sample, label, prob_<c>,
    meta_<key>."""
    n = probs.shape[0]
    cols: dict[str, object] = {k: [run_info[k]] * n for k in PREDICTION_RUN_COLUMNS}
    cols["sample"] = np.arange(n, dtype=np.int64)
    cols["label"] = np.asarray(labels).astype(np.int64)
    for c in range(probs.shape[1]):
        cols[f"{PROB_PREFIX}{c}"] = probs[:, c]
    for key, value in meta.items():
        arr = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        cols[META_PREFIX + key] = list(arr) if arr.ndim > 1 else arr
    return pd.DataFrame(cols)


def write_predictions(predictions: pd.DataFrame, run_dir: Path) -> Path | None:
    if predictions.empty:
        return None
    path = Path(run_dir) / PREDICTIONS_FILE
    write_parquet(predictions, path)
    return path


Cell = tuple[float, str, int]  # (budget, depth, seed)


def read_predictions(path: Path) -> dict[Cell, dict]:
    """predictions.parquet -> {(budget, depth, seed): {"info", "samples", "labels", "probs", "meta"}} as numpy."""
    df = read_parquet(path)
    prob_cols = sorted((c for c in df.columns if c.startswith(PROB_PREFIX)), key=lambda c: int(c[len(PROB_PREFIX):]))
    meta_cols = [c for c in df.columns if c.startswith(META_PREFIX)]
    missing = [c for c in PREDICTION_RUN_COLUMNS + PREDICTION_SAMPLE_COLUMNS if c not in df.columns]
    if missing or not prob_cols:
        raise ConfigError(f"{path} lacks columns {missing or ['prob_*']}; rerun the search to regenerate it")
    keys = pd.MultiIndex.from_frame(df[["budget", "depth", "seed"]].astype({"depth": object}))
    codes, uniques = pd.factorize(keys, sort=True)
    order = np.lexsort((df["sample"].to_numpy(), codes))
    bounds = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0, True])
    columns = {c: df[c].to_numpy() for c in df.columns}
    probs_all = df[prob_cols].to_numpy(dtype=np.float64)
    out = {}
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        rows = order[lo:hi]
        meta = {}
        for c in meta_cols:
            values = columns[c][rows]
            meta[c[len(META_PREFIX):]] = np.stack(values) if values.dtype == object else values
        budget, depth, seed = uniques[codes[rows[0]]]
        out[(float(budget), str(depth), int(seed))] = {
            "info": {c: columns[c][rows[0]] for c in PREDICTION_RUN_COLUMNS},
            "samples": columns["sample"][rows],
            "labels": columns["label"][rows],
            "probs": probs_all[rows],
            "meta": meta,
        }
    return out


def finished_trials(run_dir: Path) -> int | None:
    """The number of trials of a finished run (its answer written, no trial ended in error), else None: an
    interrupted run, or one whose errored trials ``resume`` would rerun, is not finished."""
    run_dir = Path(run_dir)
    if not ((run_dir / SUMMARY_FILE).exists() and (run_dir / TRIALS_FILE).exists()):
        return None
    trials = read_parquet(run_dir / TRIALS_FILE)
    if "status" in trials and (trials["status"] == "error").any():
        return None
    return int(trials["trial_id"].nunique()) if "trial_id" in trials else 0


@dataclass
class RunFiles:
    run_dir: Path
    config: dict
    trials: pd.DataFrame
    predictions: dict | None  # read_predictions(...) or None when the run has no test predictions


def load_run(run_dir: Path) -> RunFiles:
    run_dir = Path(run_dir)
    for name in REQUIRED_FILES:
        if not (run_dir / name).exists():
            raise ConfigError(f"{run_dir / name} is missing; is {run_dir} a tunedepth run folder?")
    config = read_config(run_dir)
    trials = read_parquet(run_dir / TRIALS_FILE)
    path = run_dir / PREDICTIONS_FILE
    predictions = read_predictions(path) if path.exists() else None
    return RunFiles(run_dir, config, trials, predictions)


# ------------------------------------------------------------------------------ a search's folders
class RunLocation(Protocol):
    """Where a search's folders are: what these functions read of a ``tunedepth.config.SearchConfig`` (which this
    leaf module cannot import)."""

    @property
    def results_dir(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def storage(self) -> str: ...


def run_dir_of(cfg: RunLocation) -> Path:
    """``<results_dir>/<name>`` of a ``SearchConfig``."""
    return Path(cfg.results_dir).resolve() / cfg.name


def storage_of(cfg: RunLocation, run_dir: Path) -> tuple[str, str]:
    """(storage_path, experiment name) for Tune: results/<name>/tune by default, else <storage>/<name>."""
    if cfg.storage:
        return (cfg.storage if "://" in cfg.storage else str(Path(cfg.storage).resolve())), cfg.name
    return str(run_dir), "tune"


def optuna_url(run_dir: Path) -> str:
    """The SQLAlchemy URL of the run's Optuna studies (optuna-dashboard and ``optuna.load_study`` take it)."""
    return f"sqlite:///{Path(run_dir).resolve() / OPTUNA_FILE}"


def experiment_path(cfg: RunLocation, run_dir: Path) -> str:
    storage, name = storage_of(cfg, run_dir)
    return f"{storage.rstrip('/')}/{name}"


def extension_experiment(cfg: RunLocation, run_dir: Path, epochs: int, stamp: str) -> tuple[str, str]:
    """(storage_path, experiment name) of one ``tunedepth extend`` to cap ``epochs``: beside the run's own
    experiment, ``tune-extend<N>-<stamp>`` (or ``<name>-extend<N>-<stamp>`` under ``storage``); the stamp keeps
    an interrupted attempt's folder apart from the next one."""
    storage, name = storage_of(cfg, run_dir)
    return storage, f"{name}-extend{epochs}-{stamp}"


def read_extensions(run_dir: Path) -> list[dict]:
    """The run's completed extensions, oldest first: ``{"from_epochs", "to_epochs", "experiment_path",
    "trials": {original trial id: that extension's Tune trial id}}`` each (none: ``[]``)."""
    path = Path(run_dir) / EXTENSIONS_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON; restore it from the run") from None
    return list(data.get("extensions", []))


def write_extensions(extensions: list[dict], run_dir: Path) -> None:
    write_json({"extensions": extensions}, Path(run_dir) / EXTENSIONS_FILE)


def experiment_paths(run_dir: Path, config: dict) -> list[str]:
    """Every Tune experiment of a run, oldest first: the run's own (config.yaml ``experiment_path``, else
    ``<run>/tune``), then each completed extension's. A trial's latest state is in the last one that ran it."""
    own = str(config.get("experiment_path") or Path(run_dir) / "tune")
    return [own] + [str(e["experiment_path"]) for e in read_extensions(run_dir)]


def trial_dir_name(depth: str, budget: float, trial_id: str) -> str:
    """The folder name of one Tune trial in an experiment (the runner's ``trial_dirname_creator``):
    ``<depth>_b<budget>_<trial id>``; ``trial_checkpoint_files`` finds a trial by its ``_<trial id>`` ending."""
    return f"{depth}_b{budget}_{trial_id}"


def trial_checkpoint_files(run_dir: Path, config: dict, trial_id: str, filename: str) -> tuple[str, list[Path]]:
    """(the experiment folder holding trial ``trial_id``'s latest state, its checkpoint files oldest first):
    the last extension that continued the trial, else the run's own experiment. ``filename``: the trainable's
    (``tunedepth.training.resolved.CHECKPOINT_FILE``). Local storage only (a remote one lists nothing)."""
    where, tune_id = str(config.get("experiment_path") or Path(run_dir) / "tune"), trial_id
    for ext in reversed(read_extensions(run_dir)):
        if trial_id in ext.get("trials", {}):
            where, tune_id = str(ext["experiment_path"]), str(ext["trials"][trial_id])
            break
    dirs = sorted(Path(where).glob(f"*_{tune_id}")) if "://" not in where else []
    return where, sorted(dirs[0].glob(f"checkpoint_*/{filename}")) if dirs else []


def trial_checkpoint(run_dir: Path, config: dict, trial_id: str, filename: str) -> Path:
    """The file of trial ``trial_id``'s latest checkpoint (``trial_checkpoint_files``' last), which carries the
    trial's best validation weights; a one-line ``ConfigError`` naming the fix when there is none here."""
    where, ckpts = trial_checkpoint_files(run_dir, config, trial_id, filename)
    if "://" in where:
        raise ConfigError(f"the run's checkpoints are in remote storage ({where}); copy that folder to this machine "
                          f"and export from a run folder whose config.yaml experiment_path names the copy")
    if not ckpts:
        raise ConfigError(f"trial {trial_id} has no checkpoint under {where}; were the run's tune/ checkpoints "
                          f"deleted? rerun the search to export it")
    return ckpts[-1]


@dataclass(frozen=True)
class ExportPaths:
    folder: Path
    model: Path
    config: Path  # model.json: preprocessing, choice, trial config
    examples: Path  # examples.npz: test inputs (uint8) and the probabilities the run stored for them


def export_paths(run_dir: Path, budget: float, depth: str, fmt: str, out: str | None = None) -> ExportPaths:
    """The files of one export: under ``out`` if given, else ``<run>/export/<depth>_b<budget>/``."""
    folder = Path(out) if out else Path(run_dir) / EXPORT_DIR / f"{depth}_b{budget:g}"
    folder.mkdir(parents=True, exist_ok=True)
    return ExportPaths(folder, folder / EXPORT_FORMATS[fmt], folder / "model.json", folder / "examples.npz")
