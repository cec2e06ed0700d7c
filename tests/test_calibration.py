"""Calibration of the verdicts on simulated runs written to disk (tunedepth.analysis.simulate), analysed as
``tunedepth report`` does: a false "worse" is rare when all depths are equal, and a truly better depth is found."""
import pytest

from tunedepth.analysis import analyse
from tunedepth.analysis.simulate import calibration, simulate_run

BETTER = 4  # conv5-fc8


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    null = simulate_run(root / "null", n_budgets=200, seed=0)
    effect = simulate_run(root / "effect", n_budgets=200, better=BETTER, effect=EFFECT, seed=1)
    return {name: analyse(run, n_boot=400, seed=0, extras=False).summary for name, run in
            (("null", null), ("effect", effect))}


EFFECT = 1.0  # quality 1.0 -> 2.0 for one depth: test AUC ~0.76 -> ~0.92 (200 test samples)


def test_nine_equal_depths_rarely_get_a_worse_verdict(runs):
    c = calibration(runs["null"])
    assert c["budgets"] >= 200
    assert c["any_worse"] <= 0.05 and c["any_better"] <= 0.05, c
    assert (runs["null"]["verdict"] != "n/a").all()


def test_a_truly_better_depth_is_found_and_declared_better(runs):
    c = calibration(runs["effect"], better=BETTER)
    assert c["found_and_better"] >= 0.80, c
    assert c["any_better"] <= 0.05, c  # the other depths are never "better" than the true best
