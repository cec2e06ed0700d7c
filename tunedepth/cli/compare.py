"""``tunedepth compare A B``: two runs side by side, per budget: best depth, test metric, difference."""
from __future__ import annotations

import argparse

from tunedepth.cli.report import add_stats_options, check_stats_options


def register(sub) -> None:
    p = sub.add_parser("compare", help="two runs side by side: best depth and test metric per budget, differences")
    p.add_argument("a", metavar="A", help="run folder or name (the reference)")
    p.add_argument("b", metavar="B", help="run folder or name (compared with A: differences are B - A)")
    add_stats_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tunedepth.analysis import analyse, resolve_run
    from tunedepth.analysis.compare import compare_runs, format_comparison

    check_stats_options(args)
    a = analyse(resolve_run(args.a, args.results_dir), args.bootstrap, args.seed, args.level, args.margin)
    b = analyse(resolve_run(args.b, args.results_dir), args.bootstrap, args.seed, args.level, args.margin)
    comparison = compare_runs(a, b, seed=args.seed)
    print(format_comparison(comparison))
    return 0
