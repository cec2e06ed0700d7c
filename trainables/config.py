"""One flat, typed configuration per trial; unknown keys are rejected with the list of known ones."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names the problem and the fix."""


def from_mapping(cls: type[T], values: Mapping[str, Any]) -> T:
    """Build dataclass ``cls`` from ``values``, rejecting unknown keys and coercing simple types."""
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(unknown)} for {cls.__name__}; known keys: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(known[name], value)
    try:
        return cls(**kwargs)
    except TypeError as e:  # missing required keys
        raise ConfigError(f"{cls.__name__}: {e}") from None


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    try:
        if kind == "float" and value is not None:
            return float(value)
        if kind == "int" and value is not None:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind == "str" and value is not None:
            return str(value)
        if kind == "bool" and not isinstance(value, bool):
            if str(value).lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return str(value).lower() in ("true", "1", "yes")
    except (TypeError, ValueError):
        raise ConfigError(f"config key {f.name!r} must be {kind}, got {value!r}") from None
    return value


@dataclass(frozen=True)
class TrialConfig:
    """Everything one Tune trial needs; saved (via Tune's params.json) beside every trial's result."""

    app: str = "colonoscopy-frames"
    backbone: str = "tiny-alexnet"
    source: str = "fractal"  # where pretrained weights come from; ignored (recorded as "scratch") at depth scratch
    depth: str = "fc8"  # "fc8", "fc7-fc8", ..., "conv1-fc8" or "scratch"
    budget: float = 1.0  # fraction of the training split (nested, stratified subsets)
    lr: float = 1e-3  # alpha in Tajbakhsh et al.: tuned pretrained layers; new head gets 10x, biases 2x
    schedule: str = "paper"  # see trainables.schedules.SCHEDULES
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    epochs: int = 8
    seed: int = 0
    data_seed: int = 0  # seed of the embedded dataset (same splits for every trial of a run)

    def __post_init__(self) -> None:
        if not 0.0 < self.budget <= 1.0:
            raise ConfigError(f"budget must be in (0, 1] (a fraction of the training split), got {self.budget}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrialConfig":
        return from_mapping(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
