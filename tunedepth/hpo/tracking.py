"""Experiment tracking beside the run folder: TensorBoard (Tune's event files) and MLflow (``--mlflow URI``).

TensorBoard: Tune writes one event file per trial into its experiment folder (``results/<name>/tune/<trial>/``,
by ``TBXLoggerCallback``, always on); ``tensorboard --logdir results/<name>/tune`` shows every trial's curves.
MLflow: with ``mlflow`` set, Ray's ``MLflowLoggerCallback`` logs one MLflow run per trial (its config as
params, every reported epoch as metrics) into the experiment named after the run.
"""
from __future__ import annotations

import os
from pathlib import Path

from tunedepth.errors import ConfigError
from tunedepth.run_files import experiment_path, optuna_url

MLFLOW_INSTALL = "pip install 'tunedepth[mlflow]' (or mlflow-skinny)"


def is_file_store(uri: str) -> bool:
    """A local folder as MLflow store: ``file:///...`` or a plain path (MLflow's own default)."""
    return uri.startswith("file:") or "://" not in uri and not uri.startswith(("sqlite:", "databricks"))


def mlflow_callback(uri: str, experiment: str, tags: dict | None = None):
    """Ray's MLflow logger for tracking URI ``uri``; raises ``ConfigError`` (one line, the fix) when MLflow is not
    installed. A file store is what the user asked for: MLflow >= 3.7 refuses it unless told it is wanted."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError(f"--mlflow needs MLflow, which is not installed: {MLFLOW_INSTALL}") from None
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    if is_file_store(uri):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=experiment, tags=tags or {})


def tracking_callbacks(cfg) -> list:
    """The Tune callbacks a ``SearchConfig`` asks for (built before any data, so a missing package fails first)."""
    if not cfg.mlflow:
        return []
    return [mlflow_callback(cfg.mlflow, cfg.name, {"app": cfg.app, "backbone": cfg.backbone, "source": cfg.source})]


def close_interrupted_runs(cfg) -> int:
    """Before a resume: MLflow runs of the experiment left RUNNING by the driver that died are marked KILLED (Tune
    logs each resumed trial into a new run); returns how many."""
    if not cfg.mlflow:
        return 0
    mlflow_callback(cfg.mlflow, cfg.name)  # checks the install, allows a file store
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cfg.mlflow)
    experiment = client.get_experiment_by_name(cfg.name)
    if experiment is None:
        return 0
    runs = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'")
    for run in runs:
        client.set_terminated(run.info.run_id, status="KILLED")
    return len(runs)


def tensorboard_hint(experiment_path: str) -> str:
    """The command that opens the run's TensorBoard event files (a path relative to the current folder if below it)."""
    path = experiment_path
    if "://" not in path:
        try:
            path = str(Path(path).resolve().relative_to(Path.cwd()))
        except ValueError:
            pass
    return f"tensorboard --logdir {path}"


def tracking_text(cfg, run_dir: Path, depths: list[str]) -> str:
    """Where to watch a run, printed at its start: TensorBoard (always), the Optuna studies, MLflow."""
    lines = [f"tensorboard: {tensorboard_hint(experiment_path(cfg, run_dir))}"]
    if cfg.searcher == "optuna":
        short = (f"; only {cfg.samples} of the {len(depths)} depths get a trial per budget (--samples "
                 f"{cfg.samples}), the report names the others as not trained") if cfg.samples < len(depths) else ""
        lines.append(f"optuna: optuna-dashboard {optuna_url(run_dir)}  (one study per budget: budget-<b>){short}")
    if cfg.mlflow:
        lines.append(f"mlflow: one run per trial in experiment {cfg.name!r} at {cfg.mlflow}")
    return "\n".join(lines)
