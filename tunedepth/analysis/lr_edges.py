"""Is each depth's chosen learning rate inside its range, or at an edge of it (so the range may not bracket it)?

A depth compared at the lowest or highest learning rate of its grid was not shown its best learning rate: one
beyond the edge might score higher. This does not change a verdict, but the answer says so (one note per
edge, naming the depths and budgets, and the flag that widens the range).
"""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from tunedepth.space import SCRATCH, Space

GRID_SEARCHERS = ("grid", "guideline")  # the searchers whose lrs are the grid's points (random/optuna draw them)


def _space(config: Mapping[str, Any], depths: list[str]) -> Space:
    return Space(depths=tuple(depths), budgets=tuple(config.get("budgets", ())), seeds=tuple(config.get("seeds", ())),
                 lr_range=(float(config["lr_min"]), float(config["lr_max"])),
                 scratch_lr_range=(float(config["scratch_lr_min"]), float(config["scratch_lr_max"])),
                 samples=int(config.get("samples", 1)))


def lr_edge_notes(summary: pd.DataFrame, config: Mapping[str, Any]) -> list[str]:
    """One note per (edge, range): the depths and budgets whose selected lr is the grid's lowest or highest."""
    if (summary.empty or config.get("searcher", "grid") not in GRID_SEARCHERS or int(config.get("samples", 1)) < 2
            or not {"lr_min", "lr_max", "scratch_lr_min", "scratch_lr_max"} <= set(config)):
        return []
    space = _space(config, sorted(summary["depth"].unique()))
    hits: dict[tuple[str, str], dict[str, list[str]]] = {}
    for r in summary.dropna(subset=["lr"]).itertuples(index=False):
        lrs = sorted(space.lrs(str(r.depth)))
        if len(lrs) < 2:
            continue
        for edge, value in (("lowest", lrs[0]), ("highest", lrs[-1])):
            if abs(float(r.lr) - value) <= 1e-6 * value:
                key = (edge, "scratch-lr" if r.depth == SCRATCH else "lr")
                hits.setdefault(key, {}).setdefault(str(r.depth), []).append(f"{float(r.budget):.0%}")
    notes = []
    for (edge, flag), depths in sorted(hits.items()):
        bound = "min" if edge == "lowest" else "max"
        cells = ", ".join(f"{d} ({', '.join(b)})" for d, b in depths.items())
        notes.append(f"learning rate at the {edge} of its range: {cells}; a value beyond it may score higher "
                     f"(widen the range with --{flag}-{bound} to bracket it)")
    if notes and int(config["samples"]) == 2:
        notes.append("with 2 learning rates per depth every choice is at an edge: --samples 3 or more brackets them")
    return notes
