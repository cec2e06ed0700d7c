"""Depths never trained at a budget (an adaptive searcher never drew them) are named, never judged."""
import pandas as pd

from tunedepth.analysis import analyse, format_answer
from tunedepth.analysis.render import render_markdown
from tunedepth.analysis.simulate import DEPTHS, simulate_run
from tunedepth.run_files import PREDICTIONS_FILE, TRIALS_FILE, read_config, write_config, write_parquet

SCRATCH_ONLY = ["scratch"]
SOME = ["fc8", "conv3-fc8", "scratch"]


def _run_with_gaps(tmp_path):
    """Three budgets x 9 depths with one strongly better depth, then: at the first budget only SOME depths
    reported, at the second only scratch, at the third none at all."""
    run = simulate_run(tmp_path / "gaps", n_budgets=4, quality=1.0, better=2, effect=2.0, n_test=120, n_val=120)
    budgets = sorted(pd.read_parquet(run / TRIALS_FILE)["budget"].unique())
    keep = {budgets[0]: SOME, budgets[1]: SCRATCH_ONLY, budgets[2]: []}
    for name in (TRIALS_FILE, PREDICTIONS_FILE):
        frame = pd.read_parquet(run / name)
        drop = frame.apply(lambda r: r["budget"] in keep and r["depth"] not in keep[r["budget"]], axis=1)
        write_parquet(frame[~drop].reset_index(drop=True), run / name)
    write_config({**read_config(run), "depths": list(DEPTHS)}, run)
    return run, budgets


def test_untrained_depths_are_named_and_never_judged(tmp_path):
    run, budgets = _run_with_gaps(tmp_path)
    analysis = analyse(run, n_boot=200)
    by_budget = {a.budget: a for a in analysis.answers}
    assert set(by_budget) == {budgets[0], budgets[1], budgets[3]}  # the empty budget has no answer...
    assert any(f"budget {budgets[2]:g}: no depth trained" in n for n in analysis.notes)  # ...but a note

    some = by_budget[budgets[0]]
    assert some.not_trained == [d for d in DEPTHS if d not in SOME]
    assert set(some.verdicts) | {some.best_depth} == set(SOME)  # only trained depths get a verdict
    only_scratch = by_budget[budgets[1]]
    assert only_scratch.best_depth == "scratch" and only_scratch.verdicts == {}
    assert only_scratch.scratch_verdict == "n/a" and only_scratch.not_trained == list(DEPTHS[:-1])
    full = by_budget[budgets[3]]
    assert full.not_trained == [] and "worse" in full.verdicts.values()  # the effect is still found

    guide = "\n".join(analysis.guideline)
    assert f"train from scratch (the only depth trained; not trained: {', '.join(DEPTHS[:-1])})" in guide
    assert f"not trained: {', '.join(some.not_trained)})" in guide
    text, md = format_answer(analysis), render_markdown(analysis)
    assert "not trained" in text.splitlines()[0]
    assert f"Not trained: {', '.join(some.not_trained)}" in md
    summary = analysis.summary
    for budget, answer in by_budget.items():
        judged = set(summary.loc[summary["budget"] == budget, "depth"])
        assert not judged & set(answer.not_trained)


def test_a_run_without_gaps_keeps_its_table(tmp_path):
    run = simulate_run(tmp_path / "full", n_budgets=2, n_test=80, n_val=80)
    analysis = analyse(run, n_boot=100)
    assert all(a.not_trained == [] for a in analysis.answers)
    assert "not trained" not in format_answer(analysis) and "Not trained" not in render_markdown(analysis)
