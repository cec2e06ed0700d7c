"""Divergence is an outcome (issue 27): no traceback from the test evaluation, one line when a whole lr range
diverged, a diverged trial's own state. Fast: no Ray, no training; one slow end-to-end run,
`tunedepth run --smoke --depths head,scratch --budgets 1.0 --lr-min 1e6 --lr-max 1e6`, then `status` and `report` on
it."""

import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from tunedepth.cli.run import diverged_range
from tunedepth.hpo.evaluate import kept_checkpoints

TUNEDEPTH = str(Path(sys.executable).with_name("tunedepth"))


def _result(tid, kept):
    df = pd.DataFrame({"trial_id": [tid], "epoch": [1]})
    return SimpleNamespace(metrics_dataframe=df, best_checkpoints=kept)


def test_a_checkpoint_without_finite_best_weights_is_not_offered():
    diverged_first = {"epoch": 1, "val_metric": math.nan, "best_epoch": 0, "best_val_metric": None}
    diverged_later = {"epoch": 3, "val_metric": math.nan, "best_epoch": 2, "best_val_metric": 0.8}
    grid = [_result("a", [("ckpt-a", diverged_first)]), _result("b", [("ckpt-b1", diverged_first),
                                                                      ("ckpt-b2", diverged_later)])]
    kept = kept_checkpoints(grid)  # was: TypeError float(None)
    assert kept["a"] == []
    assert [(k.epoch, k.val_metric, k.checkpoint) for k in kept["b"]] == [(2, 0.8, "ckpt-b2")]


def _trials(rows):
    return pd.DataFrame(rows, columns=["trial_id", "depth", "status"])


def test_a_range_whose_every_trial_diverged_is_named():
    ft_gone = _trials([("1", "head", "diverged"), ("2", "b3-head", "diverged"), ("3", "scratch", "ok")])
    assert "--lr-min/--lr-max" in diverged_range(ft_gone)
    scratch_gone = _trials([("1", "head", "ok"), ("3", "scratch", "diverged")])
    assert "--scratch-lr-min" in diverged_range(scratch_gone)
    assert diverged_range(_trials([("1", "head", "diverged"), ("3", "scratch", "diverged")])) == "of the run"
    some = _trials([("1", "head", "diverged"), ("2", "head", "ok"), ("3", "scratch", "ok")])
    assert diverged_range(some) == ""  # some lrs diverged: an answer, not a failure
    assert diverged_range(pd.DataFrame()) == ""


def test_a_cell_whose_every_lr_diverged_is_named_for_the_table():
    from tunedepth.analysis.answers import diverged_cells

    t = pd.DataFrame({"trial_id": ["1", "1", "2", "3", "4"], "depth": ["head", "head", "head", "b3-head", "scratch"],
                      "depth_index": [0, 0, 0, 1, 9], "budget": [1.0] * 5,
                      "status": ["ok", "diverged", "diverged", "diverged", "ok"]})
    assert diverged_cells(t, 1.0) == ["head", "b3-head"]  # a trial's last row is its state
    assert diverged_cells(t, 0.5) == []


def test_a_diverged_trial_is_diverged_in_the_live_view_and_in_status_not_stopped_early():
    from tunedepth.analysis.trial_states import counts_text, state_of
    from tunedepth.hpo.progress import BudgetProgress

    progress = BudgetProgress("max", max_epochs=3, metric_name="auc")
    trials = [SimpleNamespace(trial_id=t, config={"budget": 1.0, "depth": "head", "lr": lr, "seed": 0})
              for t, lr in (("ok", 1e-3), ("nan", 1e6))]
    for trial, results in zip(trials, ([0.7, 0.8, 0.9], [math.nan])):
        for epoch, v in enumerate(results, 1):
            progress.on_trial_result(0, trials, trial, {"training_iteration": epoch, "val_metric": v,
                                                        "diverged": math.isnan(v)})
        progress.on_trial_complete(0, trials, trial)
    line = progress.render().splitlines()[1]
    assert "finished 1, stopped early 0, diverged 1" in line and "best so far head (auc 0.900)" in line
    on_disk = counts_text([state_of("TERMINATED", 3, 3), state_of("TERMINATED", 1, 3, diverged=True)])
    assert on_disk == "pending 0, running 0, paused 0, finished 1, stopped early 0, diverged 1"
    assert counts_text([state_of("TERMINATED", 1, 3)]).endswith("stopped early 1")  # no diverged: not listed


@pytest.mark.slow
def test_a_run_whose_every_fine_tuned_trial_diverges_records_and_shows_it(tmp_path):
    """A real smoke run with an absurd fine-tuning lr (scratch keeps its own, sane range): exit 2 with one line;
    trials.parquet records ``diverged``; ``status`` counts them as diverged; the report names them."""
    env = dict(os.environ)  # the session's source cache (conftest)
    res = tmp_path / "results"

    def cli(*args):
        return subprocess.run([TUNEDEPTH, *args], capture_output=True, text=True, env=env, timeout=300)

    run = cli(
        "run",
        "--smoke",
        "--backbone",
        "tiny-alexnet",  # a cheap network: divergence is the same at any size
        "--source",
        "fractal",
        "--depths",
        "fc8,scratch",
        "--budgets",
        "1.0",
        "--epochs",
        "1",  # fc8 diverges in its first epoch; scratch needs no second one to show it did not
        "--lr-min",
        "1e6",
        "--lr-max",
        "1e6",
        "--name",
        "div",
        "--results-dir",
        str(res),
    )
    assert run.returncode == 2, run.stderr[-2000:]
    ours = [line for line in run.stderr.splitlines() if line.strip()]  # one line: Ray's token notice is not one
    assert len(ours) == 1 and ours[0].startswith("tunedepth: error:"), run.stderr[-2000:]
    assert "diverged" in ours[0] and "lower the lr range" in ours[0]
    assert "token auth on" in run.stdout  # said on stdout instead
    assert "Traceback" not in run.stderr
    trials = pd.read_parquet(res / "div" / "trials.parquet")
    last = trials.sort_values("epoch").groupby("trial_id").tail(1)
    assert set(last.loc[last["depth"] == "fc8", "status"]) == {"diverged"}
    assert "diverged" not in set(last.loc[last["depth"] == "scratch", "status"])
    status = cli("status", "div", "--results-dir", str(res))
    assert status.returncode == 0, status.stderr
    heads = last[last["depth"] == "fc8"].groupby("budget").size()
    for budget, n in heads.items():
        line = next(s for s in status.stdout.splitlines() if s.strip().startswith(f"budget {budget:g} "))
        assert f"stopped early 0, diverged {n}" in line, status.stdout
    report = cli("report", str(res / "div"))
    assert report.returncode == 0, report.stderr[-2000:]
    text = (res / "div" / "report.md").read_text()
    assert text.count("diverged (NaN/inf loss)") == len(heads.index) and "diverged at every lr" in text
