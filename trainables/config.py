"""One flat, typed configuration per trial; unknown keys are rejected with the list of known ones."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping, TypeVar

T = TypeVar("T")

LR_PROTOCOLS = ("paper", "uniform")  # see trainables.models.depth.configure_depth
OPTIMIZERS = ("sgd", "adamw")
AUGMENTS = ("none", "hflip")  # see trainables.engine.AUGMENT_VIEWS


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
            text = str(value).strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"config key {f.name!r} must be {kind}, got {value!r}") from None
    return value


@dataclass(frozen=True)
class TrialConfig:
    """Everything one Tune trial needs; saved (via Tune's params.json) beside every trial's result."""

    app: str = "colonoscopy-frames"
    backbone: str = "efficientnet-lite0"
    source: str = "imagenet"  # where pretrained weights come from; ignored (recorded as "scratch") at depth scratch
    depth: str = "head"  # `tunedepth depths BACKBONE`: "head", "conv_head-head", ..., "stem-head" or "scratch"
    budget: float = 1.0  # fraction of the training split (nested, stratified subsets)
    lr: float = 1e-3  # alpha in Tajbakhsh et al.: tuned pretrained layers; new head gets 10x, biases 2x
    schedule: str = "paper"  # see trainables.schedules.SCHEDULES
    momentum: float = 0.9  # SGD's momentum (AdamW keeps its default betas)
    weight_decay: float = 5e-4  # on weights only: biases and normalisation parameters get none
    lr_protocol: str = "paper"  # "paper": head 10x, biases 2x; "uniform": every tuned parameter gets lr
    optimizer: str = "sgd"  # "sgd" (with momentum) or "adamw"
    layer_decay: float = 1.0  # pretrained groups' lr x layer_decay**d, d = groups below the head; 1.0 = off
    warmup_epochs: float = 1.0  # length of the linear warmup of schedule "warmup-cosine"
    freeze_bn: bool = True  # BatchNorm in frozen groups keeps its running statistics (eval mode)
    feature_cache: bool = True  # frozen groups run once per sample, not every epoch (trainables.features)
    augment: str = "none"  # "none" or "hflip" (random left-right mirror, per sample and epoch)
    amp: bool = True  # on CUDA: bfloat16 autocast; ignored on the CPU
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
        if self.lr_protocol not in LR_PROTOCOLS:
            raise ConfigError(f"unknown lr_protocol {self.lr_protocol!r}; choose one of: {', '.join(LR_PROTOCOLS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ConfigError(f"layer_decay must be in (0, 1] (1.0 = no layer-wise decay), got {self.layer_decay}")
        if self.weight_decay < 0 or not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"need weight_decay >= 0 and 0 <= momentum < 1, got {self.weight_decay}, {self.momentum}")
        if self.augment not in AUGMENTS:
            raise ConfigError(f"unknown augment {self.augment!r}; choose one of: {', '.join(AUGMENTS)}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrialConfig":
        return from_mapping(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
