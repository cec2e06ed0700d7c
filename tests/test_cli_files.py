"""The CLI's help (every flag: help, default, choices), the run folder's file modes, and `resume`/`status` of a
finished run (no Ray: these read and write files only)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import stat

import pandas as pd
import pytest

from tunedepth.cli.main import build_parser, main
from tunedepth.config import SearchConfig
from tunedepth.run_files import SUMMARY_FILE, TRIALS_FILE, finished_trials, write_config, write_parquet, write_text

_FIELDS = {f.name for f in dataclasses.fields(SearchConfig)}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_flag_of_every_subcommand_has_help_default_and_choices():
    subs = _subparsers()
    assert {"run", "resume", "status", "report", "compare", "demo", "depths", "apps", "backbones"} <= set(subs)
    for name, parser in subs.items():
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = "/".join(action.option_strings) or action.dest
            assert action.help, f"`{name}` {flag} has no help"
            shown = parser._get_formatter()._get_help_string(action) % vars(action)
            derived = name == "run" and action.dest in _FIELDS and action.nargs != 0  # default None, shown in text
            if action.option_strings and action.default is not None and action.default is not False or derived:
                assert "default" in shown, f"`{name}` {flag}: no default in {shown!r}"
            for choice in action.choices or ():
                assert str(choice) in shown, f"`{name}` {flag}: choice {choice!r} not in its help"
        assert "%(" not in text


def test_run_flags_show_the_search_config_defaults():
    run = _subparsers()["run"]
    fmt = run._get_formatter()
    helps = {a.dest: fmt._get_help_string(a) for a in run._actions}
    assert "(default: grid)" in helps["searcher"] and "choices: grid, random, optuna, guideline" in helps["searcher"]
    assert "(default: 0.05,0.1,0.25,0.5,1.0)" in helps["budgets"]
    assert (
        "efficientnet-lite0" in helps["backbone"]
        and "(default: empty)" in helps["backbone"]
        and "(default: empty)" in helps["address"]
    )
    assert all(run.get_default(f.name) is None for f in dataclasses.fields(SearchConfig) if f.name != "smoke")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_run_files_get_the_mode_open_would_give(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "x.parquet")
        write_text("# r\n", tmp_path / "report.md")
    finally:
        os.umask(old)
    for f in ("x.parquet", "report.md"):
        assert stat.S_IMODE((tmp_path / f).stat().st_mode) == mode, f
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "x.parquet"]  # no temp file left


def _finished_run(results, name="done", statuses=("ok", "ok")):
    run_dir = results / name
    cfg = SearchConfig(name=name, results_dir=str(results))
    write_config(cfg.to_dict(), run_dir)
    trials = pd.DataFrame({"trial_id": [f"t{i}" for i in range(len(statuses))], "budget": 1.0, "depth": "head",
                           "epoch": 1, "val_metric": 0.5, "status": list(statuses)})
    write_parquet(trials, run_dir / TRIALS_FILE)
    write_parquet(pd.DataFrame({"budget": [1.0], "depth": ["head"]}), run_dir / SUMMARY_FILE)
    return run_dir


def test_resume_of_a_finished_run_says_so_in_one_line(tmp_path, capsys):
    _finished_run(tmp_path)
    assert main(["resume", "done", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("done: finished (2 trials") and "nothing to resume" in lines[0]
    assert not out.err and "0/0" not in out.out
    assert main(["status", "done", "--results-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("done: finished")


def test_a_run_with_errored_trials_or_no_answer_is_not_finished(tmp_path):
    assert finished_trials(_finished_run(tmp_path, "err", ("ok", "error"))) is None  # resume reruns the error
    interrupted = _finished_run(tmp_path, "int")
    (interrupted / SUMMARY_FILE).unlink()  # an interrupt keeps trials.parquet but writes no answer
    assert finished_trials(interrupted) is None
    assert finished_trials(_finished_run(tmp_path, "ok")) == 2


def test_a_reader_that_goes_away_ends_the_listing_quietly():
    """`tunedepth backbones | head -1`: the pipe closes before the listing is written; no traceback, exit 141."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "tunedepth", "backbones"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first write
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err.decode()[-2000:]
    assert b"Traceback" not in err and b"Error" not in err, err.decode()[-2000:]
