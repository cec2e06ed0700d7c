"""``tunedepth demo``: the depth x budget search on an app's embedded data, or on your own with ``--data``."""
from __future__ import annotations

import argparse

from tunedepth.cli.flags import setting_flag


def register(sub) -> None:
    p = sub.add_parser("demo", help="depth x budget search on an app's embedded data (default colonoscopy-frames) "
                                    "or on real data (--data)")
    p.add_argument("--smoke", action="store_true", help="tiny version (under a minute)")
    setting_flag(p, "app")
    setting_flag(p, "data", help="real data: a folder, CSV, .npz or datalist JSON (see README, 'Applications and "
                                 "your own data'); default: the app's generator")
    setting_flag(p, "data_samples")
    p.add_argument("--seed", type=int, default=0,
                   help="shift every trial seed by N and permute the lr grid's order (data and splits stay fixed): "
                        "rerun with another N to check the answer is repeatable")
    p.add_argument("--name", default=None, help="run name under results/ (default demo / demo-smoke)")
    setting_flag(p, "results_dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tunedepth.cli.run import print_outcome
    from tunedepth.config import SearchConfig

    default_name = "demo-smoke" if args.smoke else "demo"
    if args.app != "colonoscopy-frames" or args.data:
        default_name = f"{default_name}-{args.app}"
    if args.seed:
        default_name = f"{default_name}-seed{args.seed}"
    cfg = demo_config(SearchConfig(name=args.name or default_name, app=args.app, data=args.data,
                                   data_samples=args.data_samples, results_dir=args.results_dir), args.smoke, args.seed)
    from tunedepth.hpo.runner import run_search

    return print_outcome(run_search(cfg), cfg)


# The demo: a documented subset of the full protocol (the defaults of `tunedepth run`: every depth x 5 budgets x
# 5 lrs on the app's 1000 frames at the backbone's own input size). Every trial keeps the protocol: it trains until
# validation plateaus (45 optimizer steps, three validations, without a better score) or hits the cap of 20
# validations (300 steps); 2 lrs per depth (scratch its own range) race on evidence, the survivors get their
# second seed; equal optimizer steps per validation at every budget. What it costs: a trial of a depth that trains
# the whole network runs 5-17 validations of 15 steps, ~5 s each on one of 2 cores (64 px, batch 16: a step is
# 0.19 s alone, vs 0.60 s at 96 px and batch 32); at the demo's validation size the race rarely has the evidence
# to drop an lr, so every lr runs both seeds. 3 budgets x 3 lrs measured 17 min; this is a quarter of it.
DEMO: dict = {"budgets": (0.05, 1.0), "epochs": 20, "epoch_steps": 15, "patience_steps": 45, "samples": 2,
              "input_size": 64, "batch_size": 16}
DEMO_FRAMES = 360  # colonoscopy-frames units generated for the default demo (the app's own default: 1000)
DEMO_TUNED_DEPTHS = 3  # efficientnet-lite0: head, b4-head, stem-head (+ scratch)


def demo_config(base, smoke: bool = False, seed: int = 0):
    """The demo's search: sized to run in about 6 min on 2 CPU cores (``--smoke``: ~1 min). See README, "Demo"."""
    from tunedepth.config import smoke_config

    if smoke:
        cfg = smoke_config(base)
    else:
        own = base.app == "colonoscopy-frames" and not base.data and not base.data_samples  # the embedded default
        cfg = base.replace(**DEMO, depths=demo_depths(base.backbone), data_samples=DEMO_FRAMES if own else
                           base.data_samples)
    return cfg.replace(seeds=tuple(s + seed for s in cfg.seeds), search_seed=seed)


def demo_depths(backbone: str, n_tuned: int = DEMO_TUNED_DEPTHS) -> tuple[str, ...]:
    """``n_tuned`` fine-tuning depths spread from the head to the whole network (``tunedepth.space.spread``),
    plus scratch."""
    from tunedepth.models import depth_names, get_backbone
    from tunedepth.space import SCRATCH, spread

    tuned = [d for d in depth_names(get_backbone(backbone)) if d != SCRATCH]
    return tuple(spread(tuned, n_tuned)) + (SCRATCH,)
