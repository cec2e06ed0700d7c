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
    from search.config import SearchConfig, smoke_config
    from search.runner import answer_text, run_search

    cfg = SearchConfig(name=args.name or ("demo-smoke" if args.smoke else "demo"), results_dir=args.results_dir)
    if args.smoke:
        cfg = smoke_config(cfg)
    outcome = run_search(cfg)
    print()
    if outcome.report is None:
        print(f"best tuning depth per data budget ({cfg.app}, {cfg.backbone}, source {cfg.source}; by validation):")
        print(answer_text(outcome))
    else:
        from search.report import format_answer

        print(f"best tuning depth per data budget ({cfg.app}, {cfg.backbone}, source {cfg.source}; "
              f"selected by validation, scored on the test split):")
        print(format_answer(outcome.report))
        for note in outcome.report.notes:
            print(f"note: {note}")
    for e in outcome.errors:
        print(f"failed: {e}")
    print(f"\nresults: {outcome.run_dir}  (report.md, summary.parquet, predictions.parquet, plots/, trials.parquet, "
          f"config.yaml)   wall {outcome.wall_s:.0f}s")
    return 1 if outcome.table.empty else 0
