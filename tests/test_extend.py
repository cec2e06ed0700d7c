"""``tunedepth extend RUN --epochs N``: on a real local Ray, a tiny search whose trials hit a cap of 2 epochs,
extended to 4; on simulated run folders (no Ray), the refusals and a run with no capped trial."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tunedepth.analysis.build import build_report
from tunedepth.analysis.simulate import simulate_run
from tunedepth.apps import get_app
from tunedepth.cli.main import main
from tunedepth.config import build_config
from tunedepth.errors import ConfigError
from tunedepth.hpo.runner import run_search
from tunedepth.run_files import EXTENSIONS_FILE, trial_checkpoint_files, write_parquet
from tunedepth.settings import TrialConfig
from tunedepth.training.trial import TrialRun

# fc8 on random features and scratch, 2 lrs x 1 seed per (budget, depth); per-depth halving prunes one lr of
# each depth after epoch 1, the other runs to the cap (patience off: no plateau ends it)
TINY = dict(smoke=True, backbone="tiny-alexnet", source="scratch", depths=["fc8", "scratch"], budgets=[0.5, 1.0],
            epochs=2, patience_steps=0, batch_size=16, prune_z=0.0,
            prune_growth=0.0)  # z 0, growth 0: any lr behind the best is dropped, climbing or not


def tiny_run(tmp_path, name: str, **changes):
    cfg = build_config({**TINY, "name": name, "results_dir": str(tmp_path), **changes})
    out = run_search(cfg, log=lambda s: None)
    assert not out.errors
    return tmp_path / name


def files(run_dir):
    return {name: (run_dir / name).read_bytes() for name in ("trials.parquet", "predictions.parquet",
                                                             "summary.parquet", "report.md", "config.yaml")}


def test_a_checkpoint_continues_under_a_higher_cap_as_if_it_had_been_the_cap():
    data = get_app("colonoscopy-frames").build_data(120, 64, 0)
    base = dict(backbone="tiny-alexnet", source="scratch", depth="scratch", budget=1.0, lr=1e-3, epochs=1,
                batch_size=16, patience_steps=0)
    straight = TrialRun(TrialConfig.from_dict({**base, "epochs": 3}), data, {})
    expected = [straight.step()["val_metric"] for _ in range(2)]
    short = TrialRun(TrialConfig.from_dict(base), data, {})
    short.step()
    state = short.state_dict()  # (the global torch RNG is part of it: taken right after the step)
    assert short.finished
    longer = TrialRun(TrialConfig.from_dict({**base, "epochs": 3}), data, {})
    longer.load_state_dict(state)  # only the cap differs: accepted
    assert longer.epoch == 1 and not longer.finished
    assert longer.step()["val_metric"] == expected[1]  # as if trained to 3 from the start ("paper" ignores the cap)
    with pytest.raises(ConfigError, match="different config"):  # any other difference is still refused
        TrialRun(TrialConfig.from_dict({**base, "epochs": 3, "lr": 2e-3}), data, {}).load_state_dict(state)


@pytest.mark.slow
def test_extend_continues_only_the_capped_trials(ray_local, tmp_path, capsys):
    run_dir = tiny_run(tmp_path, "ext")
    before = pd.read_parquet(run_dir / "trials.parquet")
    last = before.groupby("trial_id").agg(epoch=("epoch", "max"), status=("status", "first"))
    capped = sorted(last.index[(last.status == "ok") & (last.epoch == 2)])
    others = sorted(set(last.index) - set(capped))
    assert len(capped) == 4 and len(others) == 4  # one lr per (budget, depth) ran to the cap, one was pruned
    report_before = (run_dir / "report.md").stat().st_mtime_ns
    capsys.readouterr()

    assert main(["extend", "ext", "--epochs", "4", "--results-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "continuing 4 capped trial(s)" in printed and printed.count(": 2 -> 4 epochs (trial ") == 4
    assert "best tuning depth per data budget" in printed and "report:" in printed

    after = pd.read_parquet(run_dir / "trials.parquet")
    assert set(after["trial_id"]) == set(before["trial_id"])  # the same trial ids, no new ones
    for tid in capped:
        rows = after[after.trial_id == tid]
        assert rows["epoch"].tolist() == [1, 2, 3, 4]  # the new epochs appended after the old ones
        old = before[before.trial_id == tid].set_index("epoch")["val_metric"]
        assert rows.set_index("epoch")["val_metric"].loc[[1, 2]].tolist() == old.tolist()
        assert set(rows["status"]) == {"ok"}  # capped again, now at 4
        assert rows["time_s"].is_monotonic_increasing  # the trial's clock went on from its checkpoint
    pd.testing.assert_frame_equal(after[after.trial_id.isin(others)].reset_index(drop=True),
                                  before[before.trial_id.isin(others)].reset_index(drop=True))

    assert yaml.safe_load((run_dir / "config.yaml").read_text())["epochs"] == 4
    assert (run_dir / "report.md").stat().st_mtime_ns > report_before
    assert "up to 4 epochs per trial" in (run_dir / "report.md").read_text()
    summary = pd.read_parquet(run_dir / "summary.parquet")
    assert summary["epochs_run"].max() == 4
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    assert set(preds["trial_id"]) <= set(after["trial_id"])
    logged = [json.loads(line) for line in (run_dir / "epochs.jsonl").read_text().splitlines()]
    assert len(logged) == len(after)  # epochs.jsonl kept growing, under the original ids
    assert {r["trial_id"] for r in logged if r["epoch"] > 2} == set(capped)

    extensions = json.loads((run_dir / EXTENSIONS_FILE).read_text())["extensions"]
    assert [(e["from_epochs"], e["to_epochs"]) for e in extensions] == [(2, 4)]
    assert sorted(extensions[0]["trials"]) == capped
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    where, ckpts = trial_checkpoint_files(run_dir, config, capped[0], "trial.pt")
    assert where == extensions[0]["experiment_path"] and ckpts
    # export takes an extended trial's weights from the extension: they reproduce the re-evaluated predictions
    scratch = summary[(summary.budget == 1.0) & (summary.depth == "scratch")].iloc[0]
    assert scratch.trial_id in capped and scratch.epochs_run == 4
    assert main(["export", "ext", "--budget", "1.0", "--depth", "scratch", "--results-dir", str(tmp_path)]) == 0
    assert "reproduces the run's stored test probabilities" in capsys.readouterr().out

    # the cap must rise: one line, exit 2, nothing changes
    saved = files(run_dir)
    assert main(["extend", str(run_dir), "--epochs", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not raise the run's cap of 4" in err
    assert files(run_dir) == saved


@pytest.mark.slow
def test_a_failed_extension_changes_nothing(ray_local, tmp_path, capsys):
    run_dir = tiny_run(tmp_path, "fail", depths=["scratch"], budgets=[1.0])
    trials = pd.read_parquet(run_dir / "trials.parquet")
    capped = trials.loc[(trials.status == "ok") & (trials.epoch == 2), "trial_id"].tolist()
    assert len(capped) == 1
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    _, ckpts = trial_checkpoint_files(run_dir, config, capped[0], "trial.pt")
    for ckpt in ckpts:  # the trial's checkpoints become unreadable: its continuation errors (after Tune's retry)
        ckpt.rename(ckpt.with_suffix(".gone"))
    saved = files(run_dir)
    capsys.readouterr()
    assert main(["extend", "fail", "--epochs", "3", "--results-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"failed: trial {capped[0]}" in out and "nothing of fail changed" in out
    assert files(run_dir) == saved and not (run_dir / EXTENSIONS_FILE).exists()


def simulated(tmp_path, name: str, statuses: list[str]):
    """A finished run folder without Ray or training (tunedepth.analysis.simulate), its trials ending as given."""
    run_dir = simulate_run(tmp_path / name, n_budgets=2, n_test=40, n_val=40)
    trials = pd.read_parquet(run_dir / "trials.parquet")
    trials["status"] = [statuses[i % len(statuses)] for i in range(len(trials))]
    write_parquet(trials, run_dir / "trials.parquet")
    build_report(run_dir, n_boot=20, plots=False, log=lambda s: None)
    return run_dir


def test_a_run_without_capped_trials_is_left_alone(tmp_path, capsys):
    run_dir = simulated(tmp_path, "flat", ["early-stopped", "stopped", "diverged"])
    saved = files(run_dir)
    assert main(["extend", "flat", "--epochs", "3", "--results-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1 and "nothing to extend" in captured.out and not captured.err
    assert files(run_dir) == saved and not (run_dir / EXTENSIONS_FILE).exists()
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(["config.yaml", "trials.parquet", "predictions.parquet",
                                                                "summary.parquet", "report.md"])


def test_the_cap_must_rise_and_the_run_be_finished(tmp_path, capsys):
    run_dir = simulated(tmp_path, "capped", ["ok"])  # every trial ran to the cap of 1
    saved = files(run_dir)
    for epochs in ("1", "0"):
        assert main(["extend", "capped", "--epochs", epochs, "--results-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "does not raise the run's cap of 1" in err and "--epochs 2" in err
    assert files(run_dir) == saved

    (run_dir / "summary.parquet").unlink()  # an interrupted run has no answer yet
    assert main(["extend", str(run_dir), "--epochs", "4"]) == 2
    assert "is not finished" in capsys.readouterr().err
