"""tunedepth as a library: ``search(config) -> Result`` runs a depth x budget search (what ``tunedepth run``
does), ``load(run) -> Result`` reads a finished one back (no Ray, no training code).

    import tunedepth
    result = tunedepth.search(app="colonoscopy-frames", smoke=True, name="scripted", results_dir="/tmp/runs")
    print(result.answer)          # per data budget: the recommended depth, its test metric and interval
    result.summary, result.trials, result.plots, result.path
    tunedepth.load("/tmp/runs/scripted")   # the same Result, later, from the run folder
"""
from search.config import SearchConfig  # noqa: F401
from trainables.errors import ConfigError  # noqa: F401
from tunedepth.api import Result, load, search  # noqa: F401

__all__ = ["search", "load", "Result", "SearchConfig", "ConfigError"]
