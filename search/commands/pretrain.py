"""``tunedepth pretrain --source S --backbone B``: make a source's weights ready (pretrain, download, check)."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        help="prepare a source's pretrained weights for a backbone (fractal: pretrain once and cache)",
        description="fractal: pretrain the backbone on FractalDB-style fractal categories, deterministically from "
                    "--seed, offline, cached by content hash under $TUNEDEPTH_CACHE (searches use seed 0; other "
                    "seeds via source file:PATH). imagenet: use or download torchvision's file into $TORCH_HOME. "
                    "file:PATH: check that the file fits the backbone.",
    )
    p.add_argument("--source", default="fractal", help="fractal (default), imagenet or file:PATH")
    p.add_argument("--backbone", required=True, help="a backbone name (see `tunedepth depths BACKBONE`)")
    p.add_argument("--smoke", action="store_true", help="fractal: the small recipe the smoke searches use")
    p.add_argument("--seed", type=int, default=0, help="fractal: seed of categories, rendering and training")
    p.add_argument("--force", action="store_true", help="fractal: pretrain again even if cached")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trainables.config import ConfigError
    from trainables.models import get_backbone
    from trainables.models.fractal import FractalRecipe, fractal_weights
    from trainables.models.sources import get_source_weights, imagenet_file

    spec = get_backbone(args.backbone)
    if args.source == "fractal":
        recipe = FractalRecipe.smoke(args.seed) if args.smoke else FractalRecipe(seed=args.seed)
        state, path = fractal_weights(spec, recipe, force=args.force)
    elif args.source == "scratch":
        raise ConfigError("source scratch needs no weights; pretrain takes --source fractal, imagenet or file:PATH")
    else:
        state = get_source_weights(args.source, spec)
        path = imagenet_file(spec)[1] if args.source == "imagenet" else args.source[len("file:"):]
    n = sum(v.numel() for v in state.values())
    print(f"{args.source} weights for {spec.name}: {len(state)} tensors, {n:,} values, fit the backbone: {path}")
    if args.source == "fractal" and (args.seed != 0):
        print(f"searches use seed 0; use these with --source file:{path}")
    return 0
