"""Which checkpoints a run keeps (issue 27): ``tunedepth.hpo.runner`` and ``tunedepth.hpo.evaluate``'s docstring say
the same thing, and what is kept is enough for the test evaluation: the latest two by recency (a resume's snapshot
always names one), each carrying the best validation epoch's weights so far. No Ray run."""
from types import SimpleNamespace

import pandas as pd

import tunedepth.hpo.evaluate as evaluate
from tunedepth.config import SearchConfig
from tunedepth.hpo.runner import make_run_config


def test_the_runner_keeps_the_latest_two_as_the_evaluation_docstring_says(tmp_path):
    cfg = SearchConfig(name="k", results_dir=str(tmp_path))
    kept = make_run_config(cfg, None, tmp_path / "k", []).checkpoint_config
    assert kept.num_to_keep == 2 and kept.checkpoint_score_attribute is None  # by recency, not by score
    assert "keeps each trial's latest 2 checkpoints" in evaluate.__doc__
    assert "carries the weights of the trial's best validation" in evaluate.__doc__


def test_the_latest_two_offer_the_best_validation_epoch():
    """Epoch 2 was best; Tune kept only epochs 4 and 5, whose checkpoints both carry epoch 2's weights."""
    later = [("ckpt-4", {"epoch": 4, "val_metric": 0.70, "best_epoch": 2, "best_val_metric": 0.90}),
             ("ckpt-5", {"epoch": 5, "val_metric": 0.72, "best_epoch": 2, "best_val_metric": 0.90})]
    grid = [SimpleNamespace(metrics_dataframe=pd.DataFrame({"trial_id": ["t"], "epoch": [5]}), best_checkpoints=later)]
    chosen = evaluate.choose_checkpoint(evaluate.kept_checkpoints(grid)["t"], 2, "max")
    assert chosen.epoch == 2 and chosen.val_metric == 0.90 and chosen.checkpoint in ("ckpt-4", "ckpt-5")
