"""The ``tunedepth`` command line."""
from __future__ import annotations

import argparse
import sys

from trainables.config import ConfigError
from trainables.metrics import MetricError


def _cmd_demo(args: argparse.Namespace) -> int:
    from search.config import SearchConfig, smoke_config
    from search.runner import answer_text, run_search

    cfg = SearchConfig(name=args.name or ("demo-smoke" if args.smoke else "demo"), results_dir=args.results_dir)
    if args.smoke:
        cfg = smoke_config(cfg)
    outcome = run_search(cfg)
    print()
    print(f"best tuning depth per data budget ({cfg.app}, {cfg.backbone}, source {cfg.source}; "
          f"validation {outcome.trials['metric'].iloc[0] if len(outcome.trials) else ''}):")
    print(answer_text(outcome, "auc"))
    for e in outcome.errors:
        print(f"failed: {e}")
    print(f"\nresults: {outcome.run_dir}  (trials.parquet, config.yaml)   wall {outcome.wall_s:.0f}s")
    return 1 if outcome.table.empty else 0


def _cmd_depths(args: argparse.Namespace) -> int:
    from trainables.models import depth_names, get_backbone

    for name in depth_names(get_backbone(args.backbone)):
        print(name)
    return 0


def _cmd_apps(args: argparse.Namespace) -> int:
    from trainables.apps import APPS

    for name in sorted(APPS):
        app = APPS[name]
        print(f"{name:<22} {app.metric:<6} {app.mode:<4} {app.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunedepth", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="depth x budget search on the embedded colonoscopy-frames app")
    d.add_argument("--smoke", action="store_true", help="tiny version (about a minute)")
    d.add_argument("--name", default=None, help="run name under results/ (default demo / demo-smoke)")
    d.add_argument("--results-dir", default="results")
    d.set_defaults(func=_cmd_demo)
    k = sub.add_parser("depths", help="list a backbone's tuning depths, shallowest first")
    k.add_argument("backbone")
    k.set_defaults(func=_cmd_depths)
    a = sub.add_parser("apps", help="list the registered applications")
    a.set_defaults(func=_cmd_apps)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, MetricError) as e:
        print(f"tunedepth: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tunedepth: interrupted; finished trials are kept under results/", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
