"""``--search-seed`` does what its help says for every searcher (issue 27): the same value proposes the same
trials, another value other ones; TPE's seed comes from the search seed and the budget, never the data seed.
Driven through the plans and the searcher protocol Tune uses; no Ray run, no training."""
from tunedepth.config import SearchConfig
from tunedepth.hpo.searchers import make_plan, make_space
from tunedepth.run_files import run_dir_of

DEPTHS = ["fc8", "fc7-fc8", "conv5-fc8", "scratch"]
BUDGETS = (0.1, 1.0)


def _cfg(tmp_path, searcher, search_seed, data_seed=0, name=None):
    scheduler = {"optuna": "asha", "guideline": "none"}.get(searcher, "auto")
    return SearchConfig(name=name or f"{searcher}-{search_seed}-{data_seed}", results_dir=str(tmp_path),
                        searcher=searcher, scheduler=scheduler, seeds=(0,), samples=8, budgets=BUDGETS, epochs=2,
                        grace_period=1, search_seed=search_seed, data_seed=data_seed)


def _tpe_proposals(cfg) -> list[tuple]:
    """Every trial a fresh Optuna plan proposes, each told a result that depends on its draw (so TPE adapts)."""
    run_dir_of(cfg).mkdir(parents=True, exist_ok=True)
    searcher = make_plan(cfg, DEPTHS, {}, "val_metric", "max").search_alg.searcher
    searcher.set_search_properties("val_metric", "max", {})
    out = []
    for i in range(cfg.samples * len(BUDGETS)):
        c = searcher.suggest(f"t{i}")
        value = 0.5 + 0.1 * DEPTHS.index(c["depth"]) - abs(c["lr"] - 1e-3)
        searcher.on_trial_result(f"t{i}", {"val_metric": value, "training_iteration": 2})
        searcher.on_trial_complete(f"t{i}", {"val_metric": value, "training_iteration": 2})
        out.append((c["budget"], c["depth"], round(c["lr"], 12)))
    return out


def test_tpe_proposals_follow_the_search_seed_not_the_data_seed(tmp_path):
    a, again = _tpe_proposals(_cfg(tmp_path, "optuna", 1)), _tpe_proposals(_cfg(tmp_path, "optuna", 1, name="again"))
    other = _tpe_proposals(_cfg(tmp_path, "optuna", 2))
    other_data = _tpe_proposals(_cfg(tmp_path, "optuna", 1, data_seed=5))
    assert a == again and a == other_data  # the data seed changes the data, not the proposals
    assert a != other
    per_budget = {b: [p[1:] for p in a if p[0] == b] for b in BUDGETS}
    assert per_budget[0.1] != per_budget[1.0]  # each budget's study draws its own sequence


def test_random_grid_and_guideline_follow_the_search_seed(tmp_path):
    def random(seed, data_seed=0):
        return make_space(_cfg(tmp_path, "random", seed, data_seed), DEPTHS).random_points()

    assert random(1) == random(1) == random(1, data_seed=5) and random(1) != random(2)
    lrs = {seed: make_space(_cfg(tmp_path, "grid", seed), DEPTHS).lrs("fc8") for seed in (0, 1, 2)}
    assert lrs[0] == sorted(lrs[0])  # the default (0): ascending, as the demo has always run
    assert sorted(lrs[1]) == sorted(lrs[0]) and len({tuple(v) for v in lrs.values()}) == 3
    for seed in (0, 3):  # the guideline launches a level's lrs in the grid's order
        plan = make_plan(_cfg(tmp_path, "guideline", seed), DEPTHS, {}, "val_metric", "max")
        asked = [plan.search_alg.suggest(f"t{i}") for i in range(40)]
        first = [c["lr"] for c in asked if c and c["depth"] == "fc8" and c["budget"] == 1.0]
        assert first == make_space(_cfg(tmp_path, "grid", seed), DEPTHS).lrs("fc8")
