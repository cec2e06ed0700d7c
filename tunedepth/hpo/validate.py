"""The whole search configuration checked before any data is built, weights read, folder written or Ray started.

``check_search`` runs every check that needs neither the data's content nor Ray, in the order a user would fix
them: the run name, the cluster address (reachable, token accepted), app and backbone, schedule, depths of the
backbone, one trial's settings, the source's name (a ``file:`` path exists), the data path and its layout (not its
files' content: that needs reading
them), free space on the results folder's disk, the searcher's plan. A failure is one ``ConfigError`` line naming the
fix; nothing is left behind.
What can only be checked on the data (corrupt images, a budget too small for the split) fails in the data
build that follows, still before any folder is written.
"""
from __future__ import annotations

from dataclasses import dataclass

from tunedepth.apps import App
from tunedepth.config import SearchConfig
from tunedepth.errors import ConfigError
from tunedepth.hpo.guard import check_address, check_run_name, cluster_address
from tunedepth.models import SCRATCH, depth_names
from tunedepth.models.registry import BackboneSpec
from tunedepth.models.sources import check_source_name
from tunedepth.settings import TrialConfig
from tunedepth.training.resolved import resolve_network


@dataclass
class Checked:
    app: App
    spec: BackboneSpec
    depths: list[str]


def resolve_depths(cfg: SearchConfig, spec: BackboneSpec) -> list[str]:
    names = depth_names(spec)
    if cfg.depths:
        unknown = [d for d in cfg.depths if d not in names]
        if unknown:
            raise ConfigError(f"unknown depth(s) {unknown} for {spec.name}; `tunedepth depths {spec.name}` lists them")
        return list(cfg.depths)
    if cfg.smoke:
        tuned = names[:-1]
        return [tuned[i] for i in sorted({0, len(tuned) // 2, len(tuned) - 1})] + [SCRATCH]
    return names


def check_data_path(cfg: SearchConfig, app: App) -> None:
    """``--data`` exists and is a layout the app reads (its files are read in the data build); without it, the
    app must have embedded data."""
    if cfg.data:
        from tunedepth.data.loaders import detect_layout

        detect_layout(cfg.data, app)
    elif app.generate is None:
        raise ConfigError(
            f"app {app.name!r} has no embedded data; give --data PATH (`tunedepth apps` lists its layouts)"
        )


MIN_FREE_MB = 64  # a smoke run writes a few MB (data splits, checkpoints, Tune's state); less free space fails


def check_free_space(results_dir: str, storage: str = "", min_mb: int = MIN_FREE_MB) -> None:
    """The disk of the results folder (its nearest existing parent) has ``min_mb`` MB free: a run on a full disk
    stops here in one line, not in a storm of Tune sync errors (a full disk later is ``run_files.DiskFull``)."""
    import shutil
    from pathlib import Path

    if storage and "://" in storage:
        return
    place = Path(results_dir).absolute()
    while not place.exists() and place != place.parent:
        place = place.parent
    free = shutil.disk_usage(place).free / 2**20
    if free < min_mb:
        raise ConfigError(f"only {free:.1f} MB free on the disk of {results_dir} (a run needs at least {min_mb} MB "
                          f"for its files and checkpoints): free space there, or give --results-dir on another disk")


def check_search(cfg: SearchConfig, new_run: bool = True) -> Checked:
    """Everything about ``cfg`` that can be checked without its data or Ray (see the module docstring)."""
    if new_run:
        check_run_name(cfg.name)
    check_address(cluster_address(cfg.address))
    app, spec = resolve_network(cfg)  # as every trial resolves it (tunedepth.training.resolved)
    depths = resolve_depths(cfg, spec)
    TrialConfig.from_dict({**cfg.trial_settings(), "depth": depths[0], "budget": min(cfg.budgets), "lr": cfg.lr_min,
                            "schedule": cfg.schedules[0]})
    if any(d != SCRATCH for d in depths):  # depth scratch ignores the source
        check_source_name(cfg.source)
    check_data_path(cfg, app)
    check_free_space(cfg.results_dir, cfg.storage)
    from tunedepth.hpo.searchers import make_plan

    make_plan(cfg, depths, cfg.trial_settings(), "val_metric", app.mode)  # a searcher's own refusals
    return Checked(app, spec, depths)
