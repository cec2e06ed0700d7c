"""Error rates of the report's verdicts on simulated runs with a known truth (tunedepth.analysis.simulate).

Each simulated run holds independent budgets x 9 depths (AUC, 200 test and 200 validation samples per depth
model, scores = quality * label + N(0, 1), quality 1.0: AUC ~0.76), written to disk and analysed exactly as
``tunedepth report`` does. Prints, per scenario and simulation seed:

- null (9 depths of equal quality): share of budgets where some depth is declared worse / better than the
  validation choice (family-wise error; Holm at alpha 0.05 promises <= 5% for both together);
- effect (one depth, conv5-fc8, of higher quality): share where it is chosen by validation, and where it is
  chosen and every other depth is declared worse (power).

    python bench/verdict_calibration.py                    # 3 seeds x 200 budgets per scenario (a few minutes)
    python bench/verdict_calibration.py --budgets 50 --seeds 1   # quick check
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tunedepth.analysis import analyse
from tunedepth.analysis.simulate import calibration, simulate_run

BETTER = 4  # conv5-fc8


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budgets", type=int, default=200)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--effects", type=float, nargs="*", default=[0.6, 0.8, 1.0])
    args = p.parse_args()
    print(f"{'scenario':<14} {'seed':>4} {'budgets':>7} {'any worse':>9} {'any better':>10} {'found':>6} "
          f"{'found+better':>12} {'time s':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for effect in [0.0] + list(args.effects):
            for seed in range(args.seeds):
                t0 = time.time()
                run = simulate_run(Path(tmp) / f"e{effect}_s{seed}", args.budgets, better=BETTER if effect else None,
                                   effect=effect, seed=seed)
                a = analyse(run, n_boot=args.bootstrap, seed=seed, extras=False)
                c = calibration(a.summary, BETTER if effect else None)
                name = "null" if not effect else f"effect +{effect:g}"
                print(f"{name:<14} {seed:>4} {int(c['budgets']):>7} {c['any_worse']:>9.3f} {c['any_better']:>10.3f} "
                      f"{c.get('found', float('nan')):>6.3f} {c.get('found_and_better', float('nan')):>12.3f} "
                      f"{time.time() - t0:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
