"""The Optuna searcher's studies: one per budget in results/<name>/optuna.db, every depth enqueued once before TPE,
and a restore from Tune's searcher snapshot continuing the same studies without enqueueing a depth twice.

Driven through the searcher protocol Tune uses (suggest / on_trial_complete / save / restore); no training."""
import json
from collections import Counter

import optuna
from optuna.trial import TrialState

from tunedepth import jsonstate
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


def _study_id(cfg, budget):
    return optuna.storages.RDBStorage(optuna_url(run_dir_of(cfg))).get_study_id_from_name(study_name(budget))


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
    before = {b: (_study_id(cfg, b), len(s.get_trials())) for b, s in _studies(cfg).items()}

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
        assert _study_id(cfg, budget) == before[budget][0]  # the same study, grown
        assert len(study.get_trials()) == cfg.samples + (budget == lost["budget"]) > before[budget][1]
        assert _enqueued(study) == Counter(DEPTHS)  # every depth once among the live trials
        states = Counter(t.state for t in study.get_trials())
        pruned = budget == closed["budget"]
        assert states[TrialState.COMPLETE] == cfg.samples - pruned and states[TrialState.PRUNED] == pruned
        assert states[TrialState.RUNNING] == 0
        assert states[TrialState.FAIL] == (budget == lost["budget"])  # the lost trial, marked failed


def test_each_trial_is_told_as_it_ended(tmp_path):
    """Stopped at a rung before the cap: PRUNED, valued by the rung's result; at the cap, or on its own plateau
    before it: COMPLETE with its value; errored: FAIL."""
    cfg = _config(tmp_path, samples=4).replace(epochs=3)
    searcher = _searcher(cfg)
    ended = {"rung": {"val_metric": 0.61, "training_iteration": 1},
             "cap": {"val_metric": 0.72, "training_iteration": 3},
             "plateau": {"val_metric": 0.68, "training_iteration": 2, "early_stopped": True}}
    budget_of = {}
    for tid, last in [*ended.items(), ("error", None)]:
        budget_of[tid] = searcher.suggest(tid)["budget"]
        searcher.on_trial_result(tid, {"val_metric": 0.55, "training_iteration": 0})
        if last is None:
            searcher.on_trial_complete(tid, None, error=True)
        else:  # a stopped trial's last result reaches the searcher with its completion only, as in Tune
            searcher.on_trial_complete(tid, last)
    studies = _studies(cfg)
    told = {}
    for tid, b in budget_of.items():
        number = searcher.searchers[b].number[tid]
        told[tid] = next(t for t in studies[b].get_trials() if t.number == number)
    assert told["rung"].state == TrialState.PRUNED and told["rung"].value == 0.61
    assert told["rung"].intermediate_values == {0: 0.55, 1: 0.61}
    assert told["cap"].state == TrialState.COMPLETE and told["cap"].value == 0.72
    assert told["plateau"].state == TrialState.COMPLETE and told["plateau"].value == 0.68
    assert told["error"].state == TrialState.FAIL


def test_resume_from_the_json_state_continues_the_same_studies(tmp_path):
    """The snapshot is JSON holding Tune's trial ids and Optuna's trial numbers; a restore (in either order with
    Tune's start) continues each study's numbering and enqueues no depth twice."""
    for order in ("started-first", "restored-first"):
        cfg = _config(tmp_path / order)
        searcher = _searcher(cfg)
        configs = {f"a{i}": searcher.suggest(f"a{i}") for i in range(6)}
        for tid, config in configs.items():
            _finish(searcher, tid, config)
        snapshot = tmp_path / order / "searcher-state.json"
        searcher.save(str(snapshot))
        json.loads(snapshot.read_text())  # plain JSON: nothing to unpickle
        state = jsonstate.load(str(snapshot))
        assert set(state["searchers"]) == set(BUDGETS)
        numbers = {tid: n for s in state["searchers"].values() for tid, n in s["number"].items()}
        assert sorted(numbers) == sorted(configs) and sorted(numbers.values()) == [0, 0, 1, 1, 2, 2]

        run_dir_of(cfg).mkdir(parents=True, exist_ok=True)
        restored = make_plan(cfg, DEPTHS, {}, "val_metric", "max").search_alg.searcher
        if order == "started-first":  # as Tune does it
            restored.set_search_properties("val_metric", "max", {})
            restored.restore(str(snapshot))
        else:
            restored.restore(str(snapshot))
            restored.set_search_properties("val_metric", "max", {})
        i = 0
        while (config := restored.suggest(f"b{i}")) != "FINISHED":
            b = config["budget"]
            assert restored.searchers[b].number[f"b{i}"] >= 3  # numbering continues after the snapshot's trials
            _finish(restored, f"b{i}", config)
            i += 1
        assert i == len(BUDGETS) * cfg.samples - len(configs)
        for study in _studies(cfg).values():
            trials = study.get_trials()
            assert [t.number for t in trials] == list(range(cfg.samples))  # one study, grown: no gap, no restart
            assert _enqueued(study) == Counter(DEPTHS)  # each depth enqueued once over both sessions
            assert all(t.state == TrialState.COMPLETE for t in trials)


def test_a_reopened_study_does_not_replay_its_first_draws():
    from tunedepth.hpo.searchers.optuna_study import reseeded

    assert reseeded(7, 0) == 7  # a new study: the search seed's own TPE sequence
    assert len({reseeded(7, n) for n in (0, 3, 4)}) == 3 and reseeded(7, 3) == reseeded(7, 3)
