"""End to end on a real local Ray: a smoke search, resuming a trial from its checkpoint, the CLI."""
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
import yaml
from ray import tune

from tunedepth.apps import get_app
from tunedepth.config import SearchConfig, smoke_config
from tunedepth.errors import ConfigError
from tunedepth.hpo.runner import run_search
from tunedepth.hpo.trainable import train_depth

# the crash-injecting trainable below lives in this test module, which Ray workers cannot import: ship it by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

TUNEDEPTH = str(Path(sys.executable).with_name("tunedepth"))
REQUIRED = {"trial_id", "app", "backbone", "source", "depth", "depth_index", "budget", "lr", "schedule", "seed",
            "epoch", "val_metric", "train_loss", "time_s"}


@pytest.fixture(scope="module")
def demo_smoke(tmp_path_factory):
    """``tunedepth demo --smoke`` through the CLI, as the README runs it: the default search (efficientnet-lite0
    from its packaged ImageNet weights) at smoke size. One run, checked by the tests below."""
    tmp = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "TUNEDEPTH_CACHE": str(tmp / "cache")}
    demo = subprocess.run([TUNEDEPTH, "demo", "--smoke", "--results-dir", str(tmp / "results")],
                          capture_output=True, text=True, env=env, timeout=300)
    return demo, tmp / "results" / "demo-smoke"


@pytest.mark.slow
def test_smoke_search_end_to_end(demo_smoke):
    demo, run_dir = demo_smoke
    assert demo.returncode == 0, demo.stderr[-2000:]
    table = pq.read_table(run_dir / "trials.parquet").to_pandas()  # plain pyarrow, no tunedepth needed
    assert REQUIRED <= set(table.columns)
    depths = ["head", "b3-head", "stem-head", "scratch"]
    assert table.groupby("budget")["trial_id"].nunique().to_dict() == {0.25: 8, 1.0: 8}  # 4 depths x 2 lrs
    assert table.groupby(["budget", "depth"])["lr"].nunique().eq(2).all()
    assert sorted(table["depth"].unique()) == sorted(depths)
    assert table["epoch"].between(1, 2).all() and table["val_metric"].between(0, 1).all()
    assert set(table.loc[table.depth == "scratch", "source"]) == {"scratch"}
    assert set(table.loc[table.depth != "scratch", "source"]) == {"imagenet"}
    n_train = table.groupby("budget")["n_train"].first()
    assert n_train[0.25] < n_train[1.0]
    # the default scheduler prunes lrs within a depth only on evidence: every rung decision is recorded, and
    # exactly the lrs it kept run on to max_t; a rung at chance level (scratch after 1 epoch) keeps every lr
    reached = table.groupby(["budget", "depth", "trial_id"])["epoch"].max().eq(2).groupby(["budget", "depth"]).sum()
    decisions = json.loads((run_dir / "promotion.json").read_text())["decisions"]
    assert len(decisions) == 8 and {d["rule"] for d in decisions} <= {"chance", "evidence"}
    for d in decisions:
        assert d["groups"] == 2 and reached[tuple(d["stratum"])] == d["kept"] >= 1, d
        assert d["rule"] != "chance" or d["kept"] == 2, d

    check = json.loads((run_dir / "source_check.json").read_text())  # the probe ran before tuning
    assert check["source"] == "imagenet" and check["better_than_random"] and check["n_train"] == n_train[1.0]

    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["depths"] == depths and saved["budgets"] == [0.25, 1.0] and saved["metric"] == "auc"
    summary = pq.read_table(run_dir / "summary.parquet").to_pandas()
    best = summary[summary["is_best"].astype(bool)].set_index("budget")
    assert sorted(best.index) == [0.25, 1.0] and set(best["depth"]) <= set(depths)
    per_trial = table.groupby(["budget", "trial_id"])["val_metric"].max()
    assert best.loc[1.0, "val_metric"] == pytest.approx(per_trial[1.0].max())  # one seed: the best trial's best
    assert "budget 0.25" in demo.stdout  # live progress was printed
    umask = os.umask(0o022)
    os.umask(umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run_dir.rglob("*") if p.is_file()
             and "tune" not in p.relative_to(run_dir).parts}  # Tune's own folder is Ray's
    assert {"trials.parquet", "summary.parquet", "predictions.parquet", "report.md"} <= set(modes)
    assert set(modes.values()) == {0o666 & ~umask}, modes  # readable by colleagues on shared storage

    # trials with frozen groups trained on cached prefix features; stem-head and scratch ran in full
    cached = {}
    for result_file in (run_dir / "tune").glob("*/result.json"):
        rows = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
        cached[rows[0]["config"]["depth"]] = rows[0]["feature_cache"]
    assert cached == {"head": True, "b3-head": True, "stem-head": False, "scratch": False}


def test_impossible_budget_fails_before_any_trial(tmp_path):
    cfg = smoke_config(SearchConfig(name="bad", results_dir=str(tmp_path))).replace(budgets=(0.001, 1.0))
    with pytest.raises(ConfigError, match="use a budget >="):
        run_search(cfg, log=lambda s: None)
    assert not (tmp_path / "bad").exists()


def _report_once_then_fail(config, data, weights):
    """The real trainable, with a crash injected after its first checkpointed report: the second epoch trains
    and crashes before it reports (a crash at once after a report would race Tune's handling of that report)."""
    if tune.get_checkpoint() is not None:
        return train_depth(config, data, weights)
    original = ray.tune.report
    calls = []

    def report_then_crash(metrics, checkpoint=None):
        calls.append(metrics["epoch"])
        if len(calls) > 1:
            raise RuntimeError("injected crash in the second epoch")
        original(metrics, checkpoint=checkpoint)

    ray.tune.report = report_then_crash
    try:
        train_depth(config, data, weights)
    finally:
        ray.tune.report = original


@pytest.mark.slow
def test_trial_resumes_from_its_checkpoint_after_a_crash(ray_local, tmp_path):
    data = get_app("colonoscopy-frames").build_data(200, 64, 0)
    config = {"backbone": "tiny-alexnet", "depth": "scratch", "budget": 1.0, "epochs": 3, "batch_size": 16}
    tuner = tune.Tuner(
        tune.with_parameters(_report_once_then_fail, data=data, weights={}),
        param_space=config,
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="resume", verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1)),
    )
    result = tuner.fit()[0]
    assert result.error is None
    epochs = result.metrics_dataframe["epoch"].tolist()
    assert epochs == [1, 2, 3]  # epoch 1 was not trained again after the crash
    assert result.checkpoint is not None


@pytest.mark.slow
def test_cli_demo_smoke_and_listing(demo_smoke, tmp_path):
    env = {**os.environ, "TUNEDEPTH_CACHE": str(tmp_path / "cache")}
    depths = subprocess.run([TUNEDEPTH, "depths", "tiny-alexnet"], capture_output=True, text=True, check=True,
                            env=env)
    assert depths.stdout.split() == ["fc8", "fc7-fc8", "fc6-fc8", "conv5-fc8", "conv4-fc8", "conv3-fc8",
                                     "conv2-fc8", "conv1-fc8", "scratch"]
    bad = subprocess.run([TUNEDEPTH, "depths", "vgg99"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "choose one of" in bad.stderr
    demo, run_dir = demo_smoke
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "best tuning depth per data budget" in demo.stdout
    assert (run_dir / "trials.parquet").exists()


@pytest.mark.slow
def test_replicates_run_only_for_the_surviving_learning_rate(ray_local, tmp_path, caplog):
    """The default replicates on demand (``--replicates leader``) on real Tune (z 0: every lr behind the best is
    dropped): the first
    seed races 3 learning rates; the second
    seed runs (to the end, unpaused) only for the winner; the losers' second seeds never start. The cell's
    replicates are then that learning rate's two full-length seeds."""
    cfg = SearchConfig(
        name="rep",
        backbone="tiny-alexnet",
        depths=("scratch",),
        budgets=(1.0,),
        epochs=3,
        samples=3,
        seeds=(0, 1),
        patience_steps=0,
        prune_z=0.0,
        grace_period=1,
        data_samples=120,
        batch_size=16,
        results_dir=str(tmp_path),
    )
    with caplog.at_level(logging.WARNING, logger="ray.tune"):
        out = run_search(cfg, log=lambda s: None)
    assert not out.errors
    assert not [r for r in caplog.records if "fetch metrics" in r.getMessage()]  # never-started replicates: no noise
    ran = out.trials.groupby(["lr", "seed"])["epoch"].max()
    winner = ran.xs(1, level="seed").index.tolist()
    assert len(winner) == 1 and ran[(winner[0], 0)] == 3 and ran[(winner[0], 1)] == 3
    assert sorted(ran.xs(0, level="seed").drop(winner).tolist()) == [1, 1]  # pruned after one epoch
    assert out.trials["trial_id"].nunique() == 4  # 2 replicates never started
    assert out.validation["best_lr"].tolist() == winner
    # trials that paused at a rung and resumed keep every epoch (from the driver's epochs.jsonl)
    for _, g in out.trials.groupby("trial_id"):
        assert g["epoch"].tolist() == list(range(1, g["epoch"].max() + 1))
    logged = [json.loads(line) for line in (tmp_path / "rep" / "epochs.jsonl").read_text().splitlines()]
    assert len(logged) == len(out.trials) and {"trial_id", "epoch", "val_metric"} <= set(logged[0])
