"""Successive halving on a real local Ray: trials pause at rungs and only the top 1/eta go on."""
import sys

import pytest
import ray.cloudpickle
from ray import tune

from tunedepth.config import SearchConfig
from tunedepth.errors import ConfigError
from tunedepth.hpo.promotion import StratifiedHalving

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import a test module


def _synthetic(config):
    """Scores fixed by ``q`` (lower q is better), one report + checkpoint per epoch; resumes from its checkpoint."""
    import json
    import os
    import tempfile

    from ray import tune

    start = 0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            with open(os.path.join(d, "state.json")) as f:
                start = json.load(f)["epoch"]
    for epoch in range(start + 1, 9):
        score = config["budget"] - 0.01 * config["q"]
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"epoch": epoch}, f)
            tune.report({"val_metric": score, "epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(d))


@pytest.mark.timeout(300)
def test_only_the_top_third_of_each_rung_goes_on(ray_local, tmp_path):
    budgets, qs = [1.0, 0.5], list(range(9))
    sched = StratifiedHalving(stratify_by=("budget",), group_by=("q",), max_t=8, grace_period=1, reduction_factor=3)
    assert sched.milestones == [1, 3]
    tuner = tune.Tuner(
        tune.with_resources(_synthetic, {"cpu": 1}),
        param_space={"budget": tune.grid_search(budgets), "q": tune.grid_search(qs)},
        tune_config=tune.TuneConfig(metric="val_metric", mode="max", scheduler=sched, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="promo", verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )
    results = tuner.fit()
    assert not results.errors
    epochs = {(r.config["budget"], r.config["q"]): int(r.metrics["epoch"]) for r in results}
    for b in budgets:
        ran = {q: epochs[(b, q)] for q in qs}
        assert ran[0] == 8, ran  # the best trial of each budget is promoted all the way
        # successive halving spends 9 + 3*2 + 1*5 = 20 epochs per budget; the grid 72
        assert sum(ran.values()) <= 24, ran
        assert sorted(ran.values())[:6] == [1] * 6, ran  # two thirds stop after the first rung
    assert sum(sched.num_stopped().values()) >= 12


def test_promote_is_refused_with_an_adaptive_searcher():
    with pytest.raises(ConfigError, match="use --scheduler asha"):
        SearchConfig(scheduler="per-depth", searcher="optuna")
    with pytest.raises(ConfigError, match="use --scheduler none"):
        SearchConfig(scheduler="asha", searcher="guideline")
    assert SearchConfig(searcher="guideline").effective_scheduler == "none"
    with pytest.raises(ConfigError, match="scheduler must be one of"):
        SearchConfig(scheduler="hyperband")
