"""Bootstrap statistics for test metrics: pure numpy, deterministic from a seed, vectorised where it can be.

The resampling unit is a *group* (``meta["group"]``: the frame, candidate, volume or patient a sample
belongs to) when the test split has groups, else a single sample. A resampled group keeps all its samples.
Resampling is stratified: every resample draws, with replacement, as many units of each stratum as the
test split holds. A unit's stratum is its class (or, for a group, the highest class among its samples:
for binary tasks "contains a positive"), so without groups every resample keeps the exact class counts.

All depths of a run are scored on the *same* resamples (one ``Resamples`` per test split), which makes
differences between two prediction sets paired: ``paired_delta`` is a paired bootstrap of the difference,
and an interval that contains 0 means the two are statistically indistinguishable at that level.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from trainables.metrics import MetricError

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


def make_resamples(labels, groups=None, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> Resamples:
    """Stratified (by class) bootstrap resamples, of whole groups when ``groups`` is given."""
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
    stratum = np.full(n_groups, labels.min(), dtype=labels.dtype)
    np.maximum.at(stratum, group_of, labels)
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
        sub = {k: np.asarray(v)[idx] for k, v in meta.items()}
        if "group" in sub:
            sub["group"] = copy
        try:
            out[b] = metric(labels[idx], probs[idx], sub)
        except MetricError:
            pass
    return out


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


def indistinguishable_from_best(point_best: float, point_other: float, boot_best, boot_other,
                                level: float = DEFAULT_LEVEL) -> bool:
    """True when the paired interval of (other - best) contains 0, i.e. no significant difference.

    An interval that could not be computed (too few valid resamples) also counts as indistinguishable:
    the data cannot tell the two apart.
    """
    d = paired_delta(point_other, point_best, boot_other, boot_best, level)
    return not d.significant()


def delta_vs_scratch(point: float, point_scratch: float, boot, boot_scratch,
                     level: float = DEFAULT_LEVEL) -> Delta:
    """metric(depth) - metric(scratch) with its paired-bootstrap interval (sign: raw metric units)."""
    return paired_delta(point, point_scratch, boot, boot_scratch, level)
