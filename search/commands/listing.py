"""``tunedepth depths BACKBONE`` and ``tunedepth apps``."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("depths", help="list a backbone's tuning depths, shallowest first")
    p.add_argument("backbone")
    p.set_defaults(func=depths)
    p = sub.add_parser("apps", help="list the registered applications")
    p.set_defaults(func=apps)


def depths(args: argparse.Namespace) -> int:
    from trainables.models import depth_names, get_backbone

    for name in depth_names(get_backbone(args.backbone)):
        print(name)
    return 0


def apps(args: argparse.Namespace) -> int:
    from trainables.apps import APPS
    from trainables.models import BACKBONES

    for name in sorted(APPS):
        app = APPS[name]
        print(f"{name:<20} {app.kind:<14} {app.metric:<9} {app.mode:<4} {app.description}")
        if app.loaders:
            print(f"{'':<20} --data layouts: {', '.join(app.loaders)}")
        fits = [b for b, spec in BACKBONES.items() if spec.output == app.target]
        print(f"{'':<20} --backbone: {', '.join(sorted(fits))}")
    return 0
