"""``tunedepth demo``: the depth x budget search on an app's embedded data, or on your own with ``--data``."""
from __future__ import annotations

import argparse

# The default demo's size, to finish within 6 minutes on 2 CPU cores (README, "What the demo does"):
# EfficientNet-Lite0 at 64 px is ~10x the work of tiny-alexnet per image, so the demo tunes five depths (head
# only, the top two and four stages, every layer, scratch) at five budgets on 600 frames (1080 training samples)
DEMO_DEPTHS = ("head", "b6-head", "b4-head", "stem-head", "scratch")
DEMO_BUDGETS = (0.05, 0.1, 0.25, 0.5, 1.0)
DEMO_FRAMES = 600  # colonoscopy-frames units generated (the app's own default: 1000)


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
    samples = args.data_samples or (DEMO_FRAMES if args.app == "colonoscopy-frames" and not args.data else 0)
    cfg = SearchConfig(name=args.name or default_name, app=args.app, data=args.data, data_samples=samples,
                       depths=DEMO_DEPTHS, budgets=DEMO_BUDGETS, results_dir=args.results_dir)
    if args.smoke:  # the smoke size picks its own depths and data
        cfg = smoke_config(cfg.replace(depths=(), data_samples=args.data_samples))
    return print_outcome(run_search(cfg), cfg)
