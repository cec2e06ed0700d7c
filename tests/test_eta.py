"""The progress line's arithmetic (tunedepth.hpo.eta) as pure functions, and the live view printing it."""
import pickle
from types import SimpleNamespace

import pytest

from tunedepth.hpo.eta import compute_progress, duration, progress_line


def test_planned_steps_shrink_when_the_scheduler_stops_a_trial():
    # 4 planned trials of 3 epochs x 10 steps; "a" finished (3), "b" stopped at 1, "c" running at 2, "d" not created
    p = compute_progress({"a": (3, True), "b": (1, True), "c": (2, False)}, planned_trials=4, max_epochs=3,
                         steps_per_epoch=10, elapsed_s=60.0)
    assert (p.trials_done, p.trials_planned) == (2, 4)
    assert p.steps_done == 60 and p.steps_planned == 30 + 10 + 2 * 30  # b's 2 unrun epochs leave the plan
    assert p.fraction == pytest.approx(0.6)
    assert p.eta_s == pytest.approx(40 * 60 / 60)  # 40 steps left at 1 step/s


def test_eta_uses_this_sessions_rate_and_is_unknown_before_a_step():
    first = compute_progress({"a": (0, False)}, 2, 4, 5, elapsed_s=3.0)
    assert first.eta_s is None and progress_line(first).endswith("ETA -")
    # resumed with 20 steps already done; 10 more in 5 s: 2 steps/s over the 10 left
    resumed = compute_progress({"a": (4, True), "b": (2, False)}, 2, 4, 5, elapsed_s=5.0, steps_at_start=20)
    assert resumed.steps_done == 30 and resumed.steps_planned == 40 and resumed.eta_s == pytest.approx(5.0)


def test_more_trials_than_planned_and_the_end():
    # the guideline's plan is an upper bound; Tune may also know more trials than a stale plan says
    p = compute_progress({t: (2, True) for t in "abc"}, planned_trials=2, max_epochs=2, steps_per_epoch=1,
                         elapsed_s=9.0)
    assert (p.trials_done, p.trials_planned, p.fraction) == (3, 3, 1.0)
    assert progress_line(p, width=10) == "[##########] 100% | trials 3/3 | steps 6/6 | done"


def test_line_and_durations():
    p = compute_progress({"a": (1, False)}, 4, 2, 100, elapsed_s=50.0)
    assert progress_line(p, width=8) == "[#-------]  12% | trials 0/4 | steps 100/800 | ETA 5m50s"
    assert [duration(s) for s in (42, 185, 7620)] == ["42s", "3m05s", "2h07m"]


def test_live_view_prints_the_line_and_a_resumed_copy_keeps_its_counts():
    from tunedepth.hpo.progress import BudgetProgress

    view = BudgetProgress("max", max_epochs=2, metric_name="auc", planned_trials=3, steps_per_epoch=7)
    trial = SimpleNamespace(trial_id="t1", config={"budget": 1.0, "depth": "fc8", "lr": 0.01, "seed": 0})
    for epoch in (1, 2):
        view.on_trial_result(0, [trial], trial, {"training_iteration": epoch, "val_metric": 0.8})
    view.on_trial_complete(0, [trial], trial)
    assert "progress [" in view.render() and "| trials 1/3 | steps 14/42 |" in view.render()
    resumed = pickle.loads(pickle.dumps(view))  # Tune restores its callbacks so on resume
    assert resumed.steps_at_start == 14 and resumed.progress().session_steps == 0


def test_trials_that_ended_before_a_resume_count_as_ended():
    from tunedepth.hpo.progress import BudgetProgress

    view = BudgetProgress("max", max_epochs=4, metric_name="auc", planned_trials=2, steps_per_epoch=1)
    config = {"budget": 1.0, "depth": "fc8", "lr": 0.01, "seed": 0}
    done = SimpleNamespace(trial_id="a", config=config, status="TERMINATED", last_result={"training_iteration": 2})
    live = SimpleNamespace(trial_id="b", config=config, status="RUNNING", last_result={})
    view.on_experiment_end([done, live])
    assert view.trials["a"].status == "stopped early" and view.trials["b"].status == "running"
    assert "| trials 1/2 | steps 2/6 |" in view.render()
