"""The answer of a run, rebuilt offline from its files: summary.parquet, report.md and plots.

Inputs (``results/<name>/``): ``config.yaml``, ``trials.parquet`` (validation curves) and
``predictions.parquet`` (test-split class probabilities of each budget x depth's selected checkpoint).
No retraining, no data rebuilding: ``tunedepth report NAME|PATH`` reruns exactly this module.

Steps: load -> select by validation -> score the test predictions (point metrics, bootstrap intervals,
paired tests against the best depth and against scratch) -> answer per budget -> guideline -> write.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from search.evaluate import evaluate_selected, read_predictions, write_predictions
from search.results import SUMMARY_COLUMNS, select_trials, write_parquet
from search.source_check import source_check_note
from search.stats import (DEFAULT_BOOTSTRAP, DEFAULT_LEVEL, Delta, bootstrap_values, make_resamples,
                          paired_delta, percentile_ci)
from trainables.apps import App, get_app
from trainables.config import ConfigError
from trainables.metrics import MetricError
from trainables.models import SCRATCH

Log = Callable[[str], None]
REQUIRED_FILES = ("config.yaml", "trials.parquet")


# ---------------------------------------------------------------------------------------------- load
@dataclass
class RunFiles:
    run_dir: Path
    config: dict
    trials: pd.DataFrame
    predictions: dict | None  # read_predictions(...) or None when the run has no test predictions


def resolve_run(name_or_path: str, results_dir: str = "results") -> Path:
    """A run folder given as a path, or as a name under ``results_dir``."""
    for candidate in (Path(name_or_path), Path(results_dir) / name_or_path):
        if candidate.is_dir() and (candidate / "trials.parquet").exists():
            return candidate.resolve()
    raise ConfigError(f"no run {name_or_path!r}: neither {name_or_path} nor {Path(results_dir) / name_or_path} "
                      f"holds a trials.parquet; give a run folder or a name under --results-dir")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise ConfigError(f"{path} is unreadable ({type(e).__name__}); rerun the search or restore the file") from None


def load_run(run_dir: Path) -> RunFiles:
    run_dir = Path(run_dir)
    for name in REQUIRED_FILES:
        if not (run_dir / name).exists():
            raise ConfigError(f"{run_dir / name} is missing; is {run_dir} a tunedepth run folder?")
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    except yaml.YAMLError:
        raise ConfigError(f"{run_dir / 'config.yaml'} is not valid YAML; restore it from the run") from None
    if not isinstance(config, dict) or "app" not in config:
        raise ConfigError(f"{run_dir / 'config.yaml'} has no 'app' key; restore it from the run")
    trials = _read_parquet(run_dir / "trials.parquet")
    predictions = None
    if (run_dir / "predictions.parquet").exists():
        _read_parquet(run_dir / "predictions.parquet")  # a clear error if the file is corrupt
        try:
            predictions = read_predictions(run_dir / "predictions.parquet")
        except ValueError as e:
            raise ConfigError(f"{e}; rerun the search to regenerate it") from None
    return RunFiles(run_dir, config, trials, predictions)


# ------------------------------------------------------------------------------------------- analyse
@dataclass
class BudgetAnswer:
    budget: float
    n_train: int
    best_depth: str
    best: tuple[float, float, float]  # test metric, CI low, CI high
    tied: list[str]  # depths not significantly different from the best
    better_on_test: list[str]  # depths significantly better on test than the validation choice
    best_finetune: str | None
    scratch_vs_finetune: Delta | None  # metric(scratch) - metric(best fine-tuned depth)
    verdict: str  # "fine-tuning better" | "scratch better" | "no significant difference" | "n/a"


@dataclass
class Analysis:
    run_dir: Path
    config: dict
    app: App
    summary: pd.DataFrame
    trials: pd.DataFrame
    answers: list[BudgetAnswer]
    guideline: list[str]
    notes: list[str]
    n_boot: int
    seed: int
    level: float
    boot: dict[tuple[float, str], np.ndarray] = field(default_factory=dict)
    test_labels: np.ndarray | None = None
    grouped: bool = False
    plots: list[tuple[str, str]] = field(default_factory=list)  # (title, path relative to run_dir)

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.run_dir.name))

    @property
    def metric(self) -> str:
        return self.app.metric

    @property
    def mode(self) -> str:
        return self.app.mode


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def _safe_name(metric: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in metric).strip("_")


def _point_metrics(app: App, cell: dict, notes: list[str], where: str) -> tuple[float, dict[str, float]]:
    try:
        values = app.all_metrics(cell["labels"], cell["probs"], cell["meta"])
    except MetricError as e:
        notes.append(f"{where}: test metric undefined ({e})")
        return float("nan"), {}
    primary = values.get(app.metric)
    if primary is None:
        primary = app.compute_metric(cell["labels"], cell["probs"], cell["meta"])
    return float(primary), {k: float(v) for k, v in values.items() if k != app.metric}


def _bootstrap_cell(app: App, cell: dict, resamples, point: float, notes: list[str], where: str) -> np.ndarray:
    batched = app.batched_metric
    if batched is not None and np.isfinite(point):
        ones = np.ones((1, cell["labels"].size))
        check_values = batched(cell["labels"], cell["probs"], cell["meta"], ones)
        check = float("nan") if check_values is None else float(np.asarray(check_values)[0])
        if check_values is None:  # the vectorised form does not apply to this data (e.g. more classes)
            batched = None
        elif not math.isclose(check, point, rel_tol=1e-9, abs_tol=1e-12):
            notes.append(f"{where}: the app's batched metric gives {check} but compute_metric {point}; "
                         "bootstrapped with compute_metric instead (fix the app's batched_metric)")
            batched = None
    return bootstrap_values(app.compute_metric, cell["labels"], cell["probs"], cell["meta"], resamples, batched)


@dataclass
class Scored:
    summary: pd.DataFrame  # summary.parquet's frame, one row per budget x depth
    boot: dict[tuple[float, str], np.ndarray]  # bootstrap values of the test metric per cell (same resamples)
    notes: list[str]
    labels: np.ndarray | None  # the test labels (None without predictions)
    grouped: bool  # resampled by meta["group"]


def summarise(files: RunFiles, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, level: float = DEFAULT_LEVEL) -> Scored:
    """Select by validation, score each cell's test predictions, compare depths within each budget."""
    app = get_app(files.config["app"])
    notes: list[str] = []
    selection = select_trials(files.trials, app.mode)
    preds = files.predictions or {}
    if files.predictions is None:
        notes.append("no predictions.parquet: test metrics are missing, the answer below is by validation only")

    labels = resamples = None
    grouped = False
    if preds:
        first = next(iter(preds.values()))
        labels = first["labels"]
        for key, cell in preds.items():
            if not np.array_equal(cell["labels"], labels) or not np.array_equal(cell["samples"], first["samples"]):
                raise ConfigError(f"predictions.parquet: cell {key} was evaluated on a different test split; "
                                  "rerun the search")
        grouped = "group" in first["meta"]
        resamples = make_resamples(labels, first["meta"].get("group"), n_boot=n_boot, seed=seed)

    rows, boot, extra_names = [], {}, []
    for sel in selection.itertuples(index=False):
        key = (float(sel.budget), str(sel.depth))
        where = f"{sel.depth} @ budget {sel.budget:g}"
        cell = preds.get(key)
        if cell is not None and str(cell["info"]["trial_id"]) != sel.trial_id:
            notes.append(f"{where}: predictions.parquet holds trial {cell['info']['trial_id']} but validation "
                         f"selects {sel.trial_id}; its test metric is left out (rerun the search to re-evaluate)")
            cell = None
        row = {
            "app": sel.app, "backbone": sel.backbone, "source": sel.source, "metric": app.metric, "mode": app.mode,
            "budget": float(sel.budget), "n_train": int(sel.n_train), "depth": sel.depth,
            "depth_index": int(sel.depth_index), "trial_id": sel.trial_id, "lr": float(sel.lr), "seed": int(sel.seed),
            "selected_epoch": int(sel.epoch), "evaluated_epoch": -1, "epochs_run": int(sel.epochs_run),
            "trials": int(sel.trials), "epochs_spent": int(sel.epochs_spent), "val_metric": float(sel.val_metric),
            "n_test": 0, "test_metric": np.nan, "test_metric_low": np.nan, "test_metric_high": np.nan,
        }
        if cell is None:
            if files.predictions is not None and key not in preds:
                notes.append(f"{where}: no test predictions (no checkpoint could be evaluated)")
        else:
            info = cell["info"]
            row["evaluated_epoch"] = int(info["evaluated_epoch"])
            if row["evaluated_epoch"] != row["selected_epoch"]:
                notes.append(f"{where}: best validation epoch {row['selected_epoch']} had no checkpoint left; "
                             f"epoch {row['evaluated_epoch']} was evaluated instead")
            row["n_test"] = int(cell["labels"].size)
            point, extras = _point_metrics(app, cell, notes, where)
            values = _bootstrap_cell(app, cell, resamples, point, notes, where)
            low, high = percentile_ci(values, level)
            row.update(test_metric=point, test_metric_low=low, test_metric_high=high)
            for name, v in extras.items():
                col = f"test_{_safe_name(name)}"
                row[col] = v
                if col not in extra_names:
                    extra_names.append(col)
            boot[key] = values
        rows.append(row)

    summary = pd.DataFrame(rows, columns=[c for c in SUMMARY_COLUMNS if c not in _DERIVED])
    for col in extra_names:
        summary[col] = [r.get(col, np.nan) for r in rows]
    summary = _add_comparisons(summary, boot, app.mode, level)
    ordered = list(SUMMARY_COLUMNS) + extra_names
    return Scored(summary[ordered], boot, notes, labels, grouped)


_DERIVED = ("is_best", "indistinguishable_from_best", "delta_vs_best", "delta_vs_best_low", "delta_vs_best_high",
            "delta_vs_scratch", "delta_vs_scratch_low", "delta_vs_scratch_high")


def _best_index(group: pd.DataFrame, mode: str) -> int | None:
    """Row label of the depth chosen by validation among the evaluated cells (shallower on ties)."""
    evaluated = group[np.isfinite(group["test_metric"])]
    pool = evaluated if len(evaluated) else group
    if pool.empty:
        return None
    ordered = pool.sort_values(["val_metric", "depth_index"], ascending=[mode == "min", True])
    return ordered.index[0]


def _add_comparisons(summary: pd.DataFrame, boot: dict, mode: str, level: float) -> pd.DataFrame:
    summary = summary.copy()
    for col in _DERIVED:
        summary[col] = False if col.startswith(("is_", "indist")) else np.nan
    for budget, group in summary.groupby("budget"):
        best = _best_index(group, mode)
        if best is None:
            continue
        summary.loc[best, "is_best"] = True
        scratch = group.index[group["depth"] == SCRATCH]
        for idx in group.index:
            key = (float(budget), str(summary.at[idx, "depth"]))
            refs = [("best", best)] + ([("scratch", scratch[0])] if len(scratch) else [])
            for label, ref in refs:
                ref_key = (float(budget), str(summary.at[ref, "depth"]))
                if key not in boot or ref_key not in boot:
                    continue
                d = paired_delta(summary.at[idx, "test_metric"], summary.at[ref, "test_metric"],
                                 boot[key], boot[ref_key], level)
                summary.loc[idx, [f"delta_vs_{label}", f"delta_vs_{label}_low", f"delta_vs_{label}_high"]] = \
                    [d.estimate, d.low, d.high]
                if label == "best":
                    summary.loc[idx, "indistinguishable_from_best"] = not d.significant()
    summary["is_best"] = summary["is_best"].astype(bool)
    summary["indistinguishable_from_best"] = summary["indistinguishable_from_best"].astype(bool)
    return summary.sort_values(["budget", "depth_index"], ignore_index=True)


def budget_answers(summary: pd.DataFrame, mode: str) -> list[BudgetAnswer]:
    answers = []
    for budget, g in summary.groupby("budget"):
        if not g["is_best"].any():
            continue
        best = g[g["is_best"]].iloc[0]
        others = g[~g["is_best"]]
        tied = others[others["indistinguishable_from_best"] & np.isfinite(others["delta_vs_best"])]
        significant = others[~others["indistinguishable_from_best"] & np.isfinite(others["delta_vs_best"])]
        better = significant[(significant["delta_vs_best"] > 0) if mode == "max" else (significant["delta_vs_best"] < 0)]
        finetuned = g[(g["depth"] != SCRATCH) & np.isfinite(g["test_metric"])]
        best_ft = None
        if len(finetuned):
            best_ft = finetuned.sort_values(["val_metric", "depth_index"], ascending=[mode == "min", True]).iloc[0]
        delta, verdict = None, "n/a"
        if best_ft is not None and np.isfinite(best_ft["delta_vs_scratch"]):
            # metric(scratch) - metric(best fine-tune) = -(delta_vs_scratch of the best fine-tune)
            delta = Delta(-best_ft["delta_vs_scratch"], -best_ft["delta_vs_scratch_high"],
                          -best_ft["delta_vs_scratch_low"])
            if not delta.significant():
                verdict = "no significant difference"
            else:
                verdict = "scratch better" if _better(delta.estimate, 0.0, mode) else "fine-tuning better"
        answers.append(BudgetAnswer(
            budget=float(budget), n_train=int(best["n_train"]), best_depth=str(best["depth"]),
            best=(float(best["test_metric"]), float(best["test_metric_low"]), float(best["test_metric_high"])),
            tied=list(tied["depth"]), better_on_test=list(better["depth"]),
            best_finetune=None if best_ft is None else str(best_ft["depth"]), scratch_vs_finetune=delta,
            verdict=verdict,
        ))
    return answers


# ------------------------------------------------------------------------------------------ guideline
def pct(budget: float) -> str:
    return f"{100 * budget:g}%"


def _span(chosen: list[float], budgets: list[float]) -> str:
    if chosen == budgets:
        return "at every budget" if len(budgets) > 1 else f"at the only budget ({pct(chosen[0])})"
    if len(chosen) == 1:
        return f"at budget {pct(chosen[0])}"
    i, j = budgets.index(chosen[0]), budgets.index(chosen[-1])
    if chosen != budgets[i : j + 1]:
        return "at budgets " + ", ".join(pct(b) for b in chosen)
    if i == 0:
        return f"at budgets ≤ {pct(chosen[-1])}"
    if j == len(budgets) - 1:
        return f"at budgets ≥ {pct(chosen[0])}"
    return f"at budgets {pct(chosen[0])}–{pct(chosen[-1])}"


def depth_phrase(good: list[str], tested: list[str], best: str | None = None) -> str:
    """Plain words for the fine-tuning depths tied with the best (``good``, best included; ``tested``: shallow->deep)."""
    if not good:
        return "train from scratch: every fine-tuning depth is significantly worse"
    pos = sorted(tested.index(d) for d in good)
    names = [tested[p] for p in pos]
    contiguous = pos == list(range(pos[0], pos[-1] + 1))
    if len(names) == len(tested) and len(tested) > 1:
        return f"any tuning depth works ({tested[0]} … {tested[-1]} are statistically tied)"
    if len(names) == 1:
        return f"tune {names[0]}"
    if not contiguous:
        if best in names:
            others = [n for n in names if n != best]
            return f"tune {best} ({', '.join(others)} {'is' if len(others) == 1 else 'are'} statistically tied with it)"
        return "tune one of " + ", ".join(names)
    if pos[-1] == len(tested) - 1:
        return f"tune {names[0]} or deeper"
    if pos[0] == 0:
        return f"tune {names[-1]} or shallower"
    return f"tune {names[0]} to {names[-1]}"


def _acceptable(summary: pd.DataFrame, budget: float) -> pd.DataFrame:
    """The best depth at ``budget`` and the depths statistically tied with it (evaluated cells only)."""
    g = summary[(summary["budget"] == budget) & np.isfinite(summary["test_metric"])]
    return g[g["is_best"] | g["indistinguishable_from_best"]]


def guideline(summary: pd.DataFrame, answers: list[BudgetAnswer], max_epochs: int | None = None) -> list[str]:
    """Plain-language rules computed from the table (each sentence states what the numbers show).

    ``max_epochs``: the run's epoch limit (to tell trials the scheduler stopped early); default the most
    epochs any selected trial ran.
    """
    answers = [a for a in answers if np.isfinite(a.best[0])]
    if not answers:
        return ["no test results: the best depth above is by validation only; a guideline needs test intervals "
                "(rerun the search to evaluate the selected checkpoints)"]
    budgets = [a.budget for a in answers]
    tested = (summary[summary["depth"] != SCRATCH].drop_duplicates("depth").sort_values("depth_index")["depth"].tolist())
    lines: list[str] = []

    by_budget = {a.budget: a for a in answers}
    phrases = {}
    for b in budgets:
        ok = _acceptable(summary, b)
        good = [d for d in ok["depth"] if d != SCRATCH]
        if by_budget[b].better_on_test:
            phrases[b] = (f"tune {' or '.join(by_budget[b].better_on_test)} (significantly better on test than "
                          f"the validation choice {by_budget[b].best_depth})")
        elif by_budget[b].best_depth == SCRATCH and good:
            phrases[b] = f"train from scratch (statistically tied: {', '.join(good)})"
        else:
            phrases[b] = depth_phrase(good, tested, by_budget[b].best_depth) if tested else "train from scratch"
    runs: list[tuple[str, list[float]]] = []
    for b in budgets:
        if runs and runs[-1][0] == phrases[b]:
            runs[-1][1].append(b)
        else:
            runs.append((phrases[b], [b]))
    for phrase, chosen in runs:
        lines.append(f"{_span(chosen, budgets).capitalize()}, {phrase}.")

    verdicts = {a.budget: a.verdict for a in answers}
    ft_better = [b for b in budgets if verdicts[b] == "fine-tuning better"]
    sc_better = [b for b in budgets if verdicts[b] == "scratch better"]
    tie = [b for b in budgets if verdicts[b] == "no significant difference"]
    if any(v != "n/a" for v in verdicts.values()):
        if not sc_better:
            s = "Scratch is never significantly better than the best fine-tuned depth"
            if ft_better == budgets:
                s += "; fine-tuning beats it significantly at every budget."
            elif ft_better:
                s += f"; fine-tuning beats it significantly {_span(ft_better, budgets)}"
                s += f" and is tied with it {_span(tie, budgets)}." if tie else "."
            else:
                s += ", nor significantly worse: the difference is not significant at any budget."
        else:
            s = f"Scratch beats the best fine-tuned depth significantly {_span(sc_better, budgets)}"
            s += f"; fine-tuning wins {_span(ft_better, budgets)}" if ft_better else ""
            s += f"; tied {_span(tie, budgets)}" if tie else ""
            s += "."
        lines.append(s)

    head = summary.loc[summary["depth_index"] == 1, "depth"]
    if len(head) and len(tested) > 1:
        head = head.iloc[0]
        ok_head = [b for b in budgets if head in set(_acceptable(summary, b)["depth"])]
        evaluated = [b for b in budgets if head in set(summary[(summary["budget"] == b)
                                                               & np.isfinite(summary["test_metric"])]["depth"])]
        not_ok = [b for b in evaluated if b not in ok_head]
        if ok_head:
            s = f"Tuning the head only ({head}, the cheapest option) is statistically as good as the best " \
                f"{_span(ok_head, budgets)}"
            lines.append(s + (f", and significantly worse {_span(not_ok, budgets)}." if not_ok else "."))
        elif not_ok:
            lines.append(f"Tuning the head only ({head}) is significantly worse than the best {_span(not_ok, budgets)}.")

    shallowest = {}
    for b in budgets:
        ok = _acceptable(summary, b)
        ok = ok[ok["depth"] != SCRATCH]
        if len(ok):
            shallowest[b] = ok.sort_values("depth_index").iloc[0]
    if len(shallowest) >= 2:
        idx = [int(shallowest[b]["depth_index"]) for b in shallowest]
        first, last = list(shallowest.values())[0], list(shallowest.values())[-1]
        span = (f"from {first['depth']} at {pct(first['budget'])} to {last['depth']} at {pct(last['budget'])}")
        if idx[0] != idx[-1] and all(x <= y for x, y in zip(idx, idx[1:])):
            lines.append(f"The shallowest acceptable depth grows with the budget ({span}): more data rewards "
                         "tuning more layers.")
        elif idx[0] != idx[-1] and all(x >= y for x, y in zip(idx, idx[1:])):
            lines.append(f"The shallowest acceptable depth shrinks as the budget grows ({span}): with less data, "
                         "tuning more layers is needed.")

    everything_tied = [a.budget for a in answers
                       if len(summary[(summary["budget"] == a.budget) & np.isfinite(summary["test_metric"])]) > 1
                       and not len(summary[(summary["budget"] == a.budget) & ~summary["indistinguishable_from_best"]
                                           & np.isfinite(summary["delta_vs_best"])])]
    if everything_tied:
        n_test = int(summary["n_test"].max())
        lines.append(f"{_span(everything_tied, budgets).capitalize()} no depth (scratch included) differs "
                     f"significantly from the best: the test split ({n_test} samples) cannot rank them there; "
                     "a larger test split would be needed to tell them apart.")
    max_epochs = int(max_epochs or summary["epochs_run"].max())
    worse = summary[np.isfinite(summary["test_metric"]) & ~summary["is_best"] & ~summary["indistinguishable_from_best"]]
    stopped = worse[worse["epochs_run"] < max_epochs]
    if len(stopped):
        per_cell = int(summary["trials"].max())
        lo, hi = int(stopped["epochs_run"].min()), int(stopped["epochs_run"].max())
        lines.append(f"{len(stopped)} of the {len(worse)} budget × depth results significantly worse than the best "
                     f"come from trials the scheduler stopped early (after {lo if lo == hi else f'{lo}–{hi}'} of "
                     f"{max_epochs} epochs, {per_cell} learning-rate draw(s) per cell): part of their deficit may "
                     "be the search's budget rather than the depth.")
    for a in answers:
        if a.better_on_test:
            lines.append(f"At budget {pct(a.budget)} the validation choice {a.best_depth} is significantly beaten "
                         f"on test by {', '.join(a.better_on_test)}: validation ranks depths unreliably there.")
    return lines


# ------------------------------------------------------------------------------------------- format
def fmt_ci(value: float, low: float, high: float, digits: int = 3, signed: bool = False) -> str:
    if not np.isfinite(value):
        return "n/a"
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    value, low, high = value + 0.0, low + 0.0, high + 0.0  # no "-0.000"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f.format(value)
    return f"{f.format(value)} [{f.format(low)}, {f.format(high)}]"


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), "-" * len(line(header))] + [line(r) for r in rows])


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _answer_rows(analysis: Analysis) -> tuple[list[str], list[list[str]]]:
    pct_level = f"{100 * analysis.level:g}%"
    header = ["budget", "n_train", "best depth", f"test {analysis.metric} [{pct_level} CI]", "tied with best",
              f"scratch − best fine-tune [{pct_level} CI]", "verdict"]
    rows = []
    for a in analysis.answers:
        d = a.scratch_vs_finetune
        sc = "n/a" if d is None else f"{fmt_ci(d.estimate, d.low, d.high, signed=True)} (vs {a.best_finetune})"
        tied = ", ".join(a.tied) or "none"
        if a.better_on_test:
            tied += f"; better on test: {', '.join(a.better_on_test)}"
        rows.append([pct(a.budget), str(a.n_train), a.best_depth, fmt_ci(*a.best), tied, sc, a.verdict])
    return header, rows


def format_answer(analysis: Analysis) -> str:
    """The answer as printed in the terminal: table, then the guideline."""
    if not analysis.answers:
        return "no budget has test results: " + ("; ".join(analysis.notes[:3]) or "no trial reported a result")
    header, rows = _answer_rows(analysis)
    guide = "\n".join(f"  - {s}" for s in analysis.guideline)
    return f"{_text_table(header, rows)}\n\nguideline:\n{guide}"


def _detail_rows(analysis: Analysis, budget: float) -> list[list[str]]:
    rows = []
    for r in analysis.summary[analysis.summary["budget"] == budget].itertuples(index=False):
        mark = "**best**" if r.is_best else ("tied" if r.indistinguishable_from_best else "")
        epoch = f"{r.selected_epoch}" if r.evaluated_epoch in (r.selected_epoch, -1) else \
            f"{r.selected_epoch} (evaluated {r.evaluated_epoch})"
        rows.append([r.depth, r.trial_id, f"{r.lr:.2g}", epoch, f"{r.epochs_run}", f"{r.val_metric:.3f}",
                     fmt_ci(r.test_metric, r.test_metric_low, r.test_metric_high),
                     fmt_ci(r.delta_vs_best, r.delta_vs_best_low, r.delta_vs_best_high, signed=True), mark,
                     fmt_ci(r.delta_vs_scratch, r.delta_vs_scratch_low, r.delta_vs_scratch_high, signed=True)])
    return rows


def render_markdown(analysis: Analysis) -> str:
    c, m = analysis.config, analysis.metric
    lvl = f"{100 * analysis.level:g}%"
    trials = analysis.trials
    errors = trials[trials["status"] == "error"]["trial_id"].nunique() if "status" in trials else 0
    out = [f"# tunedepth report: {analysis.name}", ""]
    out += [f"- application **{c.get('app')}**, backbone **{c.get('backbone')}**, source **{c.get('source')}**; "
            f"test metric **{m}** ({'higher' if analysis.mode == 'max' else 'lower'} is better)",
            f"- splits: {c.get('n_train', '?')} train / {c.get('n_val', '?')} validation / {c.get('n_test', '?')} test; "
            f"budgets {', '.join(pct(b) for b in c.get('budgets', []))}",
            f"- {trials['trial_id'].nunique()} trials ({errors} errored), {len(trials)} epochs in all; "
            f"scheduler {c.get('scheduler', '?')}, up to {c.get('epochs', '?')} epochs per trial",
            f"- {lvl} intervals: stratified bootstrap of the test split, {analysis.n_boot} resamples, seed {analysis.seed}",
            "", "## Answer", ""]
    if analysis.answers:
        out += [_md_table(*_answer_rows(analysis)), "", "Guideline (derived from the table above):", ""]
        out += [f"- {s}" for s in analysis.guideline]
    else:
        out += ["No budget has test results."]
    out += ["", "## Every budget × depth", "",
            f"Selected trial (by validation), its best validation epoch, epochs it ran, validation {m}, test {m} "
            f"with its {lvl} interval, paired difference to the best depth (tied = interval contains 0) and to "
            f"scratch. Columns are in `summary.parquet`.", ""]
    header = ["depth", "trial", "lr", "best val epoch", "epochs run", f"val {m}", f"test {m} [{lvl} CI]", "Δ vs best",
              "", "Δ vs scratch"]
    for b in sorted(analysis.summary["budget"].unique()):
        n_train = int(analysis.summary.loc[analysis.summary["budget"] == b, "n_train"].iloc[0])
        out += [f"### budget {pct(b)} ({n_train} training samples)", "", _md_table(header, _detail_rows(analysis, b)), ""]
    extra = [col for col in analysis.summary.columns if col not in SUMMARY_COLUMNS]
    if extra:
        out += ["Other test metrics (point estimates) per budget × depth:", ""]
        rows = [[pct(r["budget"]), r["depth"]] + [f"{r[col]:.3f}" for col in extra]
                for _, r in analysis.summary.iterrows()]
        out += [_md_table(["budget", "depth"] + extra, rows), ""]
    if analysis.plots:
        out += ["## Plots", ""]
        for title, rel in analysis.plots:
            out += [f"### {title}", "", f"![{title}]({rel})", ""]
    out += ["## Method", "",
            "- Selection uses validation only: per budget × depth the trial with the best validation "
            f"{m} at its best epoch (early stopping on validation); the best depth of a budget is the depth whose "
            "selected trial has the best validation score. The test split is used once, to score the selected checkpoints.",
            "- Intervals: percentile bootstrap of the test split, stratified by class"
            + (", resampling whole groups (`meta_group`: a resampled group keeps all its samples)"
               if analysis.grouped else "")
            + "; every depth is scored on the same resamples, so differences are paired. A depth is *tied* with "
            "the best when the interval of their difference contains 0: not shown different, which is not the same "
            "as shown equivalent. No correction for multiple comparisons.",
            "- The intervals cover test-set sampling only, not training randomness (initialisation, data order, "
            "learning-rate draw): a retrained model may land elsewhere within or beyond them.",
            f"- Δ vs scratch = test {m}(depth) − test {m}(scratch); scratch − best fine-tune in the answer is "
            "the same quantity with the sign flipped, for the best fine-tuned depth by validation.",
            ""]
    if analysis.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in analysis.notes] + [""]
    return "\n".join(out)


# -------------------------------------------------------------------------------------------- build
def analyse(run_dir: Path, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, level: float = DEFAULT_LEVEL) -> Analysis:
    """Everything the report needs, in memory, from the run's files."""
    files = load_run(run_dir)
    app = get_app(files.config["app"])
    scored = summarise(files, n_boot, seed, level)
    summary, notes = scored.summary, scored.notes
    if "status" in files.trials:
        for tid, g in files.trials[files.trials["status"] == "error"].groupby("trial_id"):
            notes.append(f"trial {tid} ({g['depth'].iloc[0]} @ budget {g['budget'].iloc[0]:g}) errored after "
                         f"{int(g['epoch'].max())} epoch(s); its reported epochs are kept")
    notes += [n for n in [source_check_note(Path(run_dir) / "source_check.json")] if n]
    answers = budget_answers(summary, app.mode)
    lines = guideline(summary, answers, files.config.get("epochs")) if answers else []
    return Analysis(Path(run_dir), files.config, app, summary, files.trials, answers, lines, notes,
                    n_boot, seed, level, scored.boot, scored.labels, scored.grouped)


def write_report(analysis: Analysis, plots: bool = True, log: Log = print) -> Path:
    """summary.parquet, plots/*.png and report.md under the run folder; returns report.md's path."""
    run_dir = analysis.run_dir
    write_parquet(analysis.summary, run_dir / "summary.parquet",
                  metadata={"bootstrap": analysis.n_boot, "seed": analysis.seed, "level": analysis.level,
                            "metric": analysis.metric, "mode": analysis.mode})
    if plots:
        from search.plots import write_plots

        analysis.plots = write_plots(analysis, run_dir / "plots")
    path = run_dir / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render_markdown(analysis))
    tmp.replace(path)
    return path


def build_report(run_dir: Path, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, level: float = DEFAULT_LEVEL,
                 plots: bool = True, log: Log = print) -> Analysis:
    t0 = time.time()
    analysis = analyse(run_dir, n_boot, seed, level)
    path = write_report(analysis, plots=plots, log=log)
    log(f"report: {path} ({len(analysis.summary)} budget × depth cells, {n_boot} bootstrap resamples, "
        f"{time.time() - t0:.1f}s)")
    return analysis


def report_after_run(run_dir: Path, trials: pd.DataFrame, result_grid, data, weights: dict, mode: str,
                     log: Log = print) -> Analysis | None:
    """The post-run step (driver): evaluate the selected checkpoints on test once, then build the report."""
    if trials.empty:
        return None
    t0 = time.time()
    predictions, _ = evaluate_selected(trials, result_grid, data, weights, mode, log)
    write_predictions(predictions, Path(run_dir))
    cells = predictions.groupby(["budget", "depth"]).ngroups if len(predictions) else 0
    log(f"test evaluation: {cells} selected checkpoints scored on {len(data.test_y)} test samples "
        f"({time.time() - t0:.1f}s)")
    return build_report(Path(run_dir), log=log)
