import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tunedepth.config import SearchConfig
from tunedepth.errors import ConfigError, MetricError
from tunedepth.metrics import compute_roc_auc
from tunedepth.settings import TrialConfig


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y * rng.random()
    s[:20] = s[20:40]  # ties
    assert compute_roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_roc_auc_on_one_class_names_the_problem():
    with pytest.raises(MetricError, match="needs both classes"):
        compute_roc_auc(np.ones(10), np.random.random(10))
    with pytest.raises(MetricError, match="NaN"):
        compute_roc_auc(np.array([0, 1]), np.array([np.nan, 1.0]))


def test_trial_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="unknown config key.*learning_rate.*known keys: amp, app"):
        TrialConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="budget must be in"):
        TrialConfig.from_dict({"budget": 0})
    with pytest.raises(ConfigError, match="'epochs' must be int"):
        TrialConfig.from_dict({"epochs": "many"})
    cfg = TrialConfig.from_dict({"budget": "0.5", "epochs": 3.0})
    assert cfg.budget == 0.5 and cfg.epochs == 3
    assert TrialConfig.from_dict(cfg.to_dict()) == cfg


def test_search_config_validates():
    with pytest.raises(ConfigError, match="unknown config key"):
        SearchConfig.from_dict({"budget": [0.1]})
    with pytest.raises(ConfigError, match=r"budgets .*must be a finite number > 0 and <= 1"):
        SearchConfig.from_dict({"budgets": [0.1, 2.0]})
    cfg = SearchConfig.from_dict({"budgets": [0.1, 1], "seeds": [0, 1]})
    assert cfg.budgets == (0.1, 1.0) and SearchConfig.from_dict(cfg.to_dict()) == cfg
