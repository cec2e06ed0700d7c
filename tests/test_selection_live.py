"""Live progress and ``tunedepth status`` pick the best depth so far with the one selection rule."""
from types import SimpleNamespace

from tunedepth.analysis.status import best_so_far


def _rows():
    # budget 1.0: fc8 has lr 0.1 with seeds 0.95 / 0.55 (mean 0.75) and lr 0.01 with 0.85 / 0.84 (0.845);
    # conv1-fc8 has one lr with 0.80 / 0.82 (0.81): fc8 wins by its lr 0.01, not by the lucky 0.95 seed
    spec = [("a", "fc8", 1, 0.1, 0, [0.9, 0.95]), ("b", "fc8", 1, 0.1, 1, [0.5, 0.55]),
            ("c", "fc8", 1, 0.01, 0, [0.8, 0.85]), ("d", "fc8", 1, 0.01, 1, [0.8, 0.84]),
            ("e", "conv1-fc8", 8, 0.01, 0, [0.7, 0.80]), ("f", "conv1-fc8", 8, 0.01, 1, [0.7, 0.82])]
    return [{"trial_id": t, "status": "TERMINATED", "config": {"budget": 1.0, "depth": d, "lr": lr, "seed": s},
             "depth_index": i, "curve": list(enumerate(vals, 1)), "epochs": len(vals)} for t, d, i, lr, s, vals in spec]


def test_status_best_so_far_judges_seeds_together():
    best = best_so_far(_rows(), "max")
    assert list(best["depth"]) == ["fc8"] and best["lr"].iloc[0] == 0.01
    assert abs(best["val_metric"].iloc[0] - 0.845) < 1e-12


def test_live_progress_uses_the_same_rule():
    from tunedepth.hpo.progress import BudgetProgress

    progress = BudgetProgress("max", max_epochs=2, metric_name="auc")
    for r in _rows():
        trial = SimpleNamespace(trial_id=r["trial_id"], config=r["config"])
        for epoch, v in r["curve"]:
            progress.on_trial_result(0, [trial], trial, {"training_iteration": epoch, "val_metric": v,
                                                          "depth_index": r["depth_index"]})
    assert "best so far fc8 (auc 0.845)" in progress.render()


def test_mode_says_which_way_is_better():
    import pytest

    from tunedepth.metrics.mode import Mode

    up, down = Mode.of("max"), Mode.of(Mode("min"))
    assert up.better(0.9, 0.8) and not up.better(0.8, 0.8) and up.better(0.1, None)
    assert down.better(0.8, 0.9) and down.best([3.0, 1.0, 2.0]) == 1.0 and up.best([3.0, 1.0]) == 3.0
    assert up.ascending is False and down.ascending is True and down.gain(-0.5) == 0.5
    with pytest.raises(ValueError, match="'max' or 'min'"):
        Mode("maximum")


def test_status_and_live_view_use_the_same_words_for_trial_states():
    """The same trials, as Tune's files list them and as the live view saw them: one line per budget, same words."""
    from tunedepth.analysis.trial_states import STATES, counts_text, state_of
    from tunedepth.hpo.progress import BudgetProgress

    rows = _rows()
    rows[1]["epochs"], rows[1]["curve"] = 1, [(1, 0.5)]  # cut after one epoch: "stopped early", not "finished"
    rows[5]["status"] = "ERROR"
    rows.append({"trial_id": "g", "status": "PENDING", "config": {"budget": 1.0, "depth": "fc8", "lr": 0.1, "seed": 2},
                 "depth_index": 1, "curve": [], "epochs": 0})
    progress = BudgetProgress("max", max_epochs=2, metric_name="auc")
    everyone = [SimpleNamespace(trial_id=r["trial_id"], config=r["config"]) for r in rows]
    for r, trial in zip(rows, everyone):
        if r["status"] == "PENDING":
            continue
        progress.on_trial_start(0, everyone, trial)
        for epoch, v in r["curve"]:
            progress.on_trial_result(0, everyone, trial, {"training_iteration": epoch, "val_metric": v,
                                                          "depth_index": r["depth_index"]})
        if r["status"] == "ERROR":
            progress.on_trial_error(0, everyone, trial)
        else:
            progress.on_trial_complete(0, everyone, trial)
    live = progress.render().splitlines()[1]
    on_disk = counts_text(state_of(r["status"], r["epochs"], 2) for r in rows)
    assert on_disk == "pending 1, running 0, paused 0, finished 4, stopped early 1, error 1"
    assert live.split("budget 1")[1].strip().startswith(on_disk)
    assert "terminated" not in on_disk and all(w in " ".join(STATES) for w in ("finished", "stopped early"))
    assert [state_of(s, 1, 2) for s in ("PAUSED", "RUNNING", "PENDING")] == ["paused", "running", "pending"]
