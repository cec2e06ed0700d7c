"""``tunedepth demo``: the depth x budget search on the embedded colonoscopy-frames app."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("demo", help="depth x budget search on the embedded colonoscopy-frames app")
    p.add_argument("--smoke", action="store_true", help="tiny version (under a minute)")
    p.add_argument("--name", default=None, help="run name under results/ (default demo / demo-smoke)")
    p.add_argument("--results-dir", default="results")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from search.commands.run import print_outcome
    from search.config import SearchConfig, smoke_config
    from search.runner import run_search

    cfg = SearchConfig(name=args.name or ("demo-smoke" if args.smoke else "demo"), results_dir=args.results_dir)
    if args.smoke:
        cfg = smoke_config(cfg)
    return print_outcome(run_search(cfg), cfg)
