"""``tunedepth demo``: the depth x budget search on an app's embedded data, or on your own with ``--data``."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("demo", help="depth x budget search on an app's embedded data (default colonoscopy-frames) "
                                    "or on real data (--data)")
    p.add_argument("--smoke", action="store_true", help="tiny version (under a minute)")
    p.add_argument("--app", default="colonoscopy-frames", help="application (`tunedepth apps` lists them)")
    p.add_argument("--data", default="", help="real data: a folder, CSV, .npz or datalist JSON (see README, "
                                              "'Applications and your own data'); default: the app's generator")
    p.add_argument("--data-samples", type=int, default=0,
                   help="units (frames/images/volumes) to generate, or at most to use from --data (0 = default)")
    p.add_argument("--name", default=None, help="run name under results/ (default demo / demo-smoke)")
    p.add_argument("--results-dir", default="results")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from search.commands.run import print_outcome
    from search.config import SearchConfig, smoke_config
    from search.runner import run_search

    default_name = "demo-smoke" if args.smoke else "demo"
    if args.app != "colonoscopy-frames" or args.data:
        default_name = f"{default_name}-{args.app}"
    cfg = SearchConfig(name=args.name or default_name, app=args.app, data=args.data,
                       data_samples=args.data_samples, results_dir=args.results_dir)
    if args.smoke:
        cfg = smoke_config(cfg)
    return print_outcome(run_search(cfg), cfg)
