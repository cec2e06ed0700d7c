"""Bootstrap resampling of a test split: pure numpy, deterministic from a seed, vectorised where it can be.

The resampling unit is the *split unit* (``meta["split_group"]``: the video, patient or volume group the
splits were cut by; else ``meta["group"]``, the frame/volume/image; else the sample). A resampled unit keeps
all its samples, and every copy of a unit drawn twice gets its own ids (``group``, ``candidate``,
``lesion``...), so per-frame, per-candidate and per-lesion metrics count the copies apart. Resampling is
stratified by class where the unit has one label (a unit whose samples carry several labels is its own
"mixed" stratum): every resample draws, with replacement, as many units of each stratum as the split holds.

All depths of a run are scored on the *same* resamples, which makes differences paired. Replicate seeds
(several trainings of one cell) are resampled too (``combine_seeds``), so a cell's interval includes
seed-to-seed variation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from tunedepth.errors import MetricError

DEFAULT_BOOTSTRAP = 1000
DEFAULT_LEVEL = 0.95

Metric = Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], float]
# (labels (N,), probs (N, C), meta, counts (B, N)) -> the metric of each of the B resamples, (B,)
BatchedMetric = Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray], np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Resamples:
    """``n_boot`` stratified bootstrap resamples of the units (groups or samples) of one test split."""

    draws: np.ndarray  # (B, G): indices of the groups drawn by each resample, grouped by stratum
    group_of: np.ndarray  # (N,): dense group index of every sample
    n_groups: int
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_boot(self) -> int:
        return int(self.draws.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.group_of.size)

    def group_counts(self) -> np.ndarray:
        """(B, G): how many times each group is drawn by each resample."""
        if "groups" not in self._cache:
            b, g = self.draws.shape[0], self.n_groups
            flat = (self.draws + np.arange(b)[:, None] * g).ravel()
            self._cache["groups"] = np.bincount(flat, minlength=b * g).reshape(b, g)
        return self._cache["groups"]

    def counts(self) -> np.ndarray:
        """(B, N): how many times each sample appears in each resample (its group's count)."""
        if "samples" not in self._cache:
            self._cache["samples"] = self.group_counts()[:, self.group_of]
        return self._cache["samples"]

    def indices(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Resample ``b`` as explicit sample indices, and for each the copy of its group it belongs to.

        A group drawn twice appears as two distinct copies (copy ids differ), as a bootstrap requires
        for metrics that aggregate per group.
        """
        if "members" not in self._cache:
            order = np.argsort(self.group_of, kind="stable")
            sizes = np.bincount(self.group_of, minlength=self.n_groups)
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            self._cache["members"] = (order, sizes, starts)
        order, sizes, starts = self._cache["members"]
        row = self.draws[b]
        size = sizes[row]
        ends = np.cumsum(size)
        within = np.arange(ends[-1]) - np.repeat(ends - size, size)
        idx = order[np.repeat(starts[row], size) + within]
        return idx, np.repeat(np.arange(row.size), size)


def resampling_units(meta: Mapping[str, np.ndarray] | None):
    """The unit to resample: ``split_group`` if the split has one, else ``group``, else None (samples)."""
    meta = meta or {}
    for key in ("split_group", "group"):
        if key in meta:
            return np.asarray(meta[key]).ravel()
    return None


def make_resamples(labels, groups=None, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> Resamples:
    """Stratified (by class where a unit has one label) bootstrap resamples, of whole units when ``groups``."""
    labels = np.asarray(labels).ravel()
    if labels.size == 0:
        raise ValueError("cannot bootstrap an empty test split")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if groups is None:
        group_of = np.arange(labels.size)
    else:
        groups = np.asarray(groups).ravel()
        if groups.shape != labels.shape:
            raise ValueError(f"groups and labels differ in length ({groups.size} vs {labels.size})")
        _, group_of = np.unique(groups, return_inverse=True)
    n_groups = int(group_of.max()) + 1
    lab = labels.astype(np.int64)
    hi = np.full(n_groups, lab.min(), dtype=np.int64)
    lo = np.full(n_groups, lab.max(), dtype=np.int64)
    np.maximum.at(hi, group_of, lab)
    np.minimum.at(lo, group_of, lab)
    stratum = np.where(hi == lo, hi, lab.min() - 1)  # one label: its class; several: the "mixed" stratum
    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, n_groups), dtype=np.int64)
    col = 0
    for s in np.unique(stratum):
        members = np.flatnonzero(stratum == s)
        draws[:, col : col + members.size] = members[rng.integers(0, members.size, size=(n_boot, members.size))]
        col += members.size
    return Resamples(draws, group_of.astype(np.int64), n_groups)


def bootstrap_values(metric: Metric, labels, probs, meta: Mapping[str, np.ndarray] | None,
                     resamples: Resamples, batched: BatchedMetric | None = None) -> np.ndarray:
    """The metric on every resample, (B,); NaN where the metric is undefined on a resample.

    ``batched`` (an app's vectorised form of its metric) computes all resamples at once from the counts
    matrix; otherwise ``metric`` is called once per resample (groups drawn twice get distinct ids).
    """
    labels, probs = np.asarray(labels), np.asarray(probs)
    meta = dict(meta or {})
    if labels.shape[0] != resamples.n_samples or probs.shape[0] != resamples.n_samples:
        raise ValueError(f"resamples were drawn for {resamples.n_samples} samples, got {labels.shape[0]} labels "
                         f"and {probs.shape[0]} predictions")
    if batched is not None:
        return np.asarray(batched(labels, probs, meta, resamples.counts()), dtype=np.float64)
    out = np.full(resamples.n_boot, np.nan)
    for b in range(resamples.n_boot):
        idx, copy = resamples.indices(b)
        sub = {k: relabel(k, np.asarray(v)[idx], copy) for k, v in meta.items()}
        try:
            out[b] = metric(labels[idx], probs[idx], sub)
        except MetricError:
            pass
    return out


ID_KEYS = ("group", "split_group", "candidate", "lesion", "sample_id")


def relabel(key: str, values: np.ndarray, copy: np.ndarray) -> np.ndarray:
    """Ids made distinct per drawn copy of a unit (negative ids, e.g. "no lesion", stay as they are)."""
    if key not in ID_KEYS or values.ndim != 1 or values.size == 0:
        return values
    codes = np.unique(values, return_inverse=True)[1].astype(np.int64)
    fresh = copy.astype(np.int64) * (int(codes.max()) + 1) + codes
    if np.issubdtype(values.dtype, np.number):
        fresh = np.where(values < 0, values.astype(np.int64), fresh)
    return fresh


def combine_seeds(per_seed: np.ndarray, seed: int = 0) -> np.ndarray:
    """(S, B) bootstrap values of S replicate seeds on shared test resamples -> (B,): each resample also
    draws S seeds with replacement and averages them (S = 1: the seed's values unchanged)."""
    per_seed = np.atleast_2d(np.asarray(per_seed, dtype=np.float64))
    s, b = per_seed.shape
    if s == 1:
        return per_seed[0]
    draw = np.random.default_rng(seed).integers(0, s, size=(b, s))
    return np.nanmean(per_seed[draw, np.arange(b)[:, None]], axis=1)


def percentile_ci(values, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Percentile interval of the finite bootstrap values; (nan, nan) if fewer than half are finite."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.size < 0.5 * values.size:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Delta:
    """``estimate`` = metric(a) - metric(b) on the test split, with its paired-bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def includes_zero(self) -> bool:
        return bool(self.low <= 0.0 <= self.high)

    def significant(self) -> bool:
        """The interval excludes 0 (False when it could not be computed)."""
        return bool(np.isfinite(self.low) and np.isfinite(self.high) and not self.includes_zero)


def paired_delta(point_a: float, point_b: float, boot_a, boot_b, level: float = DEFAULT_LEVEL) -> Delta:
    """Paired bootstrap of metric(a) - metric(b): ``boot_a``/``boot_b`` must come from the same resamples."""
    boot_a, boot_b = np.asarray(boot_a, dtype=np.float64), np.asarray(boot_b, dtype=np.float64)
    if boot_a.shape != boot_b.shape:
        raise ValueError("paired bootstrap needs both prediction sets scored on the same resamples")
    low, high = percentile_ci(boot_a - boot_b, level)
    return Delta(float(point_a - point_b), low, high)


def p_value(deltas) -> float:
    """Two-sided bootstrap p-value of "difference = 0" (the percentile interval's inversion): twice the
    smaller share of the finite resampled differences on either side of 0, at most 1; NaN if too few."""
    d = np.asarray(deltas, dtype=np.float64)
    finite = d[np.isfinite(d)]
    if finite.size == 0 or finite.size < 0.5 * d.size:
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(finite <= 0), np.mean(finite >= 0))))
