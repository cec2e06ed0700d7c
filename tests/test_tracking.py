"""Tracking hooks without a search: which MLflow URIs are file stores, the TensorBoard command, and a missing
MLflow refused in one line before anything is built. (The e2e optuna test reads real MLflow runs back.)"""
import sys
from pathlib import Path

import pytest

from tunedepth.config import SearchConfig
from tunedepth.errors import ConfigError
from tunedepth.hpo.runner import run_search
from tunedepth.hpo.tracking import is_file_store, tensorboard_hint, tracking_callbacks, tracking_text


def test_file_stores_and_the_tensorboard_command(tmp_path, monkeypatch):
    assert is_file_store("file:///tmp/mlruns") and is_file_store("mlruns")
    assert not any(map(is_file_store, ("sqlite:///mlflow.db", "http://host:5000", "databricks")))
    monkeypatch.chdir(tmp_path)
    assert tensorboard_hint(str(tmp_path / "results" / "x" / "tune")) == "tensorboard --logdir results/x/tune"
    assert tensorboard_hint("s3://bucket/x") == "tensorboard --logdir s3://bucket/x"
    cfg = SearchConfig(name="x", searcher="optuna", samples=2, seeds=(0,), mlflow="file:///m")
    text = tracking_text(cfg, tmp_path / "results" / "x", ["fc8", "conv1-fc8", "scratch"])
    assert "tensorboard --logdir results/x/tune" in text
    assert f"optuna-dashboard sqlite:///{tmp_path}/results/x/optuna.db" in text and "only 2 of the 3 depths" in text
    assert "experiment 'x' at file:///m" in text


def test_mlflow_callback_is_rays_with_the_run_name():
    pytest.importorskip("mlflow")
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    (cb,) = tracking_callbacks(SearchConfig(name="run7", mlflow="sqlite:///x.db"))
    assert isinstance(cb, MLflowLoggerCallback) and cb.experiment_name == "run7" and cb.tracking_uri == "sqlite:///x.db"
    assert tracking_callbacks(SearchConfig(name="run7")) == []


def test_missing_mlflow_is_one_line_before_any_data(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: `import mlflow` raises ImportError
    cfg = SearchConfig(name="m", results_dir=str(tmp_path), mlflow="file:///tmp/x")
    with pytest.raises(ConfigError, match=r"--mlflow needs MLflow.*pip install 'tunedepth\[mlflow\]'"):
        run_search(cfg, log=lambda s: None)
    assert not (Path(tmp_path) / "m").exists()


def test_a_resume_marks_the_runs_the_dead_driver_left_running_killed(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from tunedepth.hpo.tracking import close_interrupted_runs

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    cfg = SearchConfig(name="r", mlflow=f"file://{tmp_path}/mlruns")
    assert close_interrupted_runs(cfg) == 0  # no experiment yet
    client = MlflowClient(tracking_uri=cfg.mlflow)
    exp = client.create_experiment("r")
    left, done = client.create_run(exp), client.create_run(exp)
    client.set_terminated(done.info.run_id, status="FINISHED")
    assert close_interrupted_runs(cfg) == 1
    assert client.get_run(left.info.run_id).info.status == "KILLED"
    assert client.get_run(done.info.run_id).info.status == "FINISHED"
