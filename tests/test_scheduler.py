"""The budget-stratified ASHA, fed synthetic results (no training), as Ray's own scheduler tests do."""
import json
import pickle

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from tunedepth import jsonstate
from tunedepth.hpo.schedulers import BudgetStratifiedASHA

KW = dict(max_t=9, grace_period=1, reduction_factor=3)


def _trial(budget, depth):
    return Trial("__fake", config={"budget": budget, "depth": depth}, stub=True)


def _feed(sched, results):
    """results: list of (trial, iteration, score); returns {trial_id: last decision}."""
    decisions = {}
    for trial, it, score in results:
        decisions[trial.trial_id] = sched.on_trial_result(None, trial, {"training_iteration": it, "val_metric": score})
    return decisions


def _scenario():
    big = [_trial(1.0, d) for d in ("fc8", "fc7-fc8", "scratch")]
    small = [_trial(0.1, d) for d in ("fc8", "fc7-fc8", "scratch")]
    # the full-data trials report first and score far higher than any 10% trial ever can
    results = [(t, 1, s) for t, s in zip(big, (0.90, 0.91, 0.92))]
    results += [(small[0], 1, 0.70), (small[1], 1, 0.60), (small[2], 1, 0.55)]
    return big, small, results


def test_small_budget_trials_are_never_stopped_by_large_budget_trials():
    sched = BudgetStratifiedASHA(metric="val_metric", mode="max", **KW)
    big, small, results = _scenario()
    for t in big + small:
        sched.on_trial_add(None, t)
    decisions = _feed(sched, results)
    # the best 10% trial is first at its own rung: it continues although every 100% trial beats it
    assert decisions[small[0].trial_id] == TrialScheduler.CONTINUE
    # ASHA still works inside a budget: the 10% trials below the top third of their own rung stop
    assert decisions[small[1].trial_id] == TrialScheduler.STOP
    assert decisions[small[2].trial_id] == TrialScheduler.STOP
    assert sched.num_stopped() == {1.0: 0, 0.1: 2}  # full-data scores rise, so none of them stops


def test_plain_asha_would_stop_the_best_small_budget_trial():
    """The control: one shared set of rungs stops the best 10%-budget trial (this is what we prevent)."""
    sched = AsyncHyperBandScheduler(metric="val_metric", mode="max", **KW)
    big, small, results = _scenario()
    for t in big + small:
        sched.on_trial_add(None, t)
    assert _feed(sched, results)[small[0].trial_id] == TrialScheduler.STOP


def test_rungs_are_independent_at_later_milestones_too():
    sched = BudgetStratifiedASHA(metric="val_metric", mode="min", **KW)
    a = [_trial(0.25, f"d{i}") for i in range(3)]
    b = [_trial(0.5, f"d{i}") for i in range(3)]
    for t in a + b:
        sched.on_trial_add(None, t)
    # minimise: the 0.5-budget trials have much lower loss at every rung
    _feed(sched, [(t, 1, 0.1 * (i + 1)) for i, t in enumerate(b)])
    _feed(sched, [(t, 3, 0.1 * (i + 1)) for i, t in enumerate(b[:1])])
    d = _feed(sched, [(a[0], 1, 5.0), (a[0], 3, 4.0)])
    assert d[a[0].trial_id] == TrialScheduler.CONTINUE
    # completion and removal are routed to the right stratum and forget the trial
    sched.on_trial_complete(None, a[0], {"training_iteration": 3, "val_metric": 4.0})
    sched.on_trial_remove(None, a[1])
    assert a[0].trial_id not in sched._stratum_of and a[1].trial_id not in sched._stratum_of


def test_trial_without_budget_is_a_clear_error():
    sched = BudgetStratifiedASHA(metric="val_metric", mode="max", **KW)
    with pytest.raises(ValueError, match="put 'budget' in the search space"):
        sched.on_trial_add(None, Trial("__fake", config={"depth": "fc8"}, stub=True))


def test_save_and_restore_keep_the_rungs_as_json_not_pickle(tmp_path):
    sched = BudgetStratifiedASHA(metric="val_metric", mode="max", **KW)
    big, small, results = _scenario()
    for t in big + small:
        sched.on_trial_add(None, t)
    _feed(sched, results[:4])  # the full-data rung, and the first 10% trial at its own
    path = tmp_path / "scheduler.json"
    sched.save(str(path))
    raw = path.read_bytes()
    assert not raw.startswith(b"\x80")  # not a pickle (every protocol >= 2 starts so)
    state = json.loads(raw)  # plain JSON, nothing to unpickle
    assert "_strata" in state and sorted(p.name for p in tmp_path.iterdir()) == ["scheduler.json"]
    restored = BudgetStratifiedASHA(**KW)
    restored.restore(str(path))
    assert restored.get_state().keys() == sched.get_state().keys()
    assert jsonstate.encode(restored.get_state()) == jsonstate.encode(sched.get_state())
    # the restored rungs decide the rest exactly as the original goes on to
    assert _feed(restored, results[4:]) == _feed(sched, results[4:])
    assert restored.num_stopped() == sched.num_stopped() == {1.0: 0, 0.1: 2}
    # a trial added after the restore lands in its stratum's restored bracket and is judged against its rung
    late = _trial(0.1, "late")
    restored.on_trial_add(None, late)
    assert _feed(restored, [(late, 1, 0.50)])[late.trial_id] == TrialScheduler.STOP


def test_an_errored_trial_is_forgotten_by_its_strata_asha(tmp_path):
    sched = BudgetStratifiedASHA(metric="val_metric", mode="max", **KW)
    t = _trial(0.1, "fc8")
    sched.on_trial_add(None, t)
    assert t.trial_id in sched.get_state()["_strata"][0.1]["trial_bracket"]
    sched.on_trial_error(None, t)
    assert sched.get_state()["_strata"][0.1]["trial_bracket"] == {}


def test_a_pickled_state_is_refused_in_one_line(tmp_path):
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps({"_strata": {}}))
    with pytest.raises(ValueError, match="not JSON resume state"):
        BudgetStratifiedASHA(**KW).restore(str(path))
