"""``tunedepth extend NAME --epochs N``: continue a finished run's capped trials to a higher cap
(``tunedepth.hpo.extend``)."""
from __future__ import annotations

import argparse

from tunedepth.cli.flags import run_argument


def register(sub) -> None:
    p = sub.add_parser("extend", help="continue a finished run's capped trials (ran to the cap without a plateau) "
                                      "to a higher cap, then re-evaluate on test and rebuild the report")
    run_argument(p)
    p.add_argument("--epochs", type=int, required=True,
                   help="the new cap in epoch-equivalents; must exceed the run's (config.yaml epochs)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tunedepth.analysis import format_answer
    from tunedepth.hpo.extend import extend_run

    out = extend_run(args.run, args.epochs, args.results_dir)
    if not out.continued:
        return 0
    if not out.committed:
        return 1
    c = out.report.config
    print(f"\nbest tuning depth per data budget ({c.get('app')}, {c.get('backbone')}, source {c.get('source')}; "
          f"selected by validation, scored on the test split):")
    print(format_answer(out.report))
    for note in out.report.notes:
        print(f"note: {note}")
    print(f"\nreport: {out.run_dir / 'report.md'}  (summary.parquet, plots/; trials extended to {out.new_cap} "
          f"epochs)   wall {out.wall_s:.0f}s")
    return 0 if out.report.answers else 1
