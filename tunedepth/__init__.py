"""tunedepth as a library: ``search(config) -> Result`` runs a depth x budget search (what ``tunedepth run``
does), ``load(run) -> Result`` reads a finished one back (no Ray, no training code).

    import tunedepth
    result = tunedepth.search(app="colonoscopy-frames", smoke=True, name="scripted", results_dir="/tmp/runs")
    print(result.answer)          # per data budget: the recommended depth, its test metric and interval
    result.summary, result.trials, result.plots, result.path
    tunedepth.load("/tmp/runs/scripted")   # the same Result, later, from the run folder
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names below, for type checkers; at run time they load on first use (PEP 562)
    from tunedepth.api import Result, load, search
    from tunedepth.config import SearchConfig
    from tunedepth.errors import ConfigError

__all__ = ["search", "load", "Result", "SearchConfig", "ConfigError"]

_HOMES = {"search": "tunedepth.api", "load": "tunedepth.api", "Result": "tunedepth.api",
          "SearchConfig": "tunedepth.config", "ConfigError": "tunedepth.errors"}


def __getattr__(name: str) -> object:
    """``tunedepth.search`` and the rest, imported when first used: importing a sub-package (the metrics, the
    analysis) does not pull in the search's settings, Ray or torch through this facade."""
    if name in _HOMES:
        import importlib

        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tunedepth' has no attribute {name!r}")
