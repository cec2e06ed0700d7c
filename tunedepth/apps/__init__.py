"""The applications: generators of embedded data, the samples each app cuts out of units, and the registry.

An app's data comes from its embedded generator (``generate``) or from real files (``tunedepth.data.loaders``,
chosen by the app's ``kind``); either way ``make_samples`` cuts the network's samples out of the units of
each split, and ``tunedepth.data.build`` does the rest (near-duplicates, grouped splits, budgets).
Dependency order: errors -> data -> loaders -> apps (``tunedepth.data`` and ``tunedepth.data.loaders`` never
import this package).
"""
from tunedepth.apps import builtin  # noqa: F401  (registers the paper's four apps)
from tunedepth.apps.build import build_split_data  # noqa: F401
from tunedepth.apps.registry import (  # noqa: F401
    APPS,
    TARGETS,
    App,
    DataSize,
    get_app,
    list_apps,
    register_app,
)
