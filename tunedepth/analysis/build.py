"""The answer of a run, rebuilt offline from its files: summary.parquet, report.md and plots.

Inputs (``results/<name>/``): ``config.yaml``, ``trials.parquet`` (validation curves) and
``predictions.parquet`` (test-split probabilities of every replicate seed of each budget x depth's selected
learning rate). No retraining, no data rebuilding, neither Ray nor the training code: ``tunedepth report``
reruns exactly this module.

Steps: load -> select by validation -> score on test (bootstrap of test units and seeds) -> verdicts ->
answers per budget -> guideline -> notes -> write.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from tunedepth.analysis.answers import Analysis, as_random_features, budget_answers, planned_depths
from tunedepth.analysis.guideline import guideline, test_disagreement_warnings
from tunedepth.analysis.lr_edges import lr_edge_notes
from tunedepth.analysis.render import render_markdown
from tunedepth.analysis.resampling import DEFAULT_BOOTSTRAP, DEFAULT_LEVEL
from tunedepth.analysis.scoring import summarise
from tunedepth.analysis.source_check import FILE as SOURCE_CHECK_FILE
from tunedepth.analysis.source_check import random_features_reason, source_check_note
from tunedepth.analysis.verdicts import default_margin
from tunedepth.apps import get_app
from tunedepth.run_files import REPORT_FILE, SUMMARY_FILE, RunFiles, load_run, write_parquet, write_text

Log = Callable[[str], None]


def run_notes(files: RunFiles) -> list[str]:
    """Run-level notes for the report (errored trials; further checks append their line here)."""
    notes = []
    trials = files.trials
    if "status" in trials:
        for tid, g in trials[trials["status"] == "error"].groupby("trial_id"):
            notes.append(f"trial {tid} ({g['depth'].iloc[0]} @ budget {g['budget'].iloc[0]:g}) errored after "
                         f"{int(g['epoch'].max())} epoch(s); its reported epochs are kept")
        diverged = trials[trials["status"] == "diverged"].groupby("trial_id").agg(
            depth=("depth", "first"), budget=("budget", "first"), lr=("lr", "first"), epoch=("epoch", "max"))
        for tid, r in diverged.iterrows():
            notes.append(f"trial {tid} ({r['depth']} @ budget {r['budget']:g}, lr {r['lr']:.3g}) diverged (NaN/inf "
                         f"loss) in epoch-equivalent {int(r['epoch'])}: its learning rate counts as lost")
    notes += [n for n in [source_check_note(Path(files.run_dir) / SOURCE_CHECK_FILE)] if n]
    return notes


def analyse(run_dir: Path, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, level: float = DEFAULT_LEVEL,
            margin: float | None = None, extras: bool = True) -> Analysis:
    """Everything the report needs, in memory, from the run's files (``extras``: also the app's other test
    metrics, point estimates)."""
    files = load_run(run_dir)
    app = get_app(files.config["app"], files.config.get("metric", ""))
    margin = default_margin(app.metric) if margin is None else float(margin)
    scored = summarise(files, app, n_boot, seed, level, margin, extras)
    notes = scored.notes + run_notes(files) + lr_edge_notes(scored.summary, files.config)
    planned = planned_depths(files.config, files.trials)
    answers = budget_answers(scored.summary, app.mode, planned)
    random = random_features_reason(files.config, Path(run_dir) / SOURCE_CHECK_FILE)
    if random:
        answers = as_random_features(answers)
    answered = {a.budget for a in answers}
    notes += [f"budget {b:g}: no depth trained (no trial reported a result); nothing is judged there"
              for b in files.config.get("budgets", []) if float(b) not in answered]
    lines = guideline(scored.summary, answers, 1 - level, files.config.get("epochs"), random) if answers else []
    return Analysis(Path(run_dir), files.config, app, scored.summary, files.trials, answers, lines, notes,
                    n_boot, seed, level, margin, scored.boot, scored.labels, scored.unit,
                    warnings=test_disagreement_warnings(answers), random_features=random)


def write_report(analysis: Analysis, plots: bool = True) -> Path:
    """summary.parquet, plots/*.png and report.md under the run folder; returns report.md's path."""
    run_dir = analysis.run_dir
    write_parquet(analysis.summary, run_dir / SUMMARY_FILE,
                  metadata={"bootstrap": analysis.n_boot, "seed": analysis.seed, "level": analysis.level,
                            "metric": analysis.metric, "mode": analysis.mode, "margin": analysis.margin,
                            "unit": analysis.unit})
    if plots:
        from tunedepth.analysis.plots import write_plots

        analysis.plots = write_plots(analysis, run_dir / "plots")
    path = run_dir / REPORT_FILE
    write_text(render_markdown(analysis), path)
    return path


def build_report(run_dir: Path, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, level: float = DEFAULT_LEVEL,
                 plots: bool = True, log: Log = print, margin: float | None = None) -> Analysis:
    t0 = time.time()
    analysis = analyse(run_dir, n_boot, seed, level, margin)
    path = write_report(analysis, plots=plots)
    log(f"report: {path} ({len(analysis.summary)} budget × depth cells, {n_boot} bootstrap resamples, "
        f"{time.time() - t0:.1f}s)")
    return analysis
