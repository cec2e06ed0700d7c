"""The Python API: ``import tunedepth``; ``tunedepth.search`` runs a real (tiny) search on a local Ray and
returns the answer per budget; ``tunedepth.load`` reads the same Result back from the folder without Ray."""
from __future__ import annotations

import pandas as pd
import pytest

import tunedepth
from tunedepth import ConfigError

TINY = dict(smoke=True, backbone="tiny-alexnet", source="scratch", depths=["fc8", "scratch"], budgets=[0.5, 1.0],
            epochs=1, samples=1, seeds=[0])


@pytest.mark.slow
def test_a_scripted_search_returns_the_answer_per_budget(ray_local, tmp_path):
    result = tunedepth.search({"name": "api", "results_dir": str(tmp_path)}, **TINY, log=lambda s: None)
    assert result.path == tmp_path / "api" and result.report == tmp_path / "api" / "report.md"
    assert list(result.answer["budget"]) == [0.5, 1.0] and set(result.answer["best_depth"]) <= {"fc8", "scratch"}
    assert result.answer["test_metric"].between(0, 1).all() and result.metric == "auc"
    assert (result.answer["test_metric_low"] <= result.answer["test_metric"]).all()
    assert len(result.summary) == 4 and set(result.summary["depth"]) == {"fc8", "scratch"}  # budget x depth
    assert result.trials.groupby("budget")["trial_id"].nunique().to_dict() == {0.5: 2, 1.0: 2}
    assert result.plots and all(p.exists() and p.suffix == ".png" for p in result.plots)
    assert not result.errors and result.config["epochs"] == 1  # the smoke size, with the keys given kept

    again = tunedepth.load("api", results_dir=tmp_path)  # files only: the same answer
    pd.testing.assert_frame_equal(again.answer, result.answer)
    assert again.plots == result.plots and again.outcome is None


def test_bad_settings_fail_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key"):
        tunedepth.search(name="x", results_dir=str(tmp_path), bogus=1)
    with pytest.raises(ConfigError, match="unknown depth"):
        tunedepth.search(tunedepth.SearchConfig(name="x", results_dir=str(tmp_path)), depths=["nope"])
    with pytest.raises(ConfigError, match="SearchConfig or a dict"):
        tunedepth.search(["app"])
    with pytest.raises(ConfigError, match="no run"):
        tunedepth.load(tmp_path / "ghost")
    assert list(tmp_path.iterdir()) == []
