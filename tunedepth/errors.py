"""Every error class of tunedepth, in one small module that imports nothing of the project.

Each message names the problem and the fix; the CLI prints it as one line and exits non-zero.
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value or key, or the input data, is wrong; the message names the problem and the fix."""


class MetricError(ValueError):
    """The data cannot support the metric (e.g. one class only); the message names the fix."""


class DivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class FeatureCacheError(RuntimeError):
    """A feature file that was just written cannot be read back: not a stale entry, a real fault."""
