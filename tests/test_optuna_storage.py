"""The Optuna searcher's studies: one per budget in results/<name>/optuna.db, every depth enqueued once before TPE,
and a restore from Tune's searcher snapshot continuing the same studies without enqueueing a depth twice.

Driven through the searcher protocol Tune uses (suggest / on_trial_complete / save / restore); no training."""
from collections import Counter

import optuna
from optuna.trial import TrialState

from tunedepth.config import SearchConfig
from tunedepth.hpo.searchers import enqueued_depths, make_plan
from tunedepth.hpo.searchers.optuna_study import study_name
from tunedepth.run_files import OPTUNA_FILE, optuna_url, run_dir_of

DEPTHS = ["fc8", "fc7-fc8", "conv5-fc8", "conv1-fc8", "scratch"]
BUDGETS = (0.05, 1.0)


def _config(tmp_path, samples=7) -> SearchConfig:
    return SearchConfig(name="opt", results_dir=str(tmp_path), searcher="optuna", seeds=(0,), samples=samples,
                        budgets=BUDGETS, epochs=2, grace_period=1)


def _searcher(cfg):
    """The PerBudgetSearcher of a fresh plan, started as Tune starts it (in the run folder the runner made)."""
    run_dir_of(cfg).mkdir(parents=True, exist_ok=True)
    inner = make_plan(cfg, DEPTHS, {}, "val_metric", "max").search_alg.searcher
    inner.set_search_properties("val_metric", "max", {})
    return inner


def _finish(searcher, trial_id, config):
    value = 0.7 + 0.01 * DEPTHS.index(config["depth"])
    searcher.on_trial_result(trial_id, {"val_metric": value, "training_iteration": 2})
    searcher.on_trial_complete(trial_id, {"val_metric": value, "training_iteration": 2})


def _studies(cfg):
    return {b: optuna.load_study(study_name=study_name(b), storage=optuna_url(run_dir_of(cfg))) for b in BUDGETS}


def _enqueued(study):
    return Counter(t.system_attrs["fixed_params"]["depth"] for t in study.get_trials()
                   if "fixed_params" in t.system_attrs and t.state != TrialState.FAIL)


def test_a_refused_or_unstarted_plan_writes_no_database(tmp_path):
    make_plan(_config(tmp_path), DEPTHS, {}, "val_metric", "max")
    assert not (tmp_path / "opt").exists()


def test_one_stored_study_per_budget_every_depth_first(tmp_path):
    cfg = _config(tmp_path)
    searcher = _searcher(cfg)
    configs = {}
    for i in range(len(BUDGETS) * cfg.samples):
        configs[f"t{i}"] = searcher.suggest(f"t{i}")
        _finish(searcher, f"t{i}", configs[f"t{i}"])
    assert searcher.suggest("extra") == "FINISHED"
    assert (tmp_path / "opt" / OPTUNA_FILE).exists()
    for budget, study in _studies(cfg).items():  # optuna.load_study opens it, as optuna-dashboard does
        trials = study.get_trials()
        assert len(trials) == cfg.samples and all(t.state == TrialState.COMPLETE for t in trials)
        first = [t.params["depth"] for t in sorted(trials, key=lambda t: t.number)[:len(DEPTHS)]]
        assert sorted(first) == sorted(DEPTHS)  # each depth once, before TPE draws any
        assert _enqueued(study) == Counter(DEPTHS)
        assert {c["depth"] for c in configs.values() if c["budget"] == budget} == set(DEPTHS)


def test_fewer_trials_than_depths_enqueue_a_spread():
    assert enqueued_depths(DEPTHS, 9) == DEPTHS
    assert enqueued_depths(DEPTHS, 3) == ["fc8", "conv5-fc8", "scratch"]
    assert enqueued_depths(DEPTHS, 1) == ["fc8"]


def test_restore_continues_the_same_studies_without_enqueueing_a_depth_twice(tmp_path):
    cfg = _config(tmp_path)
    searcher = _searcher(cfg)
    for i in range(4):  # two trials per budget: both finish
        _finish(searcher, f"a{i}", searcher.suggest(f"a{i}"))
    running = searcher.suggest("running")  # still running at the snapshot: Tune resumes it
    closed = searcher.suggest("closed")  # running at the snapshot, pruned before the driver died
    snapshot = tmp_path / "searcher-state.pkl"
    searcher.save(str(snapshot))
    searcher.on_trial_result("closed", {"val_metric": 0.5, "training_iteration": 1})
    searcher.on_trial_complete("closed", {"val_metric": 0.5, "training_iteration": 1})  # pruned (1 < max_t 2)
    lost = searcher.suggest("lost")  # asked after the snapshot, then the driver died: Tune never knew it
    before = {b: (s._study_id, len(s.get_trials())) for b, s in _studies(cfg).items()}

    restored = _searcher(cfg)  # Tuner.restore: a fresh copy of the plan, started, then the snapshot restored
    restored.restore(str(snapshot))
    _finish(restored, "running", running)
    _finish(restored, "closed", closed)  # Tune reruns it from its checkpoint: the study keeps its first record
    i = 0
    while (config := restored.suggest(f"b{i}")) != "FINISHED":
        _finish(restored, f"b{i}", config)
        i += 1
    assert i == len(BUDGETS) * cfg.samples - 6  # the 6 trials Tune knew of are not proposed again

    studies = _studies(cfg)
    for budget, study in studies.items():
        assert study._study_id == before[budget][0]  # the same study, grown
        assert len(study.get_trials()) == cfg.samples + (budget == lost["budget"]) > before[budget][1]
        assert _enqueued(study) == Counter(DEPTHS)  # every depth once among the live trials
        states = Counter(t.state for t in study.get_trials())
        pruned = budget == closed["budget"]
        assert states[TrialState.COMPLETE] == cfg.samples - pruned and states[TrialState.PRUNED] == pruned
        assert states[TrialState.RUNNING] == 0
        assert states[TrialState.FAIL] == (budget == lost["budget"])  # the lost trial, marked failed
