"""Divergence is an outcome (issue 27): no traceback from the test evaluation, one line when a whole lr range
diverged. Fast: no Ray, no training (the end-to-end run is `tunedepth run --smoke --lr-min 1e6 --lr-max 1e6`)."""
from types import SimpleNamespace

import math

import pandas as pd

from search.commands.run import diverged_range
from search.evaluate import kept_checkpoints


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
    from search.analysis.answers import diverged_cells

    t = pd.DataFrame({"trial_id": ["1", "1", "2", "3", "4"], "depth": ["head", "head", "head", "b3-head", "scratch"],
                      "depth_index": [0, 0, 0, 1, 9], "budget": [1.0] * 5,
                      "status": ["ok", "diverged", "diverged", "diverged", "ok"]})
    assert diverged_cells(t, 1.0) == ["head", "b3-head"]  # a trial's last row is its state
    assert diverged_cells(t, 0.5) == []
