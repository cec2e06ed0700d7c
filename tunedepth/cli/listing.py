"""``tunedepth depths BACKBONE``, ``tunedepth apps`` and ``tunedepth backbones``."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("depths", help="list a backbone's tuning depths, shallowest first")
    p.add_argument("backbone", help="a backbone name (`tunedepth backbones` lists them) or timm:NAME")
    p.set_defaults(func=depths)
    p = sub.add_parser("apps", help="list the registered applications")
    p.set_defaults(func=apps)
    p = sub.add_parser("backbones", help="list the registered backbones (any timm model also works as timm:NAME)")
    p.set_defaults(func=backbones)


def depths(args: argparse.Namespace) -> int:
    from tunedepth.models import depth_names, get_backbone

    for name in depth_names(get_backbone(args.backbone)):
        print(name)
    return 0


def apps(args: argparse.Namespace) -> int:
    from tunedepth.apps import APPS
    from tunedepth.models import BACKBONES

    for name in sorted(APPS):
        app = APPS[name]
        print(f"{name:<20} {app.kind:<14} {app.metric:<9} {app.mode:<4} {app.description}")
        if app.loaders:
            print(f"{'':<20} --data layouts: {', '.join(app.loaders)}")
        fits = [b for b, spec in BACKBONES.items() if spec.output == app.target]
        print(f"{'':<20} --backbone: {', '.join(sorted(fits))}")
    return 0


def backbones(args: argparse.Namespace) -> int:
    from tunedepth.models import BACKBONES

    for name in sorted(BACKBONES):
        spec = BACKBONES[name]
        print(f"{name:<22} {spec.output:<5} {spec.input_size:>4}px {len(spec.groups):>3} groups  {spec.description}")
    return 0
