"""``tunedepth report NAME|PATH``: rebuild summary.parquet, report.md and plots of a run, offline, from its files."""
from __future__ import annotations

import argparse

from tunedepth.cli.flags import setting_flag


def add_stats_options(p: argparse.ArgumentParser) -> None:
    setting_flag(p, "results_dir", help="where run names are looked up (default %(default)s)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--level", type=float, default=0.95,
                   help="confidence level; 1 - level is the family-wise error of the verdicts")
    p.add_argument("--margin", type=float, default=None,
                   help="equivalence margin in metric units (default per metric: auc/froc_pauc 0.01, mae_um 5)")


def check_stats_options(args: argparse.Namespace) -> None:
    from tunedepth.errors import ConfigError

    if args.bootstrap < 1:
        raise ConfigError(f"--bootstrap must be >= 1 (e.g. 1000), got {args.bootstrap}")
    if not 0.5 <= args.level < 1.0:
        raise ConfigError(f"--level must be in [0.5, 1) (e.g. 0.95), got {args.level}")
    if args.margin is not None and not args.margin >= 0:
        raise ConfigError(f"--margin must be >= 0 in the metric's units (e.g. 0.01 for AUC), got {args.margin}")


def register(sub) -> None:
    p = sub.add_parser("report", help="rebuild a run's summary.parquet, report.md and plots from its files")
    p.add_argument("run", metavar="NAME|PATH", help="a run folder, or a run name under --results-dir")
    add_stats_options(p)
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tunedepth.analysis import build_report, format_answer, resolve_run

    check_stats_options(args)
    run_dir = resolve_run(args.run, args.results_dir)
    analysis = build_report(run_dir, n_boot=args.bootstrap, seed=args.seed, level=args.level,
                            plots=not args.no_plots, margin=args.margin)
    c = analysis.config
    print(f"\nbest tuning depth per data budget ({c.get('app')}, {c.get('backbone')}, source {c.get('source')}; "
          f"selected by validation, scored on the test split):")
    print(format_answer(analysis))
    for note in analysis.notes:
        print(f"note: {note}")
    print(f"\nreport: {run_dir / 'report.md'}  (summary.parquet, plots/)")
    return 0 if analysis.answers else 1
