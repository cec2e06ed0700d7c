"""The ``tunedepth`` command line: subcommands live in ``search/commands/``, one module each."""
from __future__ import annotations

import argparse
import sys

from search.commands import compare, demo, listing, pretrain, report, run
from search.guard import Interrupted
from trainables.config import ConfigError
from trainables.metrics import MetricError

COMMANDS = [demo, run, listing, pretrain, report, compare]  # each module's register(subparsers) adds its subcommand(s)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunedepth", description="depth x data-budget fine-tuning search on Ray Tune")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
