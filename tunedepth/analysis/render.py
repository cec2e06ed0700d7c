"""Rendering: the answer as a terminal table and as report.md (Markdown tables), from an ``Analysis``."""
from __future__ import annotations

import numpy as np

from tunedepth.analysis.answers import DIVERGED_EVERYWHERE, Analysis, diverged_cells
from tunedepth.analysis.guideline import pct
from tunedepth.analysis.source_check import RANDOM
from tunedepth.run_files import SUMMARY_COLUMNS
from tunedepth.space import SCRATCH


def fmt_ci(value: float, low: float, high: float, digits: int = 3, signed: bool = False) -> str:
    if not np.isfinite(value):
        return "n/a"
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    value, low, high = value + 0.0, low + 0.0, high + 0.0  # no "-0.000"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f.format(value)
    return f"{f.format(value)} [{f.format(low)}, {f.format(high)}]"


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), "-" * len(line(header))] + [line(r) for r in rows])


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


CAPPED_MARK = "*"


def capped_cells(analysis: Analysis) -> set[tuple[float, str]]:
    """(budget, depth) of the cells with a selected replicate that ran to the cap without a plateau."""
    s = analysis.summary
    if s.empty or "capped" not in s:
        return set()
    return {(float(r.budget), str(r.depth)) for r in s.itertuples(index=False) if int(r.capped or 0) > 0}


def _marked(depths, budget: float, capped: set) -> list[str]:
    return [d + (CAPPED_MARK if (budget, d) in capped else "") for d in depths]


def _others(a, *words: str, capped: set = frozenset()) -> str:
    return ", ".join(_marked(a.having(*words), a.budget, capped)) or "-"


def _converged(analysis: Analysis, budget: float) -> str:
    s = analysis.summary
    if s.empty or "converged" not in s:
        return "-"
    g = s[s["budget"] == budget]
    return f"{int(g['converged'].astype(bool).sum())}/{len(g)}"


def capped_footnote(analysis: Analysis) -> str:
    """One line under the table when a cell is capped (its score, and any verdict against it, a lower bound)."""
    if not capped_cells(analysis):
        return ""
    cap = analysis.config.get("epochs", "?")
    return (f"{CAPPED_MARK} capped at {cap} epoch-equivalents before a plateau: its score is a lower bound, and "
            f"'worse' against it is listed as inconclusive (continue it: tunedepth extend "
            f"{analysis.name} --epochs {int(cap) * 2 if str(cap).isdigit() else 'N'})")


def convergence_lines(analysis: Analysis) -> list[str]:
    """Per budget, one sentence: how many selected cells stopped on a plateau, which were capped."""
    s = analysis.summary
    if s.empty or "converged" not in s:
        return ["this run's files predate convergence tracking"]
    out = []
    for budget, g in s.groupby("budget"):
        capped = [str(r.depth) for r in g.itertuples(index=False) if int(r.capped or 0) > 0]
        text = (f"budget {pct(float(budget))}: {int(g['converged'].astype(bool).sum())} of {len(g)} selected cells "
                f"stopped on a plateau")
        out.append(text + (f"; capped (score a lower bound): {', '.join(capped)}" if capped else ""))
    foot = capped_footnote(analysis)
    return out + ([foot] if foot else [])


def answer_rows(analysis: Analysis) -> tuple[list[str], list[list[str]]]:
    lvl = f"{100 * analysis.level:g}%"
    other = f"best {RANDOM} depth" if analysis.random_features else "best fine-tune"
    header = ["budget", "n_train", "best depth (validation)", f"test {analysis.metric} [{lvl} CI]", "converged",
              "equivalent", "inconclusive", "worse", f"scratch − {other} [{lvl} CI]", "scratch verdict"]
    rows = []
    capped = capped_cells(analysis)
    for a in analysis.answers:
        d = a.scratch_vs_finetune
        sc = "n/a" if d is None else f"{fmt_ci(*d, signed=True)} (vs {a.best_finetune})"
        worse = _others(a, "worse", capped=capped)
        if a.better_on_test:
            worse += f"; better on test (warning): {', '.join(a.better_on_test)}"
        best = _marked([a.best_depth], a.budget, capped)[0]
        if analysis.random_features and a.best_depth != SCRATCH:
            best += f" ({RANDOM})"
        rows.append([pct(a.budget), str(a.n_train), best, fmt_ci(*a.best),
                     _converged(analysis, a.budget), _others(a, "equivalent", capped=capped),
                     _others(a, "inconclusive", "lower bound", capped=capped), worse, sc, a.scratch_verdict])
    gone = [diverged_cells(analysis.trials, a.budget) for a in analysis.answers]
    if any(gone):  # every lr of these cells diverged: named, never judged
        header.append(DIVERGED_EVERYWHERE)
        for row, depths in zip(rows, gone):
            row.append(", ".join(depths) or "-")
    if any(a.not_trained for a in analysis.answers):  # named, never judged
        header.append("not trained")
        for row, a in zip(rows, analysis.answers):
            row.append(", ".join(a.not_trained) or "-")
    return header, rows


def not_trained_line(analysis: Analysis, budget: float) -> list[str]:
    missing = next((a.not_trained for a in analysis.answers if a.budget == budget), [])
    return [f"Not trained: {', '.join(missing)} (no trial reported a result at this budget; no verdict).", ""] \
        if missing else []


def format_answer(analysis: Analysis) -> str:
    """The answer as printed in the terminal: table, warnings, then the guideline."""
    if not analysis.answers:
        return "no budget has test results: " + ("; ".join(analysis.notes[:3]) or "no trial reported a result")
    header, rows = answer_rows(analysis)
    guide = "\n".join(f"  - {s}" for s in analysis.guideline)
    warn = "".join(f"\n{w}" for w in analysis.warnings)
    foot = capped_footnote(analysis)
    if analysis.random_features:
        foot = (foot + "\n" if foot else "") + random_footnote(analysis)
    return f"{text_table(header, rows)}{chr(10) + foot if foot else ''}{warn}\n\nguideline:\n{guide}"


def random_footnote(analysis: Analysis) -> str:
    return (f"{RANDOM}: every depth but scratch trains its top groups over frozen random layers, not fine-tuning "
            f"({analysis.random_features})")


def detail_rows(analysis: Analysis, budget: float) -> list[list[str]]:
    rows = []
    for r in analysis.summary[analysis.summary["budget"] == budget].itertuples(index=False):
        epoch = f"{r.selected_epoch}" if r.evaluated_epoch in (r.selected_epoch, -1) else \
            f"{r.selected_epoch} (evaluated {r.evaluated_epoch})"
        p = "" if not np.isfinite(r.p_vs_best_holm) else f"{r.p_vs_best_holm:.3f}"
        rows.append([r.depth, f"{r.lr:.2g}", f"{r.seeds}", epoch, f"{r.epochs_run}" + ("" if r.complete else "*"),
                     f"{r.val_metric:.3f}", fmt_ci(r.test_metric, r.test_metric_low, r.test_metric_high),
                     fmt_ci(r.delta_vs_best, r.delta_vs_best_low, r.delta_vs_best_high, signed=True), p,
                     "**best**" if r.is_best else r.verdict,
                     fmt_ci(r.delta_vs_scratch, r.delta_vs_scratch_low, r.delta_vs_scratch_high, signed=True)])
    return rows


def _header_lines(analysis: Analysis) -> list[str]:
    c, m, trials = analysis.config, analysis.metric, analysis.trials
    lvl = f"{100 * analysis.level:g}%"
    errors = trials[trials["status"] == "error"]["trial_id"].nunique() if "status" in trials else 0
    return [f"# tunedepth report: {analysis.name}", "",
            f"- application **{c.get('app')}**, backbone **{c.get('backbone')}**, source **{c.get('source')}**; "
            f"test metric **{m}** ({'higher' if analysis.mode == 'max' else 'lower'} is better)",
            f"- splits: {c.get('n_train', '?')} train / {c.get('n_val', '?')} validation / {c.get('n_test', '?')} "
            f"test; budgets {', '.join(pct(b) for b in c.get('budgets', []))}",
            f"- {trials['trial_id'].nunique()} trials ({errors} errored), {len(trials)} epochs in all; "
            f"scheduler {c.get('scheduler', '?')}, up to {c.get('epochs', '?')} epochs per trial",
            f"- {lvl} intervals: bootstrap of the test split by {analysis.unit} (and of replicate seeds), "
            f"{analysis.n_boot} resamples, seed {analysis.seed}; equivalence margin ±{analysis.margin:g} {m}", ""]


def _method_lines(analysis: Analysis) -> list[str]:
    m, alpha = analysis.metric, 1 - analysis.level
    return ["## Method", "",
            "- Selection uses validation only. A trial's score is its best validation epoch; per budget × depth "
            "the learning rates are compared by the mean score of their seeds (only trials that ran the cell's full "
            "length and did not error, when there are any); the best learning rate's seeds are the cell's "
            "replicates. The best depth of a budget has the best validation score (the shallower on ties). The test "
            "split is used once, to score the replicates.",
            f"- Intervals: percentile bootstrap of the test split, resampling whole {analysis.unit}s (stratified by "
            "class where a unit has one label; copies of a unit get their own ids), and of the replicate seeds; every "
            "depth is scored on the same test resamples, so differences are paired.",
            f"- Verdicts vs the best depth: within a budget the comparisons are Holm-corrected (family-wise "
            f"α = {alpha:g}); Δ intervals are simultaneous (level 1 − α/k). *better*/*worse*: adjusted p < α; "
            f"*equivalent*: not different and the whole Δ interval within ±{analysis.margin:g}; *inconclusive*: "
            "neither. A depth *better* than the validation choice is reported as a warning, never as the answer.",
            f"- Δ vs scratch = test {m}(depth) − test {m}(scratch), uncorrected {100 * analysis.level:g}% interval; "
            "its verdict in the answer comes from the corrected family.",
            "- `*` after epochs run: the trial did not reach the cell's full length.", ""]


def render_markdown(analysis: Analysis) -> str:
    m, lvl = analysis.metric, f"{100 * analysis.level:g}%"
    out = _header_lines(analysis) + ["## Answer", ""]
    if analysis.answers:
        out += [md_table(*answer_rows(analysis)), ""] + [f"> {w}" for w in analysis.warnings]
        out += [f"> {random_footnote(analysis)}"] if analysis.random_features else []
        out += ["", "Convergence:", ""] + [f"- {line}" for line in convergence_lines(analysis)]
        out += ["", "Guideline (derived from the table above):", ""] + [f"- {s}" for s in analysis.guideline]
    else:
        out += ["No budget has test results."]
    out += ["", "## Every budget × depth", "",
            f"Selected learning rate and replicate seeds (by validation), best validation epoch, epochs run, "
            f"validation {m} (mean over seeds), test {m} with its {lvl} interval, difference to the best depth with "
            "its Holm-adjusted p and verdict, and to scratch. Columns are in `summary.parquet`.", ""]
    header = ["depth", "lr", "seeds", "best val epoch", "epochs run", f"val {m}", f"test {m} [{lvl} CI]",
              "Δ vs best", "p (Holm)", "verdict", "Δ vs scratch"]
    for b in sorted(analysis.summary["budget"].unique()):
        n_train = int(analysis.summary.loc[analysis.summary["budget"] == b, "n_train"].iloc[0])
        out += [f"### budget {pct(b)} ({n_train} training samples)", "", md_table(header, detail_rows(analysis, b)), ""]
        out += not_trained_line(analysis, b)
    extra = [col for col in analysis.summary.columns if col not in SUMMARY_COLUMNS]
    if extra:
        rows = [[pct(r["budget"]), r["depth"]] + [f"{r[col]:.3f}" for col in extra]
                for _, r in analysis.summary.iterrows()]
        out += ["Other test metrics (point estimates, mean over seeds) per budget × depth:", "",
                md_table(["budget", "depth"] + extra, rows), ""]
    if analysis.plots:
        out += ["## Plots", ""]
        for title, rel in analysis.plots:
            out += [f"### {title}", "", f"![{title}]({rel})", ""]
    out += _method_lines(analysis)
    if analysis.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in analysis.notes] + [""]
    return "\n".join(out)
