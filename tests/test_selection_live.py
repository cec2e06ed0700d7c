"""Live progress and ``tunedepth status`` pick the best depth so far with the one selection rule."""
from types import SimpleNamespace

from search.status import best_so_far


def _rows():
    # budget 1.0: fc8 has lr 0.1 with seeds 0.95 / 0.55 (mean 0.75) and lr 0.01 with 0.85 / 0.84 (0.845);
    # conv1-fc8 has one lr with 0.80 / 0.82 (0.81): fc8 wins by its lr 0.01, not by the lucky 0.95 seed
    spec = [("a", "fc8", 1, 0.1, 0, [0.9, 0.95]), ("b", "fc8", 1, 0.1, 1, [0.5, 0.55]),
            ("c", "fc8", 1, 0.01, 0, [0.8, 0.85]), ("d", "fc8", 1, 0.01, 1, [0.8, 0.84]),
            ("e", "conv1-fc8", 8, 0.01, 0, [0.7, 0.80]), ("f", "conv1-fc8", 8, 0.01, 1, [0.7, 0.82])]
    return [{"trial_id": t, "status": "TERMINATED", "config": {"budget": 1.0, "depth": d, "lr": lr, "seed": s},
             "depth_index": i, "best": vals, "epochs": len(vals)} for t, d, i, lr, s, vals in spec]


def test_status_best_so_far_judges_seeds_together():
    best = best_so_far(_rows(), "max")
    assert list(best["depth"]) == ["fc8"] and best["lr"].iloc[0] == 0.01
    assert abs(best["val_metric"].iloc[0] - 0.845) < 1e-12


def test_live_progress_uses_the_same_rule():
    from search.progress import BudgetProgress

    progress = BudgetProgress("max", max_epochs=2, metric_name="auc")
    for r in _rows():
        trial = SimpleNamespace(trial_id=r["trial_id"], config=r["config"])
        for epoch, v in enumerate(r["best"], 1):
            progress.on_trial_result(0, [trial], trial, {"training_iteration": epoch, "val_metric": v,
                                                          "depth_index": r["depth_index"]})
    assert "best so far fc8 (auc 0.845)" in progress.render()


def test_mode_says_which_way_is_better():
    import pytest

    from trainables.mode import Mode

    up, down = Mode.of("max"), Mode.of(Mode("min"))
    assert up.better(0.9, 0.8) and not up.better(0.8, 0.8) and up.better(0.1, None)
    assert down.better(0.8, 0.9) and down.best([3.0, 1.0, 2.0]) == 1.0 and up.best([3.0, 1.0]) == 3.0
    assert up.ascending is False and down.ascending is True and down.gain(-0.5) == 0.5
    with pytest.raises(ValueError, match="'max' or 'min'"):
        Mode("maximum")
