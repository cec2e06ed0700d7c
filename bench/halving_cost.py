"""What the default race costs and how often it picks right, against the exhaustive converged grid, by
simulation with a known truth (``tunedepth.hpo.race_simulation``: no training, no Ray).

Per number of candidates per cell (k) and ``--prune-growth`` (0: scores judged as they stand; 1: the default,
a candidate still climbing is kept; 2.4: a slower power law), over ``--cells`` simulated cells:

- steps: the pruned run's validations as a fraction of the grid's (every candidate x 2 seeds to its plateau);
- in tied: cells whose pick is within 0.01 true AUC of the best candidate (pruned, and the grid itself);
- loss: mean true AUC of the best candidate minus the pick's;
- capped: cells whose selected replicates reached the cap without a plateau.

    PYTHONPATH=$PWD python bench/halving_cost.py               # ~3 min on one core
    PYTHONPATH=$PWD python bench/halving_cost.py --cells 20    # seconds: a check that it runs
"""
from __future__ import annotations

import argparse
import time

from tunedepth.hpo.race_simulation import Race, simulate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, default=200)
    p.add_argument("--k", type=int, nargs="+", default=[2, 4, 6, 8])
    p.add_argument("--growth", type=float, nargs="+", default=[0.0, 1.0, 2.4])
    args = p.parse_args()
    t0 = time.time()
    print("| k | prune-growth | steps / grid | in tied: pruned | in tied: grid | loss: pruned | loss: grid "
          "| capped: pruned | capped: grid |")
    print("|---" * 9 + "|")
    for k in args.k:
        for g in args.growth:
            o = simulate(Race(k=k, growth=g), cells=args.cells, seed=0)
            print(f"| {k} | {g:g} | {o['steps_fraction']:.2f} | {o['pruned_in_tied']:.1%} | {o['grid_in_tied']:.1%} "
                  f"| {o['pruned_loss']:.4f} | {o['grid_loss']:.4f} | {o['pruned_capped']:.1%} "
                  f"| {o['grid_capped']:.1%} |", flush=True)
    print(f"\n{args.cells} cells per row; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
