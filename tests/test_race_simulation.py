"""Converged before judged: a learning rate that is behind at a rung but still climbing is not dropped.

Known truth by simulation (``tunedepth.hpo.race_simulation``): cells whose candidates converge at different speeds
(smaller learning rates slower), each run by the default protocol and by the exhaustive converged grid.
"""
import pytest
from ray.tune.experiment import Trial

from tunedepth.hpo.promotion import StratifiedHalving
from tunedepth.hpo.race_simulation import Race, simulate

FAST = {1: 0.70, 2: 0.80, 3: 0.80, 4: 0.80, 5: 0.80, 6: 0.80, 7: 0.80, 8: 0.80}  # plateaus at 0.80 by t = 2
SLOW = {1: 0.58, 2: 0.66, 3: 0.72, 4: 0.77, 5: 0.81, 6: 0.84, 7: 0.86, 8: 0.87}  # behind at 2 and 4, ends ahead


def _race(growth: float) -> tuple[set, list]:
    sched = StratifiedHalving(metric="val_metric", mode="max", max_t=8, grace_period=2, reduction_factor=2, z=2.0,
                              growth=growth, stratum_size=2)
    trials = {lr: Trial("__fake", config={"budget": 1.0, "depth": "head", "lr": lr, "schedule": "paper",
                                          "seed": 0}, stub=True) for lr in (1e-2, 1e-3)}
    curves = {1e-2: FAST, 1e-3: SLOW}
    for tr in trials.values():
        sched.on_trial_add(None, tr)
    t, alive = 0, set(trials)
    while t < 8 and alive:
        t += 1
        for lr in sorted(alive):
            sched.on_trial_result(None, trials[lr], {"training_iteration": t, "val_metric": curves[lr][t],
                                                     "val_se": 0.01, "val_chance": 0.5})
        resume, stop = sched.decide(search_finished=True)
        alive -= {sched._group_of[x][0] for x in stop}
    return alive, [d["kept"] for d in sched.decisions]


def test_a_slower_better_learning_rate_is_kept_while_it_climbs_and_wins():
    kept, decisions = _race(growth=1.0)
    assert kept == {1e-2, 1e-3} and decisions[0] == 2  # at rung 2 it is 0.14 behind but gained 0.16 from chance
    judged_as_it_stands, _ = _race(growth=0.0)
    assert judged_as_it_stands == {1e-2}  # the plain rule drops it on evidence the longer run overturns


@pytest.mark.parametrize("growth", [0.0, 1.0])
def test_the_default_protocol_picks_as_well_as_the_converged_grid_at_a_fraction_of_its_steps(growth):
    out = simulate(Race(k=4, growth=growth), cells=60, seed=0)
    if growth:  # the default: as accurate as the grid (within 5 points), about half its steps
        assert out["pruned_in_tied"] >= out["grid_in_tied"] - 0.05, out
        assert out["steps_fraction"] < 0.6, out
    else:  # scores as they stand: cheaper, but the slow optimum is lost in a third of cells
        assert out["pruned_in_tied"] < out["grid_in_tied"] - 0.15, out
        assert out["steps_fraction"] < 0.35, out
