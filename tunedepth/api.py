"""``search`` and ``load``: one ``Result`` per run, built from its folder (``tunedepth.run_files`` owns the files)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from tunedepth.analysis.answers import answer_frame, run_answers
from tunedepth.analysis.selecting import validation_table
from tunedepth.config import SearchConfig, build_config
from tunedepth.errors import ConfigError
from tunedepth.run_files import (
    REPORT_FILE,
    RESULTS_DIR,
    SUMMARY_FILE,
    TRIALS_FILE,
    read_config,
    read_parquet,
    resolve_run,
)


@dataclass
class Result:
    """A run, as its files hold it (``tunedepth.load`` reads it back; ``tunedepth.search`` returns it).

    Attributes:
        path: the run folder, ``<results_dir>/<name>``.
        config: config.yaml as a dict (the resolved settings of the run, with its app's metric and mode).
        answer: one row per data budget, one per ``tunedepth.analysis.answers.BudgetAnswer``: ``best_depth`` (the
            depth chosen by validation), ``val_metric``, ``test_metric`` with ``test_metric_low`` /
            ``test_metric_high`` (the interval), ``n_seeds``, ``equivalent_depths`` (indistinguishable from it on
            test). A run not scored on test (interrupted) has the per-budget leader by validation instead.
        summary: one row per budget x depth with its verdict against the choice (summary.parquet).
        trials: every reported epoch of every trial (trials.parquet).
        plots: the report's figures (``plots/*.png``).
        report: report.md, or None when the run has none yet.
        errors: trials that ended in error (a search's own Result only).
        outcome: the runner's ``Outcome`` of the search that made it (a search's own Result only).
    """

    path: Path
    config: dict
    answer: pd.DataFrame
    summary: pd.DataFrame
    trials: pd.DataFrame
    plots: list[Path]
    report: Path | None
    errors: list[str] = field(default_factory=list)  # trials that ended in error (a search's own Result only)
    outcome: Any = field(default=None, repr=False)  # tunedepth.hpo.runner.Outcome of the search that made it, if any

    @property
    def metric(self) -> str:
        return str(self.config.get("metric", ""))

    def __str__(self) -> str:
        return f"tunedepth run {self.path} ({self.metric})\n{self.answer.to_string(index=False)}"


def load(run: str | Path, results_dir: str | Path = RESULTS_DIR) -> Result:
    """The Result of an existing run. Reads files only: needs neither Ray nor the training code.

    Args:
        run: a run folder, or a run name under ``results_dir``.
        results_dir: where run names are looked up (the ``--results-dir`` of the run).

    Raises:
        ConfigError: no run there (the message names the folder and how to list the runs).
    """
    path = resolve_run(str(run), str(results_dir))
    config = read_config(path)
    trials = read_parquet(path / TRIALS_FILE)
    summary = read_parquet(path / SUMMARY_FILE) if (path / SUMMARY_FILE).exists() else pd.DataFrame()
    plots = sorted((path / "plots").glob("*.png"))
    report = path / REPORT_FILE if (path / REPORT_FILE).exists() else None
    answers = run_answers(config, summary, trials)
    if answers:
        answer = answer_frame(answers)
    else:  # nothing scored on test (an interrupted run): the per-budget leader by validation, not an answer yet
        answer = validation_table(trials, config.get("mode", "max")).rename(columns={"best_val": "val_metric"})
    return Result(path, config, answer, summary, trials, plots, report)


def search(config: SearchConfig | Mapping[str, Any] | None = None, /, *, log: Callable[[str], None] = print,
           **settings: Any) -> Result:
    """Run a depth x budget search (what ``tunedepth run`` does) and return its Result.

    Args:
        config: a ``SearchConfig``, or a dict of its keys (as in a ``--config`` YAML file); None: the defaults.
        log: where progress lines go (``print``; pass ``lambda s: None`` for silence).
        **settings: more ``SearchConfig`` keys, overriding ``config`` (``smoke=True`` sizes it like
            ``run --smoke``; ``name``, ``results_dir``, ``app``, ``budgets``, ``depths``, ...).

    Raises:
        ConfigError: a bad setting, before anything is built or written (one line naming it and the fix).
    """
    cfg = as_config(config, settings)
    from tunedepth.hpo.runner import run_search

    outcome = run_search(cfg, log=log)
    result = load(outcome.run_dir)  # no trial reported: an empty answer, the errors in result.errors
    result.errors, result.outcome = list(outcome.errors), outcome
    return result


def as_config(config: SearchConfig | Mapping[str, Any] | None, settings: Mapping[str, Any]) -> SearchConfig:
    if isinstance(config, SearchConfig):
        if not settings:
            return config
        config = {k: v for k, v in config.to_dict().items()}
    elif config is not None and not isinstance(config, Mapping):
        raise ConfigError(f"tunedepth.search takes a SearchConfig or a dict of its keys, got {type(config).__name__}")
    return build_config({**(config or {}), **settings})
