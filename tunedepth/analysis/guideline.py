"""The guideline: plain sentences computed from the answer table, one small function per sentence.

Every sentence uses the verdict words exactly (better, worse, equivalent, inconclusive); the recommendation
is always the validation choice; a trend across budgets is stated only when a permutation test backs it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tunedepth.analysis.answers import BudgetAnswer
from tunedepth.analysis.source_check import RANDOM
from tunedepth.analysis.verdicts import trend_test
from tunedepth.space import SCRATCH

# run-level notes (errored trials, the source check...) are built by ``build.run_notes``, not here


def pct(budget: float) -> str:
    return f"{100 * budget:g}%"


def span(chosen: list[float], budgets: list[float]) -> str:
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


def recommendation(a: BudgetAnswer, random: bool = False) -> str:
    """What to do at one budget: the validation choice, the depths the test split finds equivalent, and the
    depths never trained there (the choice is among the trained ones only). ``random``: the depths other than
    scratch train on random features (never "tune")."""
    do = ("train from scratch" if a.best_depth == SCRATCH else
          f"train {a.best_depth} on {RANDOM} (its frozen layers are random, not pretrained)" if random else
          f"tune {a.best_depth}")
    same = a.having("equivalent")
    why = "the only depth trained" if a.not_trained and not a.verdicts else "chosen by validation"
    parts = [why] + ([f"equivalent on test: {', '.join(same)}"] if same else []) + \
        ([f"not trained: {', '.join(a.not_trained)}"] if a.not_trained else [])
    return f"{do} ({'; '.join(parts)})"


def recommendation_sentences(answers: list[BudgetAnswer], budgets: list[float], random: bool = False) -> list[str]:
    runs: list[tuple[str, list[float]]] = []
    for a in answers:
        phrase = recommendation(a, random)
        if runs and runs[-1][0] == phrase:
            runs[-1][1].append(a.budget)
        else:
            runs.append((phrase, [a.budget]))
    return [f"{span(chosen, budgets).capitalize()}, {phrase}." for phrase, chosen in runs]


def _by_word(pairs: list[tuple[float, str]], budgets: list[float], words: tuple[str, ...]) -> list[str]:
    return [f"{w} {span([b for b, v in pairs if v == w], budgets)}" for w in words if any(v == w for _, v in pairs)]


def scratch_sentence(answers: list[BudgetAnswer], budgets: list[float], random: bool = False) -> str | None:
    pairs = [(a.budget, a.scratch_verdict) for a in answers if a.scratch_verdict != "n/a"]
    if not pairs:
        return None
    better = f"{RANDOM} better" if random else "fine-tuning better"
    capped = f"{RANDOM if random else 'fine-tune'} capped (lower bound)"
    parts = _by_word(pairs, budgets, (better, "scratch better", "equivalent", "inconclusive",
                                      "scratch capped (lower bound)", capped))
    if not parts:
        return None
    what = f"the best {RANDOM} depth" if random else "the best fine-tuned depth"
    return f"Scratch vs {what}: " + "; ".join(parts) + "."


def head_sentence(answers: list[BudgetAnswer], summary: pd.DataFrame, budgets: list[float],
                  random: bool = False) -> str | None:
    head = summary.loc[summary["depth_index"] == 1, "depth"]
    if head.empty:
        return None
    head = str(head.iloc[0])
    pairs = [(a.budget, "best" if a.best_depth == head else a.verdicts.get(head, "n/a")) for a in answers]
    pairs = [(b, v) for b, v in pairs if v != "n/a"]
    if not pairs:
        return None
    parts = _by_word(pairs, budgets, ("best", "equivalent", "better", "worse", "inconclusive"))
    parts = [p.replace("best ", "chosen by validation ", 1) if p.startswith("best ") else p for p in parts]
    what = f"Training the head only on {RANDOM}" if random else "Tuning the head only"
    return f"{what} ({head}, the cheapest option) compared with the best depth: " + "; ".join(parts) + "."


def trend_sentence(answers: list[BudgetAnswer], summary: pd.DataFrame, alpha: float) -> str | None:
    """Only when a permutation test of the best depth's index against the budget order rejects no trend."""
    index = dict(zip(summary["depth"], summary["depth_index"]))
    depths = [int(index[a.best_depth]) for a in answers]
    rho, p = trend_test(depths)
    if not p < alpha:
        return None
    way = "deeper" if rho > 0 else "shallower"
    return (f"The depth chosen by validation gets {way} as the budget grows (Spearman ρ = {rho:+.2f} over "
            f"{len(depths)} budgets, permutation p = {p:.3f}).")


def undecided_sentence(answers: list[BudgetAnswer], summary: pd.DataFrame, budgets: list[float]) -> str | None:
    open_ = [a.budget for a in answers if a.verdicts and all(v in ("inconclusive", "n/a") for v in a.verdicts.values())]
    if not open_:
        return None
    n_test = int(summary["n_test"].max())
    other = "every other trained depth" if any(a.not_trained for a in answers if a.budget in open_) else \
        "every other depth"
    return (f"{span(open_, budgets).capitalize()} {other} is inconclusive against the choice: the test "
            f"split ({n_test} samples) can neither separate them nor show them equivalent.")


def stopped_sentence(summary: pd.DataFrame, max_epochs: int | None) -> str | None:
    """Worse cells whose replicates did not end on their own (pruned, diverged or errored; a trial that ran its
    full length or stopped on validation patience is complete)."""
    worse = summary[summary["verdict"] == "worse"]
    full = int(max_epochs or summary["epochs_run"].max())
    stopped = worse[~worse["complete"].astype(bool)]
    if stopped.empty:
        return None
    lo, hi = int(stopped["epochs_run"].min()), int(stopped["epochs_run"].max())
    return (
        f"{len(stopped)} of the {len(worse)} budget × depth results worse than the best come from trials "
        f"that did not end on their own (stopped after {lo if lo == hi else f'{lo}–{hi}'} of {full} epoch-equivalents "
        "by the scheduler, diverged or errored): part of their deficit may be the search's budget rather than the "
        "depth."
    )


def test_disagreement_warnings(answers: list[BudgetAnswer]) -> list[str]:
    """Printed beside the answer, never as the recommendation."""
    return [f"warning: at budget {pct(a.budget)} the validation choice {a.best_depth} is worse on test than "
            f"{', '.join(a.better_on_test)} (better after correction); validation may rank depths unreliably "
            "there, the recommendation stays the validation choice" for a in answers if a.better_on_test]


def guideline(summary: pd.DataFrame, answers: list[BudgetAnswer], alpha: float,
              max_epochs: int | None = None, random_features: str = "") -> list[str]:
    """The sentences; ``random_features`` (why, or "") words every depth but scratch as random features."""
    answers = [a for a in answers if np.isfinite(a.best[0])]
    if not answers:
        return ["no test results: the best depth above is by validation only; a guideline needs test intervals "
                "(rerun the search to evaluate the selected checkpoints)"]
    budgets = [a.budget for a in answers]
    random = bool(random_features)
    lines = recommendation_sentences(answers, budgets, random)
    if random:
        lines.append(f"Every depth but scratch trains on {RANDOM}, not fine-tuning ({random_features}); its "
                     "comparison with scratch is one of learning-rate protocols on the same random network.")
    for s in (scratch_sentence(answers, budgets, random), head_sentence(answers, summary, budgets, random),
              trend_sentence(answers, summary, alpha), undecided_sentence(answers, summary, budgets),
              stopped_sentence(summary, max_epochs)):
        if s:
            lines.append(s)
    return lines
