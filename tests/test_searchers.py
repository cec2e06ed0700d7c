"""Search strategies: the guideline searcher on a synthetic objective (no training), Optuna end to end."""
import sys

import numpy as np
import pytest
import ray
from ray import tune
from ray.tune.search import Searcher

from tunedepth.config import SearchConfig, smoke_config
from tunedepth.hpo.runner import run_search
from tunedepth.hpo.searchers import make_plan
from tunedepth.hpo.searchers.guideline import GuidelineSearcher
from tunedepth.models import depth_names, get_backbone

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

DEPTHS = depth_names(get_backbone("tiny-alexnet"))  # fc8 ... conv1-fc8, scratch
BEST = {0.1: "fc6-fc8", 1.0: "conv4-fc8"}  # known best depth per budget of the synthetic objective


def synthetic_metric(depth: str, budget: float) -> float:
    """Rises by 0.03 per group up to the budget's best depth, then falls by 0.02 per group; scratch is low."""
    if depth == "scratch":
        return 0.6
    i, best = DEPTHS.index(depth), DEPTHS.index(BEST[budget])
    return 0.7 + 0.03 * min(i, best) - 0.02 * max(0, i - best)


def synthetic_trainable(config):
    for epoch in range(1, 3):
        tune.report({"val_metric": synthetic_metric(config["depth"], config["budget"]) - 0.01 * (2 - epoch)})


def test_guideline_searcher_protocol_without_ray():
    """Drive the Searcher API by hand: it waits for each depth before deepening, then stops."""
    s = GuidelineSearcher(DEPTHS, [1.0], lrs=[1e-3], min_delta=0.005, patience=1, metric="val_metric", mode="max")
    seen = []
    for step in range(20):
        cfg = s.suggest(f"t{step}")
        if cfg == Searcher.FINISHED:
            break
        assert cfg is not None, "a depth is always launchable right after the previous one completed"
        seen.append(cfg["depth"])
        value = synthetic_metric(cfg["depth"], 1.0)
        s.on_trial_result(f"t{step}", {"val_metric": value})
        s.on_trial_complete(f"t{step}", {"val_metric": value})
    # head first, one group deeper each time, one level past the best, plus scratch as the control
    assert seen[:5] == ["fc8", "fc7-fc8", "fc6-fc8", "conv5-fc8", "conv4-fc8"]
    assert "scratch" in seen and "conv3-fc8" in seen and "conv2-fc8" not in seen
    summary = s.summary()[1.0]
    assert summary["best_depth"] == "conv4-fc8" and "did not improve" in summary["stop_reason"]


def test_guideline_waits_for_the_current_depth():
    s = GuidelineSearcher(DEPTHS, [0.5], lrs=[1e-3, 1e-2], include_scratch=False, metric="val_metric", mode="max")
    a, b = s.suggest("a"), s.suggest("b")
    assert {a["lr"], b["lr"]} == {1e-3, 1e-2} and a["depth"] == b["depth"] == "fc8"
    assert s.suggest("c") is None  # both lrs of fc8 are running: nothing to do until they finish
    s.on_trial_result("a", {"val_metric": 0.7})
    s.on_trial_complete("a", {"val_metric": 0.7})
    assert s.suggest("c") is None  # fc8 is decided only when all of its trials are done
    s.on_trial_result("b", {"val_metric": 0.8})
    s.on_trial_complete("b", {"val_metric": 0.8})
    assert s.suggest("c")["depth"] == "fc7-fc8"
    assert s.summary()[0.5]["evaluated"] == {"fc8": 0.8}


def test_guideline_judges_an_lr_by_its_seeds_mean_and_takes_min_delta_from_their_spread():
    s = GuidelineSearcher(["fc8", "fc7-fc8", "fc6-fc8"], [1.0], lrs=[1e-3, 1e-2], seeds=(0, 1),
                          include_scratch=False, metric="val_metric", mode="max")
    # fc8: lr 1e-3 seeds 0.80 / 0.84 (mean 0.82, sd 0.028); lr 1e-2 one lucky seed 0.90, one 0.60 (mean 0.75)
    # fc7-fc8: 0.84 / 0.84 (mean 0.84) beats 0.82 by less than the seeds' spread: fc8 stays the answer
    scores = {("fc8", 1e-3, 0): 0.80, ("fc8", 1e-3, 1): 0.84, ("fc8", 1e-2, 0): 0.90, ("fc8", 1e-2, 1): 0.60}
    scores.update({("fc7-fc8", lr, seed): 0.84 for lr in (1e-3, 1e-2) for seed in (0, 1)})
    for step in range(12):
        cfg = s.suggest(f"t{step}")
        if cfg in (None, Searcher.FINISHED):
            break
        value = scores[(cfg["depth"], cfg["lr"], cfg["seed"])]
        s.on_trial_result(f"t{step}", {"val_metric": value})
        s.on_trial_complete(f"t{step}", {"val_metric": value})
    summary = s.summary()[1.0]
    assert summary["evaluated"]["fc8"] == pytest.approx(0.82)  # the mean of the best lr, not the 0.90 seed
    assert summary["best_depth"] == "fc8" and summary["trials"] == 8
    assert summary["min_delta"] > 0.02  # pooled seed sd, dominated by the 0.90 / 0.60 pair


@pytest.mark.slow
def test_guideline_finds_the_known_best_depth_with_fewer_trials_than_grid(ray_local, tmp_path):
    cfg = SearchConfig(searcher="guideline", budgets=(0.1, 1.0), lr_min=1e-3, lr_max=1e-3, epochs=2,
                       scratch_lr_min=1e-3, scratch_lr_max=1e-3,
                       guideline_min_delta=0.005)
    plan = make_plan(cfg, DEPTHS, {}, "val_metric", "max")
    results = tune.Tuner(
        synthetic_trainable, param_space=plan.param_space,
        tune_config=tune.TuneConfig(metric="val_metric", mode="max", search_alg=plan.search_alg,
                                    num_samples=plan.num_samples),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="guideline", verbose=0),
    ).fit()
    grid_trials = len(DEPTHS) * 2 * len(cfg.seeds)
    assert len(results) < grid_trials
    for budget, best in BEST.items():
        rows = [r for r in results if r.config["budget"] == budget]
        assert plan.guideline.summary()[budget]["best_depth"] == best
        top = max((r for r in rows if r.config["depth"] != "scratch"), key=lambda r: r.metrics["val_metric"])
        assert top.config["depth"] == best
        assert len(rows) < len(DEPTHS) * len(cfg.seeds)
        assert {r.config["seed"] for r in rows} == set(cfg.seeds)
    summary = plan.guideline.summary()
    assert sum(v["trials"] for v in summary.values()) == len(results)
    assert sum(v["epochs"] for v in summary.values()) == 2 * len(results)


@pytest.mark.slow
def test_optuna_search_end_to_end(ray_local, tmp_path, capsys):
    """Also the run's tracking: stored Optuna studies, TensorBoard event files, MLflow runs, the progress line."""
    cfg = smoke_config(SearchConfig(name="optuna", backbone="tiny-alexnet", source="fractal",
                                             results_dir=str(tmp_path))).replace(
        searcher="optuna", samples=3, epochs=3, grace_period=1, mlflow=f"file://{tmp_path}/mlruns")
    out = run_search(cfg)
    assert not out.errors
    printed = capsys.readouterr().out
    assert f"tensorboard --logdir {tmp_path}/optuna/tune" in printed and "optuna-dashboard sqlite:///" in printed
    assert "| trials 6/6 | steps " in printed and "| done" in printed  # the progress line at the end
    trial_dirs = [d for d in (tmp_path / "optuna" / "tune").iterdir() if (d / "result.json").exists()]
    assert len(trial_dirs) == 6 and all(list(d.glob("events.out.tfevents.*")) for d in trial_dirs)
    import mlflow
    mlflow.set_tracking_uri(cfg.mlflow)
    runs = mlflow.search_runs(experiment_names=["optuna"])  # one MLflow run per trial, with its metric per epoch
    run_of = {t: runs[runs["tags.trial_name"].str.endswith(t)] for t in out.trials["trial_id"].unique()}
    assert len(runs) == 6 and all(len(r) == 1 for r in run_of.values())
    last = out.trials.sort_values("epoch").groupby("trial_id")["val_metric"].last()
    assert all(np.isclose(run_of[t]["metrics.val_metric"].iloc[0], v) for t, v in last.items())
    assert all(
        run_of[t]["params.depth"].iloc[0] == d for t, d in out.trials.groupby("trial_id")["depth"].first().items()
    )
    per_budget = out.trials.groupby("budget")["trial_id"].nunique().to_dict()
    assert per_budget == {0.25: 3, 1.0: 3}
    scratch = out.trials["depth"] == "scratch"  # each depth draws in its own range
    assert out.trials.loc[~scratch, "lr"].between(cfg.lr_min, cfg.lr_max).all()
    assert out.trials.loc[scratch, "lr"].between(cfg.scratch_lr_min, cfg.scratch_lr_max).all()
    assert set(out.trials["depth"]) <= {"fc8", "conv4-fc8", "conv1-fc8", "scratch"}
    assert np.isfinite(out.validation["best_val"]).all()
    import optuna
    for budget, group in out.trials.groupby("budget"):  # the stored study of each budget, as optuna-dashboard opens it
        study = optuna.load_study(study_name=f"budget-{budget:g}", storage=f"sqlite:///{tmp_path}/optuna/optuna.db")
        assert len(study.trials) == 3 and group["depth"].nunique() == 3  # 3 of the 4 depths enqueued, one trial each
        assert sorted(t.params["depth"] for t in study.trials) == sorted(group.groupby("trial_id")["depth"].first())
