"""The report: answers and guideline on run folders with a known answer, offline rebuild, schemas, CLI."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from tunedepth.analysis import analyse, build_report, format_answer
from tunedepth.analysis.compare import compare_runs
from tunedepth.cli.main import main
from tunedepth.errors import ConfigError
from tunedepth.hpo.evaluate import KeptCheckpoint, choose_checkpoint, evaluate_selected
from tunedepth.metrics import compute_roc_auc
from tunedepth.run_files import SUMMARY_COLUMNS, TRIAL_COLUMNS, prediction_rows, write_parquet

DEPTH_INDEX = {"fc8": 1, "conv4-fc8": 5, "conv1-fc8": 8, "scratch": 9}
N_NEG, N_POS = 150, 90


def _probs(separation: float, seed: int, noise: float = 0.0) -> np.ndarray:
    """Two-class probabilities whose AUC grows with ``separation``; ``noise`` perturbs the same base scores."""
    labels = np.repeat([0, 1], [N_NEG, N_POS])
    score = np.random.default_rng(seed).normal(size=labels.size) + separation * labels
    score = score + noise * np.random.default_rng(seed + 1000).normal(size=labels.size)
    p1 = 1 / (1 + np.exp(-score))
    return np.column_stack([1 - p1, p1])


def write_run(run_dir: Path, cells: dict, groups: np.ndarray | None = None, app: str = "colonoscopy-frames",
              status: str = "early-stopped") -> Path:
    """A run folder by hand: cells = {(budget, depth): (val_metric, probs)}; two epochs per trial."""
    labels = np.repeat([0, 1], [N_NEG, N_POS])
    trials, preds = [], []
    for k, ((budget, depth), (val, probs)) in enumerate(sorted(cells.items())):
        tid = f"t_{k:05d}"
        for epoch, v in ((1, val - 0.05), (2, val)):
            trials.append({"trial_id": tid, "app": app, "backbone": "tiny-alexnet",
                           "source": "scratch" if depth == "scratch" else "fractal", "depth": depth,
                           "depth_index": DEPTH_INDEX[depth], "budget": budget, "lr": 1e-3, "schedule": "paper",
                           "seed": 0, "epoch": epoch, "val_metric": v, "val_loss": 0.5, "train_loss": 0.5,
                           "time_s": float(epoch), "n_train": int(1000 * budget), "metric": "auc", "status": status})
        info = {"app": app, "backbone": "tiny-alexnet", "source": "fractal", "budget": budget,
                "depth": depth, "depth_index": DEPTH_INDEX[depth], "trial_id": tid, "lr": 1e-3, "seed": 0,
                "selected_epoch": 2, "evaluated_epoch": 2}
        preds.append(prediction_rows(info, labels, probs, {} if groups is None else {"group": groups}))
    run_dir.mkdir(parents=True)
    write_parquet(pd.DataFrame(trials)[list(TRIAL_COLUMNS)], run_dir / "trials.parquet")
    write_parquet(pd.concat(preds, ignore_index=True), run_dir / "predictions.parquet")
    budgets = sorted({b for b, _ in cells})
    (run_dir / "config.yaml").write_text(yaml.safe_dump({
        "name": run_dir.name, "app": app, "backbone": "tiny-alexnet", "source": "fractal",
        "budgets": budgets, "epochs": 2, "scheduler": "asha", "data_seed": 0,
        "n_train": 1000, "n_val": 240, "n_test": N_NEG + N_POS}))
    return run_dir


STRONG = _probs(2.5, 100)  # AUC ~ 0.96


def known_cells() -> dict:
    return {
        # 10%: conv4-fc8 best by validation; conv1-fc8 = conv4-fc8 + tiny noise (tied); fc8 and scratch weak
        (0.1, "fc8"): (0.60, _probs(0.2, 1)),
        (0.1, "conv4-fc8"): (0.90, STRONG),
        (0.1, "conv1-fc8"): (0.88, _probs(2.5, 100, noise=0.01)),
        (0.1, "scratch"): (0.62, _probs(0.3, 2)),
        # 100%: every depth, scratch included, predicts the same
        (1.0, "fc8"): (0.93, STRONG), (1.0, "conv4-fc8"): (0.95, STRONG),
        (1.0, "conv1-fc8"): (0.94, STRONG), (1.0, "scratch"): (0.92, STRONG),
    }


def test_a_capped_cell_is_a_lower_bound_never_worse(tmp_path):
    """The same known answer with every trial run to the cap (no plateau): the weak depths are behind, but their
    scores are lower bounds, so no verdict calls them worse; the table marks them and says how to continue."""
    from tunedepth.analysis.render import format_answer

    a = analyse(write_run(tmp_path / "capped", known_cells(), status="ok"), n_boot=500, seed=0)
    small = a.answers[0]
    assert small.verdicts == {"fc8": "lower bound", "conv1-fc8": "equivalent", "scratch": "lower bound"}
    assert small.scratch_verdict == "scratch capped (lower bound)"
    s = a.summary.set_index(["budget", "depth"])
    assert s.loc[(0.1, "fc8"), "capped"] == 1 and not s.loc[(0.1, "fc8"), "converged"]
    text = format_answer(a)
    assert "fc8*" in text and "scratch*" in text and "0/4" in text and "tunedepth extend" in text
    converged = analyse(write_run(tmp_path / "plateau", known_cells()), n_boot=200, seed=0)
    assert "4/4" in format_answer(converged) and "tunedepth extend" not in format_answer(converged)
    assert converged.summary["converged"].all() and (converged.summary["capped"] == 0).all()


def test_selection_races_lr_and_schedule_pairs():
    """Two schedules at one lr are two candidates: the better pair wins its cell, and carries its schedule."""
    from tunedepth.analysis.selecting import select_cells

    rows = [{"trial_id": f"t{i}", "budget": 1.0, "depth": "fc8", "depth_index": 1, "lr": 1e-3, "schedule": sched,
             "seed": 0, "epoch": 1, "val_metric": v, "n_train": 10, "status": "early-stopped"}
            for i, (sched, v) in enumerate([("paper", 0.80), ("cosine", 0.85)])]
    cells = select_cells(pd.DataFrame(rows), "max")
    assert cells["schedule"].tolist() == ["cosine"] and cells["val_metric"].tolist() == [0.85]
    assert cells["converged"].tolist() == [True]


def test_known_answer_verdicts_scratch_and_guideline(tmp_path):
    run = write_run(tmp_path / "known", known_cells())
    a = analyse(run, n_boot=500, seed=0)
    s = a.summary.set_index(["budget", "depth"])
    assert s.loc[(0.1, "conv4-fc8"), "test_metric"] == pytest.approx(
        compute_roc_auc(np.repeat([0, 1], [N_NEG, N_POS]), STRONG[:, 1]))
    small, full = a.answers
    assert (small.budget, small.best_depth) == (0.1, "conv4-fc8")
    assert small.verdicts == {"fc8": "worse", "conv1-fc8": "equivalent", "scratch": "worse"}
    assert small.scratch_verdict == "fine-tuning better" and small.best_finetune == "conv4-fc8"
    assert small.scratch_vs_finetune[2] < 0  # scratch - best fine-tune, interval below 0
    assert full.best_depth == "conv4-fc8" and set(full.verdicts.values()) == {"equivalent"}
    assert full.scratch_verdict == "equivalent" and full.scratch_vs_finetune == (0, 0, 0)  # identical predictions
    assert s.loc[(0.1, "fc8"), "indistinguishable_from_best"] == False  # noqa: E712
    assert s.loc[(0.1, "fc8"), "p_vs_best_holm"] >= s.loc[(0.1, "fc8"), "p_vs_best"]
    assert s.loc[(0.1, "conv4-fc8"), "is_best"] and s.loc[(0.1, "conv4-fc8"), "verdict"] == "best"
    assert s.loc[(0.1, "conv4-fc8"), "delta_vs_scratch_low"] > 0
    assert a.guideline[0] == "At budget 10%, tune conv4-fc8 (chosen by validation; equivalent on test: conv1-fc8)."
    assert a.guideline[1] == ("At budget 100%, tune conv4-fc8 (chosen by validation; equivalent on test: fc8, "
                              "conv1-fc8, scratch).")
    assert a.guideline[2] == ("Scratch vs the best fine-tuned depth: fine-tuning better at budget 10%; equivalent "
                              "at budget 100%.")
    assert a.guideline[3] == ("Tuning the head only (fc8, the cheapest option) compared with the best depth: "
                              "equivalent at budget 100%; worse at budget 10%.")
    assert not any("budget grows" in g for g in a.guideline)  # two budgets cannot back a trend
    assert not a.warnings
    text = format_answer(a)
    assert "conv4-fc8" in text and "fine-tuning better" in text and "guideline:" in text
    for banned in ("tied", "significantly", "statistically as good"):
        assert banned not in text


def test_validation_choice_beaten_on_test_is_only_a_warning(tmp_path):
    cells = {(0.5, "fc8"): (0.95, _probs(0.2, 1)), (0.5, "conv4-fc8"): (0.80, STRONG),
             (0.5, "scratch"): (0.70, _probs(0.2, 3))}
    a = analyse(write_run(tmp_path / "beaten", cells), n_boot=500)
    (ans,) = a.answers
    assert ans.best_depth == "fc8" and ans.better_on_test == ["conv4-fc8"] and ans.verdicts["scratch"] == "inconclusive"
    assert a.guideline[0] == "At the only budget (50%), tune fc8 (chosen by validation)."
    assert a.warnings == ["warning: at budget 50% the validation choice fc8 is worse on test than conv4-fc8 (better "
                          "after correction); validation may rank depths unreliably there, the recommendation stays "
                          "the validation choice"]
    assert a.warnings[0] in format_answer(a)


def test_early_stopped_losers_are_pointed_out(tmp_path):
    run = write_run(tmp_path / "stopped", known_cells())
    trials = pd.read_parquet(run / "trials.parquet")
    fc8 = trials[(trials.depth == "fc8") & (trials.budget == 0.1)]
    trials = trials.drop(fc8[fc8.epoch == 2].index)  # fc8 @ 10% pruned by the scheduler after epoch 1
    trials.loc[(trials.depth == "fc8") & (trials.budget == 0.1), "status"] = "stopped"
    write_parquet(trials, run / "trials.parquet")
    a = analyse(run, n_boot=300)
    assert any(g.startswith("1 of the 2 budget × depth results worse than the best come from trials that did not "
                            "end on their own (stopped after 1 of 2 epoch-equivalents") for g in a.guideline)
    trials.loc[(trials.depth == "fc8") & (trials.budget == 0.1), "status"] = "early-stopped"  # patience: complete
    write_parquet(trials, run / "trials.parquet")
    assert not any("did not end on their own" in g for g in analyse(run, n_boot=300).guideline)


def test_scratch_best_and_groups(tmp_path):
    groups = np.arange(N_NEG + N_POS) // 3
    cells = {(1.0, "fc8"): (0.6, _probs(0.1, 5)), (1.0, "conv4-fc8"): (0.7, _probs(0.2, 6)),
             (1.0, "scratch"): (0.9, STRONG)}
    a = analyse(write_run(tmp_path / "scratchy", cells, groups=groups), n_boot=300)
    assert a.unit == "group"
    (ans,) = a.answers
    assert ans.best_depth == "scratch" and ans.scratch_verdict == "scratch better"
    assert ans.verdicts == {"fc8": "worse", "conv4-fc8": "worse"}
    assert a.guideline[0] == "At the only budget (100%), train from scratch (chosen by validation)."
    assert a.guideline[1] == "Scratch vs the best fine-tuned depth: scratch better at the only budget (100%)."


def test_selection_judges_a_learning_rates_seeds_together_and_ignores_incomplete_trials(tmp_path):
    """Cell fc8 @ 100%: lr 1e-2 has one lucky seed (0.99) and one bad (0.70): mean 0.845; lr 1e-3 has 0.90 and
    0.88: mean 0.89 and wins; an lr 1e-1 trial stopped after epoch 1 at 0.995 cannot win against complete ones."""
    from tunedepth.analysis.selecting import select_cells, select_replicates

    rows = []
    for tid, lr, seed, vals in (("a", 1e-2, 0, (0.9, 0.99)), ("b", 1e-2, 1, (0.6, 0.70)), ("c", 1e-3, 0, (0.8, 0.90)),
                                ("d", 1e-3, 1, (0.8, 0.88)), ("e", 1e-1, 0, (0.995,))):
        for epoch, v in enumerate(vals, 1):
            rows.append({"trial_id": tid, "budget": 1.0, "depth": "fc8", "depth_index": 1, "lr": lr, "seed": seed,
                         "epoch": epoch, "val_metric": v, "n_train": 10, "status": "ok"})
    trials = pd.DataFrame(rows)
    (cell,) = select_cells(trials, "max").itertuples()
    assert (cell.lr, cell.seeds, cell.trial_ids, cell.n_seeds) == (1e-3, "0,1", "c,d", 2)
    assert cell.val_metric == pytest.approx(0.89) and cell.trial_id == "c" and cell.complete
    assert list(select_replicates(trials, "max")["trial_id"]) == ["c", "d"]
    # the same for "min" metrics: lower is better
    flipped = trials.assign(val_metric=1 - trials["val_metric"])
    assert select_cells(flipped, "min").iloc[0]["lr"] == 1e-3


def test_patience_stopped_trials_compete_and_a_diverged_seed_makes_its_lr_lose():
    """lr 1e-3 ended by validation patience after 2 of 3 epoch-equivalents (complete, not pruned) and wins; lr
    1e-2 has a 0.99 seed but its other seed diverged, so it loses; a scheduler-stopped trial never wins."""
    from tunedepth.analysis.selecting import select_cells

    rows = []
    for tid, lr, seed, vals, status in (
            ("a", 1e-2, 0, (0.9, 0.95, 0.99), "ok"), ("b", 1e-2, 1, (0.8, float("nan")), "diverged"),
            ("c", 1e-3, 0, (0.85, 0.90), "early-stopped"), ("d", 1e-3, 1, (0.86, 0.88, 0.89), "ok"),
            ("e", 1e-1, 0, (0.999,), "stopped")):
        for epoch, v in enumerate(vals, 1):
            rows.append({"trial_id": tid, "budget": 1.0, "depth": "fc8", "depth_index": 1, "lr": lr, "seed": seed,
                         "epoch": epoch, "val_metric": v, "n_train": 10, "status": status})
    (cell,) = select_cells(pd.DataFrame(rows), "max").itertuples()
    assert (cell.lr, cell.trial_ids) == (1e-3, "c,d") and cell.val_metric == pytest.approx(0.895)


def test_replicate_seeds_widen_the_interval(tmp_path):
    """Two seeds of a cell that disagree on test: the cell's interval covers both, wider than one seed's."""
    run = write_run(tmp_path / "seeds", {(1.0, "fc8"): (0.8, _probs(1.0, 7)), (1.0, "scratch"): (0.7, _probs(0.5, 8))})
    trials, preds = pd.read_parquet(run / "trials.parquet"), pd.read_parquet(run / "predictions.parquet")
    one = analyse(run, n_boot=400).summary.set_index("depth")
    extra = trials[trials.depth == "fc8"].assign(trial_id="t_seed1", seed=1)
    block = preds[preds.depth == "fc8"].copy()
    block[["prob_0", "prob_1"]] = _probs(2.5, 9)
    block = block.assign(trial_id="t_seed1", seed=1)
    write_parquet(pd.concat([trials, extra], ignore_index=True), run / "trials.parquet")
    write_parquet(pd.concat([preds, block], ignore_index=True), run / "predictions.parquet")
    two = analyse(run, n_boot=400).summary.set_index("depth")
    assert two.loc["fc8", "n_seeds"] == 2 and two.loc["fc8", "seeds"] == "0,1"
    width = lambda s: s.loc["fc8", "test_metric_high"] - s.loc["fc8", "test_metric_low"]  # noqa: E731
    assert width(two) > 1.5 * width(one)


def test_extra_test_metrics_of_an_app_become_columns(tmp_path, monkeypatch):
    from dataclasses import replace

    from tunedepth.apps import APPS, get_app

    def metrics(labels, probs, meta):
        neg = np.sort(probs[labels == 0, 1])
        threshold = neg[int(np.ceil(0.9 * neg.size)) - 1]  # 10% of negatives above it
        return {
            "auc": compute_roc_auc(labels, probs[:, 1]),
            "sens@fpr0.1": float((probs[labels == 1, 1] > threshold).mean()),
        }

    monkeypatch.setitem(APPS, "two-metrics", replace(get_app("colonoscopy-frames"), name="two-metrics",
                                                      compute_metrics=metrics))
    run = write_run(tmp_path / "two", known_cells(), app="two-metrics")
    build_report(run, n_boot=100, plots=False, log=lambda s: None)
    summary = pd.read_parquet(run / "summary.parquet")
    assert tuple(summary.columns) == SUMMARY_COLUMNS + ("test_sens_fpr0_1",)
    row = summary[(summary.budget == 0.1) & (summary.depth == "conv4-fc8")].iloc[0]
    assert row["test_sens_fpr0_1"] == pytest.approx(
        metrics(np.repeat([0, 1], [N_NEG, N_POS]), STRONG, {})["sens@fpr0.1"]
    )
    assert "test_sens_fpr0_1" in (run / "report.md").read_text()


def test_parquet_schemas_are_pinned(tmp_path):
    assert TRIAL_COLUMNS == (
        "trial_id", "app", "backbone", "source", "depth", "depth_index", "budget", "lr", "schedule", "seed",
        "epoch", "val_metric", "val_loss", "train_loss", "time_s", "n_train", "metric", "status")
    assert SUMMARY_COLUMNS == (
        "app",
        "backbone",
        "source",
        "metric",
        "mode",
        "budget",
        "n_train",
        "depth",
        "depth_index",
        "trial_id",
        "trial_ids",
        "lr",
        "schedule",
        "seed",
        "n_seeds",
        "seeds",
        "selected_epoch",
        "evaluated_epoch",
        "epochs_run",
        "complete",
        "converged",
        "capped",
        "trials",
        "epochs_spent",
        "val_metric",
        "n_test",
        "test_metric",
        "test_metric_low",
        "test_metric_high",
        "is_best",
        "verdict",
        "indistinguishable_from_best",
        "p_vs_best",
        "p_vs_best_holm",
        "delta_vs_best",
        "delta_vs_best_low",
        "delta_vs_best_high",
        "delta_vs_scratch",
        "delta_vs_scratch_low",
        "delta_vs_scratch_high",
    )
    run = write_run(tmp_path / "schema", known_cells())
    build_report(run, n_boot=100, plots=False, log=lambda s: None)
    table = pq.read_table(run / "summary.parquet")  # plain pyarrow
    names = tuple(table.column_names)
    # the pinned columns come first; an app's extra test metrics follow as test_<name> columns
    assert names[:len(SUMMARY_COLUMNS)] == SUMMARY_COLUMNS
    assert all(n.startswith("test_") for n in names[len(SUMMARY_COLUMNS):])
    types = {f.name: str(f.type) for f in table.schema}
    assert types["is_best"] == types["indistinguishable_from_best"] == types["complete"] == "bool"
    assert types["verdict"] == types["seeds"] == types["depth"] in ("string", "large_string")
    assert types["test_metric"] == types["delta_vs_scratch_low"] == "double"
    assert types["selected_epoch"] == types["n_test"] == "int64"
    assert table.schema.metadata[b"tunedepth.bootstrap"] == b"100"
    preds = pq.read_table(run / "predictions.parquet").column_names
    assert preds[:13] == ["app", "backbone", "source", "budget", "depth", "depth_index", "trial_id", "lr", "seed",
                          "selected_epoch", "evaluated_epoch", "sample", "label"]
    assert preds[13:] == ["prob_0", "prob_1"]


def test_report_without_predictions_is_validation_only(tmp_path):
    run = write_run(tmp_path / "nopred", known_cells())
    (run / "predictions.parquet").unlink()
    a = build_report(run, n_boot=50, log=lambda s: None)
    assert [x.best_depth for x in a.answers] == ["conv4-fc8", "conv4-fc8"]  # by validation
    assert a.summary["test_metric"].isna().all()
    assert "validation only" in a.guideline[0] and any("no predictions.parquet" in n for n in a.notes)
    assert (run / "report.md").exists() and (run / "plots" / "learning_curves.png").exists()


def test_cli_report_and_compare_and_their_errors(tmp_path, capsys):
    run = write_run(tmp_path / "runs" / "known", known_cells())
    assert main(["report", "known", "--results-dir", str(tmp_path / "runs"), "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "tune conv4-fc8 (chosen by validation" in out and (run / "report.md").exists()
    md = (run / "report.md").read_text()
    for png in ("metric_vs_depth", "metric_vs_budget", "learning_curves", "early_stopping"):
        assert f"(plots/{png}.png)" in md
        assert (run / "plots" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    other = tmp_path / "runs" / "other"
    shutil.copytree(run, other)
    assert main(["compare", str(run), str(other), "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "paired bootstrap (same test split)" in out and "B is equivalent vs A at budget(s) 10%, 100%" in out

    assert main(["report", "missing", "--results-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run 'missing'" in err
    (other / "trials.parquet").write_bytes(b"not parquet")
    assert main(["report", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trials.parquet is unreadable" in err
    assert main(["report", str(run), "--bootstrap", "0"]) == 2
    assert main(["report", str(run), "--margin", "-1"]) == 2
    assert "--margin must be >= 0" in capsys.readouterr().err


def test_compare_pairs_only_runs_on_the_same_test_split(tmp_path):
    a = analyse(write_run(tmp_path / "a", known_cells()), n_boot=300)
    same = compare_runs(a, analyse(write_run(tmp_path / "b", known_cells()), n_boot=300))
    assert same.paired and (same.table["delta"] == 0).all() and (same.table["delta_high"] == 0).all()
    other = write_run(tmp_path / "c", known_cells())
    config = yaml.safe_load((other / "config.yaml").read_text())
    (other / "config.yaml").write_text(yaml.safe_dump({**config, "data_seed": 1}))
    indep = compare_runs(a, analyse(other, n_boot=300))
    assert not indep.paired and (indep.table["delta"] == 0).all()
    assert (indep.table["delta_low"] < -0.01).all() and (indep.table["delta_high"] > 0.01).all()
    assert (indep.table["verdict"] == "inconclusive").all()
    assert (same.table["verdict"] == "equivalent").all()


def test_compare_refuses_two_applications(tmp_path):
    a = analyse(write_run(tmp_path / "a", known_cells()), n_boot=50)
    b = analyse(write_run(tmp_path / "b", known_cells()), n_boot=50)
    b.config["app"] = "another-app"
    with pytest.raises(ConfigError, match="different applications"):
        compare_runs(a, b)


def test_choose_checkpoint_prefers_the_selected_epoch_then_the_best_kept():
    kept = [KeptCheckpoint(1, 0.70, None), KeptCheckpoint(3, 0.80, None), KeptCheckpoint(4, 0.80, None)]
    assert choose_checkpoint(kept, 3, "max").epoch == 3
    assert choose_checkpoint(kept, 2, "max").epoch == 4  # best kept by validation, latest on ties
    assert choose_checkpoint(kept, 2, "min").epoch == 1
    assert choose_checkpoint([], 2, "max") is None


def test_test_evaluation_of_real_checkpoints_with_a_missing_and_a_corrupt_one(tmp_path):
    """Real TrialRun checkpoints wrapped as Tune results: the best epoch's checkpoint is gone for one trial
    (the best kept one is evaluated and recorded), another's file is corrupt (noted, the rest goes on)."""
    from ray import tune

    from tunedepth.apps import get_app
    from tunedepth.hpo.results import trials_frame
    from tunedepth.settings import TrialConfig
    from tunedepth.training.trial import TrialRun

    data = get_app("colonoscopy-frames").build_data(200, 64, 0)
    results = []
    for k, budget in enumerate((0.5, 1.0)):
        cfg = TrialConfig(backbone="tiny-alexnet", depth="scratch", budget=budget, epochs=2, batch_size=32, lr=1e-3)
        run, rows, kept = TrialRun(cfg, data, {}), [], []
        for _ in range(2):
            m = run.step()
            rows.append({**m, "trial_id": f"t{k}", "source": "scratch"})
            d = tmp_path / f"t{k}" / f"checkpoint_{m['epoch']}"
            d.mkdir(parents=True)
            torch.save(run.state_dict(), d / "trial.pt")
            kept.append((tune.Checkpoint.from_directory(str(d)), rows[-1]))
        results.append(
            tune.Result(
                metrics={**rows[-1], "config": cfg.to_dict()},
                checkpoint=kept[-1][0],
                error=None,
                path=str(tmp_path / f"t{k}"),
                metrics_dataframe=pd.DataFrame(rows),
                best_checkpoints=kept,
            )
        )
    trials = trials_frame(results, "auc")
    best = trials.loc[trials.groupby("trial_id")["val_metric"].idxmax()].set_index("trial_id")["epoch"]
    missing = results[0].best_checkpoints
    results[0].best_checkpoints = [c for c in missing if c[1]["epoch"] != best["t0"]]
    (Path(results[1].best_checkpoints[[c[1]["epoch"] for c in results[1].best_checkpoints].index(best["t1"])][0].path)
     / "trial.pt").write_bytes(b"garbage")
    preds, notes = evaluate_selected(trials, results, data, {}, "max", log=lambda s: None)
    assert set(preds["trial_id"]) == {"t0"} and len(preds) == len(data.test_y)
    assert preds["selected_epoch"].iloc[0] == best["t0"] and preds["evaluated_epoch"].iloc[0] == 3 - best["t0"]
    assert any("had no checkpoint left" in n for n in notes)
    assert any(n.startswith("scratch @ budget 1 (seed 0): the checkpoint of epoch") and "could not be evaluated" in n
               for n in notes)
    np.testing.assert_allclose(preds[["prob_0", "prob_1"]].sum(axis=1), 1.0)


def test_trials_frame_takes_the_rows_tunes_result_file_lost_from_the_driver_log(tmp_path):
    """Tune's result.json of a trial that paused can lose its first rows (a stale synced copy is restored over
    it); the driver's epochs.jsonl has every report, and the latest report of a re-reported epoch wins."""
    from ray import tune

    from tunedepth.hpo.results import EpochLog, read_epochs, trials_frame

    def row(epoch, val, **extra):
        return {"trial_id": "t0", "epoch": epoch, "source": "scratch", "depth_index": 9, "val_metric": val,
                "val_loss": 0.5, "train_loss": 0.4, "time_s": 1.0, "n_train": 50, "diverged": False,
                "early_stopped": False, **extra}

    log = EpochLog(tmp_path)
    for r in (row(1, 0.6), row(2, 0.7), row(2, 0.72), row(3, 0.8)):  # epoch 2 re-reported after a resume
        log.on_trial_result(0, [], None, {**r, "config": {"ignored": 1}})
    with open(tmp_path / "epochs.jsonl", "a") as f:
        f.write('{"trial_id": "t0", "epo')  # a driver killed mid-line
    config = {"app": "colonoscopy-frames", "backbone": "tiny-alexnet", "depth": "scratch", "budget": 1.0,
              "lr": 1e-3, "schedule": "paper", "seed": 0, "epochs": 3}
    lost = pd.DataFrame([row(2, 0.7), row(3, 0.8)])  # what Tune's file kept
    result = tune.Result(metrics={**row(3, 0.8), "config": config}, checkpoint=None, error=None,
                         path=str(tmp_path), metrics_dataframe=lost)
    trials = trials_frame([result], "auc", read_epochs(tmp_path))
    assert trials["epoch"].tolist() == [1, 2, 3] and trials["val_metric"].tolist() == [0.6, 0.72, 0.8]
    assert set(trials["status"]) == {"ok"}
    assert trials_frame([result], "auc")["epoch"].tolist() == [2, 3]  # without the log: what Tune kept


def test_tunes_stale_copy_warning_is_dropped_once_the_driver_logs_epochs(tmp_path, caplog):
    import logging

    from tunedepth.hpo.results import EpochLog

    EpochLog(tmp_path).setup()
    tune_loggers = logging.getLogger("ray.tune.logger.logger")
    with caplog.at_level(logging.WARNING, logger="ray.tune.logger.logger"):
        tune_loggers.warning("Remote file not found: /r/tune/t0/result.json")
        tune_loggers.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


# ------------------------------------------------------------------------------- a real tiny run
@pytest.mark.slow
def test_report_from_a_real_tiny_run_and_offline_rebuild(tiny_smoke_run, tmp_path):
    out, shared = tiny_smoke_run  # the session's one smoke search (tests/conftest.py), shared with test_export
    run = tmp_path / "tiny"
    shutil.copytree(shared, run)  # the offline rebuild below deletes files: on a copy
    assert out.report is not None  # no note but, possibly, the source check's on the smoke fractal weights
    # no note but, possibly, the source check's, or (rarely, when a paused trial's pre-pause epoch was re-run
    # after its restore) that a cell's best epoch had no checkpoint left and the nearest kept one was scored
    # and the smoke's 2-point lr grids put every choice at an edge of its range (tunedepth.analysis.lr_edges)
    fallback = [n for n in out.report.notes if "had no checkpoint left" in n]
    edges = [n for n in out.report.notes if n.startswith(("learning rate at the", "with 2 learning rates"))]
    assert edges and edges[-1].startswith("with 2 learning rates per depth every choice is at an edge")
    assert not [n for n in out.report.notes if "does no better than random weights" not in n and n not in fallback
                and n not in edges]
    for name in ("trials.parquet", "predictions.parquet", "summary.parquet", "report.md", "config.yaml"):
        assert (run / name).exists(), name

    trials = pd.read_parquet(run / "trials.parquet")
    summary = pd.read_parquet(run / "summary.parquet")
    preds = pd.read_parquet(run / "predictions.parquet")
    assert (
        tuple(summary.columns)[: len(SUMMARY_COLUMNS)] == SUMMARY_COLUMNS and len(summary) == 8
    )  # 4 depths x 2 budgets
    assert {"test_sens_fpr0_10", "test_n_units"} <= set(summary.columns)  # the app's extra test metrics
    n_test = out.report.config["n_test"]
    assert len(preds) == summary["n_seeds"].sum() * n_test and (summary["n_test"] == n_test).all()
    # selection by validation only: a cell's score is the mean best validation score of its lr's seeds
    for r in summary.itertuples():
        reps = r.trial_ids.split(",")
        best_val = trials[trials.trial_id.isin(reps)].groupby("trial_id")["val_metric"].max()
        assert r.val_metric == pytest.approx(best_val.mean()) and len(reps) == r.n_seeds
        assert r.evaluated_epoch == r.selected_epoch or fallback  # Tune kept the best epoch's checkpoint
        aucs = []
        for tid in reps:
            p = preds[preds.trial_id == tid].sort_values("sample")
            assert (p.budget == r.budget).all() and (p.depth == r.depth).all()
            # frame-level AUC: each frame's score is the mean over its crops (meta "group" = frame)
            frame = p.groupby("meta_group").agg(label=("label", "max"), score=("prob_1", "mean"))
            aucs.append(compute_roc_auc(frame["label"], frame["score"]))
        assert r.test_metric == pytest.approx(np.mean(aucs))
        assert r.test_metric_low <= r.test_metric <= r.test_metric_high
    assert summary.groupby("budget")["is_best"].sum().eq(1).all()
    assert summary.loc[summary.is_best, "indistinguishable_from_best"].all()

    # offline: delete everything the report wrote and rebuild it in a fresh process from the files alone
    original = summary.copy()
    (run / "summary.parquet").unlink()
    (run / "report.md").unlink()
    shutil.rmtree(run / "plots")
    shutil.rmtree(run / "tune")  # no checkpoints needed
    proc = subprocess.run([sys.executable, "-m", "tunedepth", "report", str(run)], capture_output=True, text=True,
                          timeout=180, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "best tuning depth per data budget" in proc.stdout and "guideline:" in proc.stdout
    pd.testing.assert_frame_equal(pd.read_parquet(run / "summary.parquet"), original)
    md = (run / "report.md").read_text()
    assert "## Answer" in md and "(plots/metric_vs_depth.png)" in md
    assert len(list((run / "plots").glob("*.png"))) == 4


def test_report_compare_and_status_import_neither_ray_nor_the_training_code(tmp_path):
    """One fresh interpreter runs the three commands; ``sys.modules`` is checked after each."""
    run = str(write_run(tmp_path / "known", known_cells()))
    code = ("import sys\nfrom tunedepth.cli.main import main\n"
            "banned = ('ray', 'timm', 'tunedepth.training', 'tunedepth.models.engine', 'tunedepth.hpo.trainable', "
            "'tunedepth.hpo.runner', 'tunedepth.hpo.evaluate')\n"
            f"for args in (['report', {run!r}, '--bootstrap', '50', '--no-plots'], "
            f"['compare', {run!r}, {run!r}, '--bootstrap', '50'], ['status', {run!r}]):\n"
            "    rc = main(args)\n"
            "    loaded = sorted(m for m in sys.modules if m in banned or m.split('.')[0] in ('ray', 'timm'))\n"
            "    print('AFTER', args[0], rc, loaded)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    for command in ("report", "compare", "status"):
        assert f"AFTER {command} 0 []" in proc.stdout, proc.stdout[-2000:]


def test_selection_prefers_the_candidate_run_on_every_seed_over_a_tied_one_run_on_one():
    """Replicates on demand: the race's leader (lr 1e-3) ran both seeds (0.90, 0.84: mean 0.87); a tied lr 3e-3
    ran only its first seed (0.88, higher than that mean). The cell is the leader's, with both replicates."""
    from tunedepth.analysis.selecting import select_cells

    rows = []
    for tid, lr, seed, vals in (("a", 1e-3, 0, (0.8, 0.90)), ("b", 1e-3, 1, (0.8, 0.84)), ("c", 3e-3, 0, (0.8, 0.88))):
        for epoch, v in enumerate(vals, 1):
            rows.append({"trial_id": tid, "budget": 1.0, "depth": "fc8", "depth_index": 1, "lr": lr, "seed": seed,
                         "epoch": epoch, "val_metric": v, "n_train": 10, "status": "early-stopped"})
    (cell,) = select_cells(pd.DataFrame(rows), "max").itertuples()
    assert (cell.lr, cell.trial_ids, cell.n_seeds) == (1e-3, "a,b", 2) and cell.val_metric == pytest.approx(0.87)
