"""The answer: per budget, one ``BudgetAnswer`` (the depth chosen by validation, how each other depth compares
with it, scratch against the best fine-tuned depth). It is the one answer type: the report, the printed table
and ``tunedepth.Result.answer`` (``answer_frame``: one row per ``BudgetAnswer``) are all made from it.
``Analysis`` holds everything a report is written from."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tunedepth.analysis.selecting import best_by_validation
from tunedepth.metrics.mode import Mode
from tunedepth.space import SCRATCH


@dataclass
class BudgetAnswer:
    budget: float
    n_train: int
    best_depth: str  # by validation: the recommendation
    best: tuple[float, float, float]  # test metric, CI low, CI high
    verdicts: dict[str, str]  # other depth -> better | worse | equivalent | inconclusive (vs the best)
    best_finetune: str | None
    scratch_vs_finetune: tuple[float, float, float] | None  # metric(scratch) - metric(best fine-tune), interval
    scratch_verdict: str  # "fine-tuning better" | "scratch better" | "equivalent" | "inconclusive" | "n/a"
    not_trained: list[str] = field(default_factory=list)  # planned depths with no reported result: never judged
    val_metric: float = float("nan")  # the chosen cell's validation metric (what chose it)
    n_seeds: int = 0  # seeds the chosen cell was trained with
    tied: list[str] = field(default_factory=list)  # depths indistinguishable from the choice on test (sorted)

    def having(self, *words: str) -> list[str]:
        return [d for d, v in self.verdicts.items() if v in words]

    @property
    def better_on_test(self) -> list[str]:
        """Depths significantly better on test than the validation choice (a warning, never the answer)."""
        return self.having("better")


@dataclass
class Analysis:
    run_dir: Path
    config: dict
    app: object
    summary: pd.DataFrame
    trials: pd.DataFrame
    answers: list[BudgetAnswer]
    guideline: list[str]
    notes: list[str]
    n_boot: int
    seed: int
    level: float
    margin: float
    boot: dict = field(default_factory=dict)
    test_labels: np.ndarray | None = None
    unit: str = "sample"  # the bootstrap's resampling unit
    warnings: list[str] = field(default_factory=list)
    plots: list[tuple[str, str]] = field(default_factory=list)  # (title, path relative to run_dir)
    # why the depths other than scratch train on random features, not fine-tune ("" = they fine-tune):
    # source scratch, or a source no better than random by its linear probe (tunedepth.analysis.source_check)
    random_features: str = ""

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.run_dir.name))

    @property
    def metric(self) -> str:
        return self.app.metric

    @property
    def mode(self) -> str:
        return self.app.mode


def _scratch_answer(g: pd.DataFrame, best: pd.Series, mode) -> tuple[str | None, tuple | None, str]:
    """The best fine-tuned depth by validation, and scratch - it with the verdict of their comparison."""
    finetuned = g[g["depth"] != SCRATCH]
    scratch = g[g["depth"] == SCRATCH]
    if finetuned.empty:
        return None, None, "n/a"
    ft = best_by_validation(finetuned, mode).iloc[0]
    if scratch.empty or not np.isfinite(ft["delta_vs_scratch"]):
        return str(ft["depth"]), None, "n/a"
    delta = (-ft["delta_vs_scratch"], -ft["delta_vs_scratch_high"], -ft["delta_vs_scratch_low"])
    # the two are compared in the best depth's family: scratch vs best, or the best fine-tune vs scratch (best)
    other = scratch.iloc[0] if best["depth"] != SCRATCH else ft
    v = str(other["verdict"])
    if v in ("better", "worse", "lower bound"):
        scratch_wins = Mode.of(mode).gain(delta[0]) > 0
        loser = ft if scratch_wins else scratch.iloc[0]
        if int(loser.get("capped", 0) or 0) > 0:  # the losing side was capped: its score is a lower bound
            v = f"{'fine-tune' if scratch_wins else 'scratch'} capped (lower bound)"
        else:
            v = "scratch better" if scratch_wins else "fine-tuning better"
    elif v not in ("equivalent", "inconclusive"):
        v = "n/a"
    return str(ft["depth"]), delta, v


def as_random_features(answers: list[BudgetAnswer]) -> list[BudgetAnswer]:
    """The answers with their scratch verdicts worded for a run whose non-scratch depths train on random features
    (never called fine-tuning)."""
    for a in answers:
        a.scratch_verdict = (a.scratch_verdict.replace("fine-tuning better", "random features better")
                             .replace("fine-tune capped", "random features capped"))
    return answers


def planned_depths(config: dict, trials: pd.DataFrame) -> list[str]:
    """The depths the search meant to try at every budget: config.yaml's resolved ``depths``, else every depth
    that reported at some budget (shallow to deep)."""
    if config.get("depths"):
        return [str(d) for d in config["depths"]]
    if trials.empty:
        return []
    return [str(d) for d in trials.sort_values("depth_index")["depth"].drop_duplicates()]


def not_trained(summary: pd.DataFrame, planned: list[str], budget: float) -> list[str]:
    """Planned depths without a result at ``budget`` (no trial drawn, or none reported an epoch)."""
    seen = set(summary.loc[summary["budget"] == budget, "depth"].astype(str)) if len(summary) else set()
    return [d for d in planned if d not in seen]


DIVERGED_EVERYWHERE = "diverged at every lr: lower the lr range"


def diverged_cells(trials: pd.DataFrame, budget: float) -> list[str]:
    """Depths at ``budget`` whose every trial (every lr, schedule and seed) diverged, shallow to deep."""
    if trials is None or trials.empty or "status" not in trials:
        return []
    t = trials[trials["budget"] == budget]
    if t.empty:
        return []
    last = t.groupby("trial_id").agg(depth=("depth", "first"), depth_index=("depth_index", "first"),
                                     status=("status", "last"))
    gone = last.groupby("depth").agg(all_gone=("status", lambda s: bool((s == "diverged").all())),
                                     order=("depth_index", "first"))
    return [str(d) for d in gone[gone["all_gone"]].sort_values("order").index]


def budget_answers(summary: pd.DataFrame, mode, planned: list[str] = ()) -> list[BudgetAnswer]:
    """Per budget with a result: the choice, the verdicts of the other *trained* depths, and the planned depths
    that were never trained there (named, not judged)."""
    answers = []
    for budget, g in summary.groupby("budget"):
        if not g["is_best"].any():
            continue
        best = g[g["is_best"]].iloc[0]
        verdicts = {str(r.depth): str(r.verdict) for r in g[~g["is_best"]].itertuples(index=False)}
        best_ft, delta, sv = _scratch_answer(g, best, mode)
        answers.append(BudgetAnswer(
            budget=float(budget), n_train=int(best["n_train"]), best_depth=str(best["depth"]),
            best=(float(best["test_metric"]), float(best["test_metric_low"]), float(best["test_metric_high"])),
            verdicts=verdicts, best_finetune=best_ft, scratch_vs_finetune=delta, scratch_verdict=sv,
            not_trained=not_trained(summary, list(planned), budget), val_metric=float(best["val_metric"]),
            n_seeds=int(best["n_seeds"]), tied=tied_with_best(g)))
    return answers


def tied_with_best(g: pd.DataFrame) -> list[str]:
    """Of one budget's summary rows, the depths indistinguishable from the choice on test, sorted."""
    if "indistinguishable_from_best" not in g:
        return []
    return sorted(map(str, g[g["indistinguishable_from_best"].astype(bool) & ~g["is_best"].astype(bool)]["depth"]))


ANSWER_COLUMNS = ("budget", "n_train", "best_depth", "val_metric", "test_metric", "test_metric_low",
                  "test_metric_high", "n_seeds", "equivalent_depths")


def answer_frame(answers: list[BudgetAnswer]) -> pd.DataFrame:
    """``tunedepth.Result.answer``: one row per budget's ``BudgetAnswer`` (``equivalent_depths``: its ``tied``)."""
    rows = [{"budget": a.budget, "n_train": a.n_train, "best_depth": a.best_depth, "val_metric": a.val_metric,
             "test_metric": a.best[0], "test_metric_low": a.best[1], "test_metric_high": a.best[2],
             "n_seeds": a.n_seeds, "equivalent_depths": list(a.tied)} for a in sorted(answers, key=lambda a: a.budget)]
    return pd.DataFrame(rows, columns=list(ANSWER_COLUMNS))


def run_answers(config: dict, summary: pd.DataFrame, trials: pd.DataFrame) -> list[BudgetAnswer]:
    """The answers of a run from its files (summary.parquet, trials.parquet, config.yaml): what ``analyse``
    computed when it wrote them. Empty when no cell was scored on test."""
    if summary.empty or "is_best" not in summary:
        return []
    return budget_answers(summary, config.get("mode", "max"), planned_depths(config, trials))
