"""``tunedepth run`` (a search from flags and/or a YAML file), ``resume NAME`` and ``status NAME``."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml

from tunedepth.cli.flags import run_argument
from tunedepth.errors import ConfigError

_SPECIAL = ("smoke", "dashboard")  # store_true flags


def flags() -> dict[str, dataclasses.Field]:
    """``--flag`` -> SearchConfig field, for every field (trial settings included): one flag per key."""
    from tunedepth.config import SearchConfig

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
    run_argument(r)
    r.set_defaults(func=resume)

    s = sub.add_parser("status", help="progress of a run, read from disk")
    run_argument(s)
    s.set_defaults(func=status)


def config_from_args(args: argparse.Namespace):
    from tunedepth.config import build_config

    values: dict = {}
    if args.config:
        loaded = read_config_file(Path(args.config))
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


def read_config_file(path: Path) -> dict:
    """A --config file's mapping of SearchConfig keys; every problem with the file is one ``ConfigError`` line."""
    if not path.exists():
        raise ConfigError(f"config file {path} not found; pass an existing YAML file to --config")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder, not a file; pass a YAML file to --config, "
                          f"e.g. {path / 'config.yaml'}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read ({e.strerror or type(e).__name__}); check its "
                          f"permissions or pass another file to --config") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}: "
                          f"a binary file?); pass a YAML file of SearchConfig keys to --config") from None
    if "\x00" in text:
        raise ConfigError(f"config file {path} holds NUL bytes (a binary file?); pass a YAML file of SearchConfig "
                          f"keys to --config")
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML ({getattr(e, 'problem', None) or e}{where}); "
                          f"fix it or pass flags instead") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of SearchConfig keys (key: value lines), got a "
                          f"{type(loaded).__name__}; e.g. 'epochs: 2'")
    bad = [k for k in loaded if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"config file {path} has key(s) {', '.join(map(repr, bad))} that are not names; its keys "
                          f"are SearchConfig fields, e.g. 'epochs: 2'")
    return loaded


def diverged_range(trials) -> str:
    """'' unless every trial of a learning-rate range diverged: then which range ("of the fine-tuned depths",
    "of depth scratch" or "" for every trial of the run), in words."""
    if trials is None or trials.empty or "status" not in trials:
        return ""
    last = trials.groupby("trial_id").agg(depth=("depth", "first"), status=("status", "last"))
    gone = last["status"] == "diverged"
    if gone.all():
        return "of the run"
    scratch = last["depth"] == "scratch"
    if (~scratch).any() and gone[~scratch].all():
        return "of the fine-tuned depths (--lr-min/--lr-max)"
    if scratch.any() and gone[scratch].all():
        return "of depth scratch (--scratch-lr-min/--scratch-lr-max)"
    return ""


def print_outcome(outcome, cfg) -> int:
    """The answer of a finished run: the test-set report when there is one, else the validation table."""
    from tunedepth.hpo.runner import answer_text

    print()
    if outcome.report is None:
        print(f"best tuning depth per data budget ({cfg.app}, {cfg.backbone}, source {cfg.source}; by validation):")
        print(answer_text(outcome))
    else:
        from tunedepth.analysis import format_answer

        print(f"best tuning depth per data budget ({cfg.app}, {cfg.backbone}, source {cfg.source}; "
              f"selected by validation, scored on the test split):")
        print(format_answer(outcome.report))
        for note in outcome.report.notes:
            print(f"note: {note}")
    for e in outcome.errors:
        print(f"failed: {e}")
    print(f"\nresults: {outcome.run_dir}  (report.md, summary.parquet, predictions.parquet, plots/, trials.parquet, "
          f"config.yaml)   wall {outcome.wall_s:.0f}s")
    diverged = diverged_range(outcome.trials)
    if diverged:
        print(
            f"tunedepth: error: every trial {diverged} diverged (NaN/inf loss): lower the lr range and run again "
            f"(e.g. {'--scratch-lr-min 3e-3 --scratch-lr-max 3e-2' if 'scratch' in diverged else '--lr-min 3e-4 --lr-max 3e-3'}); "  # noqa: E501
            f"this run's files stay readable: `tunedepth status "
            f"{outcome.run_dir.name}`, `tunedepth report {outcome.run_dir}`",
            file=sys.stderr,
        )
        return 2
    if outcome.errors:
        print(f"tunedepth: error: {len(outcome.errors)} trial(s) ended in error (listed above, after one retry each); "
              f"fix the cause, then `tunedepth resume {outcome.run_dir.name}` reruns them", file=sys.stderr)
        return 1
    return 1 if outcome.validation.empty else 0


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    from tunedepth.hpo.runner import run_search

    return print_outcome(run_search(cfg), cfg)


def resume(args: argparse.Namespace) -> int:
    from tunedepth.config import load_config
    from tunedepth.run_files import REPORT_FILE, finished_trials, run_dir_of

    cfg = load_config(args.run, args.results_dir)
    done = finished_trials(run_dir_of(cfg))
    if done is not None:
        print(f"{cfg.name}: finished ({done} trials; answer in {run_dir_of(cfg) / REPORT_FILE}); nothing to resume. "
              f"`tunedepth report {cfg.name}` rebuilds the report; a new search needs `tunedepth run`")
        return 0
    from tunedepth.hpo.runner import resume_search

    return print_outcome(resume_search(args.run, args.results_dir), cfg)


def status(args: argparse.Namespace) -> int:
    from tunedepth.analysis.status import run_status

    print(run_status(args.run, args.results_dir))
    return 0
