"""The ``tunedepth`` command line: subcommands live in ``tunedepth/cli/``, one module each."""
from __future__ import annotations

import argparse
import os
import sys

from tunedepth.cli import compare, demo, export, extend, listing, pretrain, report, run
from tunedepth.errors import ConfigError, MetricError
from tunedepth.hpo.guard import Interrupted

COMMANDS = [
    demo,
    run,
    extend,
    listing,
    pretrain,
    report,
    compare,
    export,
]  # each module's register(subparsers) adds its subcommand(s)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the bad flag or value and the way to see the choices."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; `{self.prog} --help` lists the flags\n")


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default and its choices, unless its text already states them."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.choices and action.metavar and not any(str(c) in text for c in action.choices):
            text += " (choices: " + ", ".join(map(str, action.choices)) + ")"
        if (action.option_strings and "default" not in text and action.default is not None
                and action.default is not False and action.default is not argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="tunedepth", description="depth x data-budget fine-tuning search on Ray Tune",
                      formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    for parser in sub.choices.values():
        parser.formatter_class = HelpFormatter
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, already printed in one line)
        return int(e.code or 0)
    try:
        return args.func(args)
    except (ConfigError, MetricError) as e:
        print(f"tunedepth: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:  # Ctrl-C / SIGTERM during the search: results so far are kept, no answer presented
        print(f"tunedepth: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tunedepth: interrupted; finished trials are kept under results/", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`tunedepth backbones | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141


if __name__ == "__main__":
    sys.exit(main())
