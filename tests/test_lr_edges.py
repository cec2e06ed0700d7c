"""The answer says when a depth's chosen learning rate sits at an edge of its grid (the range may not bracket it)."""
import pandas as pd

from tunedepth.analysis.lr_edges import lr_edge_notes

CONFIG = {"searcher": "grid", "samples": 3, "lr_min": 3e-4, "lr_max": 3e-3, "scratch_lr_min": 3e-3,
          "scratch_lr_max": 3e-2, "budgets": [0.1, 1.0], "seeds": [0, 1]}


def summary(rows):
    return pd.DataFrame(rows, columns=["budget", "depth", "lr"])


def test_edges_are_named_per_depth_and_budget_and_the_middle_is_not():
    s = summary([(0.1, "head", 3e-3), (1.0, "head", 3e-3), (0.1, "b4-head", 9.49e-4), (1.0, "b4-head", 3e-4),
                 (0.1, "scratch", 9.49e-3), (1.0, "scratch", 3e-2)])
    notes = lr_edge_notes(s, CONFIG)
    assert len(notes) == 3, notes
    high = next(n for n in notes if "highest" in n and "--lr-max" in n)
    assert "head (10%, 100%)" in high and "b4-head" not in high
    low = next(n for n in notes if "lowest" in n)
    assert "b4-head (100%)" in low and "--lr-min" in low
    scratch = next(n for n in notes if "scratch" in n)  # scratch's own range: 3e-2 is its highest, 3e-3 its lowest
    assert "highest" in scratch and "--scratch-lr-max" in scratch and "scratch (100%)" in scratch


def test_no_note_inside_the_range_or_for_drawn_learning_rates():
    inside = summary([(1.0, "head", 9.49e-4), (1.0, "scratch", 9.49e-3)])
    assert lr_edge_notes(inside, CONFIG) == []
    edge = summary([(1.0, "head", 3e-3)])
    assert lr_edge_notes(edge, {**CONFIG, "searcher": "optuna"}) == []  # drawn lrs: no grid edge
    assert lr_edge_notes(edge, {**CONFIG, "samples": 1}) == []  # one lr: nothing to bracket


def test_two_learning_rates_say_every_choice_is_an_edge():
    notes = lr_edge_notes(summary([(1.0, "head", 3e-4)]), {**CONFIG, "samples": 2})
    assert notes[-1].startswith("with 2 learning rates per depth every choice is at an edge")
