"""``tunedepth run`` (a search from flags and/or a YAML file), ``resume NAME`` and ``status NAME``."""
from __future__ import annotations

import argparse
import sys
import dataclasses
from pathlib import Path

import yaml

from trainables.errors import ConfigError

_SPECIAL = ("smoke", "dashboard")  # store_true flags


def flags() -> dict[str, dataclasses.Field]:
    """``--flag`` -> SearchConfig field, for every field (trial settings included): one flag per key."""
    from search.config import SearchConfig

    return {"--" + f.name.replace("_", "-"): f for f in dataclasses.fields(SearchConfig) if f.name not in _SPECIAL}


def _help(f: dataclasses.Field) -> str:
    """The setting's help, then "(comma-separated)", its choices and its default (flags default to None here,
    so that a --config file's keys are not overridden: the default shown is SearchConfig's)."""
    meta = f.metadata
    default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
    extra = " (comma-separated)" if meta.get("item") else ""
    choices = f" (choices: {', '.join(meta['choices'])})" if meta.get("choices") else ""
    shown = default if default not in ("", ()) else "empty"
    return f"{meta.get('help', '')}{extra}{choices} (default: {shown!s})".replace("%", "%%")


def register(sub) -> None:
    p = sub.add_parser("run", help="run a depth x budget search (flags override --config YAML keys)")
    p.add_argument("--config", help="YAML file of SearchConfig keys, i.e. these flags' names with '_' for '-' "
                                    "(unknown keys are rejected; flags given here override its keys)")
    for flag, f in flags().items():
        p.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=_help(f),
                       choices=f.metadata.get("choices"))
    p.add_argument("--smoke", action="store_true", default=None, help="tiny data, 2 budgets, 4 depths, short trials")
    p.add_argument("--dashboard", action="store_true", default=None,
                   help="local Ray with its dashboard on 127.0.0.1:8265")
    p.set_defaults(func=run)

    r = sub.add_parser("resume", help="continue an interrupted run (Tuner.restore)")
    r.add_argument("run", help="run name under --results-dir, or a run folder")
    r.add_argument("--results-dir", default="results", help="where run names are looked up")
    r.set_defaults(func=resume)

    s = sub.add_parser("status", help="progress of a run, read from disk")
    s.add_argument("run", help="run name under --results-dir, or a run folder")
    s.add_argument("--results-dir", default="results", help="where run names are looked up")
    s.set_defaults(func=status)


def config_from_args(args: argparse.Namespace):
    from search.config import build_config

    values: dict = {}
    if args.config:
        path = Path(args.config)
        if not path.exists():
            raise ConfigError(f"config file {path} not found; pass an existing YAML file to --config")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"config file {path} is not valid YAML ({getattr(e, 'problem', None) or e}{where}); "
                              f"fix it or pass flags instead") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of SearchConfig keys")
        values.update(loaded)
    for flag, f in flags().items():
        raw = getattr(args, f.name)
        if raw is None:
            continue
        item = f.metadata.get("item")
        try:
            values[f.name] = [item(v) for v in raw.split(",") if v] if item else raw  # SearchConfig coerces the rest
        except ValueError:
            raise ConfigError(f"{flag} {raw!r}: expected comma-separated {item.__name__} values") from None
    for flag in ("smoke", "dashboard"):
        if getattr(args, flag):
            values[flag] = True
    return build_config(values)


def print_outcome(outcome, cfg) -> int:
    """The answer of a finished run: the test-set report when there is one, else the validation table."""
    from search.runner import answer_text

    print()
    if outcome.report is None:
        print(f"best tuning depth per data budget ({cfg.app}, {cfg.backbone}, source {cfg.source}; by validation):")
        print(answer_text(outcome))
    else:
        from search.analysis import format_answer

        print(f"best tuning depth per data budget ({cfg.app}, {cfg.backbone}, source {cfg.source}; "
              f"selected by validation, scored on the test split):")
        print(format_answer(outcome.report))
        for note in outcome.report.notes:
            print(f"note: {note}")
    for e in outcome.errors:
        print(f"failed: {e}")
    print(f"\nresults: {outcome.run_dir}  (report.md, summary.parquet, predictions.parquet, plots/, trials.parquet, "
          f"config.yaml)   wall {outcome.wall_s:.0f}s")
    if outcome.errors:
        print(f"tunedepth: error: {len(outcome.errors)} trial(s) ended in error (listed above, after one retry each); "
              f"fix the cause, then `tunedepth resume {outcome.run_dir.name}` reruns them", file=sys.stderr)
        return 1
    return 1 if outcome.table.empty else 0


def run(args: argparse.Namespace) -> int:
    import tunedepth

    cfg = config_from_args(args)
    return print_outcome(tunedepth.search(cfg).outcome, cfg)


def resume(args: argparse.Namespace) -> int:
    from search.run_files import REPORT_FILE, finished_trials, load_config, run_dir_of

    cfg = load_config(args.run, args.results_dir)
    done = finished_trials(run_dir_of(cfg))
    if done is not None:
        print(f"{cfg.name}: finished ({done} trials; answer in {run_dir_of(cfg) / REPORT_FILE}); nothing to resume. "
              f"`tunedepth report {cfg.name}` rebuilds the report; a new search needs `tunedepth run`")
        return 0
    from search.runner import resume_search

    return print_outcome(resume_search(args.run, args.results_dir), cfg)


def status(args: argparse.Namespace) -> int:
    from search.status import run_status

    print(run_status(args.run, args.results_dir))
    return 0
