"""One declaration of the trial settings: flags, YAML keys and the keys every trial shares derive from it."""
import argparse
import dataclasses

import pytest

from tunedepth.cli import run as run_cmd
from tunedepth.config import SearchConfig
from tunedepth.errors import ConfigError
from tunedepth.hpo.runner import fixed_trial_keys
from tunedepth.settings import TrialConfig, TrialSettings


def _parse(*argv):
    parser = argparse.ArgumentParser()
    run_cmd.register(parser.add_subparsers())
    return run_cmd.config_from_args(parser.parse_args(["run", *argv]))


def test_every_trial_setting_is_a_flag_a_search_key_and_reaches_every_trial():
    shared = {f.name for f in dataclasses.fields(TrialSettings)}
    assert shared <= {f.name for f in dataclasses.fields(SearchConfig)}
    assert shared <= {f.name for f in dataclasses.fields(TrialConfig)}
    flags = run_cmd.flags()
    assert {"--" + n.replace("_", "-") for n in shared} <= set(flags)
    assert all(f.metadata.get("help") for f in flags.values())  # every flag has help text
    cfg = _parse("--momentum", "0.8", "--epoch-steps", "20", "--patience-steps", "2", "--freeze-bn", "false",
                 "--budgets", "0.5,1.0", "--seeds", "3,4")
    assert (cfg.momentum, cfg.epoch_steps, cfg.patience_steps, cfg.freeze_bn) == (0.8, 20, 2, False)
    assert cfg.budgets == (0.5, 1.0) and cfg.seeds == (3, 4)
    keys = fixed_trial_keys(cfg)
    assert set(keys) == shared and keys["momentum"] == 0.8  # momentum no longer falls through
    TrialConfig.from_dict({**keys, "depth": "fc8", "budget": 0.5, "lr": 1e-3, "seed": 3})


def test_choices_come_from_the_declaration_and_bad_values_are_one_clear_error():
    with pytest.raises(SystemExit):  # argparse names the valid choices
        _parse("--optimizer", "lion")
    with pytest.raises(ConfigError, match="'momentum' must be float"):
        _parse("--momentum", "fast")
    with pytest.raises(ConfigError, match="unknown augment"):
        SearchConfig(augment="rotate")


def test_scheduler_auto_resolves_per_searcher():
    assert SearchConfig().effective_scheduler == "per-depth"
    assert SearchConfig(searcher="optuna", seeds=(0,)).effective_scheduler == "asha"
    assert SearchConfig(searcher="guideline").effective_scheduler == "none"
