"""Flags shared by the subcommands, each declared once.

A flag that sets a ``SearchConfig`` field (``--app``, ``--data``, ``--data-samples``, ``--results-dir``, ...) takes
its help, default and choices from that field (``setting_flag``), as ``tunedepth run`` does for every field; a run
folder argument is one positional ``run`` plus ``--results-dir`` (``run_argument``).
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any


def field_of(name: str) -> dataclasses.Field:
    from tunedepth.config import SearchConfig

    return {f.name: f for f in dataclasses.fields(SearchConfig)}[name]


def setting_flag(p: argparse.ArgumentParser, name: str, **override: Any) -> None:
    """``--name`` for the SearchConfig field ``name``: its type, default, choices and help (``override`` wins)."""
    f = field_of(name)
    kind = type(f.default) if isinstance(f.default, (int, float, str)) and not isinstance(f.default, bool) else str
    kw: dict[str, Any] = {"type": kind, "default": f.default, "help": f.metadata.get("help", "")}
    if f.metadata.get("choices"):
        kw["choices"] = f.metadata["choices"]
    kw.update(override)
    p.add_argument("--" + name.replace("_", "-"), dest=name, **kw)


def run_argument(p: argparse.ArgumentParser) -> None:
    """The run a subcommand reads: a run folder, or a run name under ``--results-dir``."""
    p.add_argument("run", metavar="NAME|PATH", help="a run folder, or a run name under --results-dir")
    setting_flag(p, "results_dir", help="where run names are looked up (default %(default)s)")
