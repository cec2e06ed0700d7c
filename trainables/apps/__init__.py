"""The applications: generators of embedded data, the samples each app cuts out of units, and the registry.

An app's data comes from its embedded generator (``generate``) or from real files (``trainables.loaders``,
chosen by the app's ``kind``); either way ``make_samples`` cuts the network's samples out of the units of
each split, and ``trainables.data.build`` does the rest (near-duplicates, grouped splits, budgets).
Dependency order: errors -> data -> loaders -> apps (``trainables.data`` and ``trainables.loaders`` never
import this package).
"""
from trainables.apps import builtin  # noqa: F401  (registers the paper's four apps)
from trainables.apps.build import build_split_data  # noqa: F401
from trainables.apps.registry import (  # noqa: F401
    APPS,
    TARGETS,
    App,
    DataSize,
    check_backbone,
    get_app,
    list_apps,
    register_app,
)
