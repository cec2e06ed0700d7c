"""``search`` and ``load``: one ``Result`` per run, built from its folder (``tunedepth.run_files`` owns the files)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from tunedepth.config import SearchConfig, build_config
from tunedepth.errors import ConfigError
from tunedepth.run_files import REPORT_FILE, SUMMARY_FILE, TRIALS_FILE, read_config, read_parquet, resolve_run

ANSWER_COLUMNS = ("budget", "n_train", "best_depth", "val_metric", "test_metric", "test_metric_low",
                  "test_metric_high", "n_seeds", "equivalent_depths")


@dataclass
class Result:
    """A run, as its files hold it. ``answer``: one row per data budget (the depth chosen by validation, its
    test metric with the interval, the depths indistinguishable from it); ``summary``: one row per budget x
    depth (summary.parquet); ``trials``: every reported epoch of every trial (trials.parquet)."""

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


def answer_frame(summary: pd.DataFrame, trials: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Per budget, the answer: from summary.parquet (scored on test), else from the validation curves alone."""
    if summary.empty or "is_best" not in summary:
        from tunedepth.analysis.selecting import best_depth_table

        table = best_depth_table(trials, mode) if len(trials) else pd.DataFrame(columns=["budget"])
        return table.rename(columns={"best_val": "val_metric"}).reset_index(drop=True)
    rows = []
    for budget, g in summary.groupby("budget", sort=True):
        best = g[g["is_best"].astype(bool)].iloc[0]
        same = g[g["indistinguishable_from_best"].astype(bool) & ~g["is_best"].astype(bool)]["depth"] \
            if "indistinguishable_from_best" in g else []
        rows.append({"budget": float(budget), "n_train": int(best["n_train"]), "best_depth": str(best["depth"]),
                     "val_metric": float(best["val_metric"]), "test_metric": float(best["test_metric"]),
                     "test_metric_low": float(best["test_metric_low"]),
                     "test_metric_high": float(best["test_metric_high"]), "n_seeds": int(best["n_seeds"]),
                     "equivalent_depths": sorted(map(str, same))})
    return pd.DataFrame(rows, columns=list(ANSWER_COLUMNS))


def load(run: str | Path, results_dir: str | Path = "results") -> Result:
    """The Result of an existing run: a run folder, or a run name under ``results_dir``. Reads files only."""
    path = resolve_run(str(run), str(results_dir))
    config = read_config(path)
    trials = read_parquet(path / TRIALS_FILE)
    summary = read_parquet(path / SUMMARY_FILE) if (path / SUMMARY_FILE).exists() else pd.DataFrame()
    plots = sorted((path / "plots").glob("*.png"))
    report = path / REPORT_FILE if (path / REPORT_FILE).exists() else None
    return Result(path, config, answer_frame(summary, trials, config.get("mode", "max")), summary, trials, plots,
                  report)


def search(config: SearchConfig | Mapping[str, Any] | None = None, /, *, log=print, **settings: Any) -> Result:
    """Run a search and return its Result. ``config``: a SearchConfig, or a dict of its keys (as in a --config
    YAML file); ``settings``: more keys, overriding it (``smoke=True`` sizes it like ``run --smoke``). The same
    call ``tunedepth run`` makes. A bad setting raises ``ConfigError`` before anything is built or written."""
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
