"""``Mode``: which direction of a metric is better ("max": higher, "min": lower), in one place.

Pure (no torch, no Ray): the analysis, the live progress, the scheduler and the training core can all use it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mode:
    name: str  # "max" | "min"

    def __post_init__(self):
        if self.name not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.name!r}")

    @classmethod
    def of(cls, mode: "str | Mode") -> "Mode":
        return mode if isinstance(mode, Mode) else cls(str(mode))

    @property
    def sign(self) -> float:
        """+1 for max, -1 for min: ``sign * value`` is larger when better."""
        return 1.0 if self.name == "max" else -1.0

    @property
    def ascending(self) -> bool:
        """Sort order that puts the best value first."""
        return self.name == "min"

    @property
    def words(self) -> str:
        return "higher" if self.name == "max" else "lower"

    def better(self, a: float, b: float | None) -> bool:
        """``a`` strictly better than ``b`` (anything beats None)."""
        return b is None or self.sign * a > self.sign * b

    def best(self, values):
        return max(values) if self.name == "max" else min(values)

    def gain(self, delta):
        """A difference in metric units turned into 'how much better' (positive = better)."""
        return self.sign * np.asarray(delta, dtype=np.float64) if np.ndim(delta) else self.sign * float(delta)


# Which direction is better for every metric an app can select (its validation metric): the one place that
# says so. An app's ``mode`` is derived from its metric here (``tunedepth.apps.registry.App``).
METRIC_MODES = {
    "auc": "max", "balanced-accuracy": "max", "macro-f1": "max",  # classification
    "froc_pauc": "max", "froc": "max",  # detection: normalised partial area under the FROC curve
    "dice": "max", "boundary-error": "min", "mae_um": "min",  # segmentation
}


def metric_mode(metric: str) -> Mode:
    """The direction of ``metric`` (a key of ``METRIC_MODES``); a ValueError names the known metrics."""
    try:
        return Mode(METRIC_MODES[metric])
    except KeyError:
        raise ValueError(f"no direction declared for metric {metric!r}; add it to tunedepth.metrics.mode.METRIC_MODES "
                         f"(known: {', '.join(sorted(METRIC_MODES))})") from None
