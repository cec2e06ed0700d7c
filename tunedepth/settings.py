"""One flat, typed configuration per trial; unknown keys are rejected with the list of known ones."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, TypeVar

from tunedepth.data.budgets import check_budget
from tunedepth.errors import ConfigError

T = TypeVar("T")

LR_PROTOCOLS = ("paper", "uniform")  # see tunedepth.models.depth.configure_depth
OPTIMIZERS = ("sgd", "adamw")
AUGMENTS = ("none", "hflip", "flip-rotate")  # see tunedepth.models.engine.AUGMENT_VIEWS
RESIZES = ("resize", "pad", "crop")  # see tunedepth.apps.patches.fit_square
MASK_MODES = ("auto", "binary", "semantic")  # see tunedepth.data.loaders.segmentation.read_as


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
    item = f.metadata.get("item")
    if item is not None:  # a list setting: a YAML list, a tuple, or one scalar (a list of one)
        values = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
        if isinstance(value, (dict, set)) or any(isinstance(v, (list, tuple, dict, bool)) for v in values):
            raise ConfigError(f"config key {f.name!r} must be a list of {item.__name__}, got {value!r}") from None
        try:
            return tuple(_scalar(item.__name__, f.name, v) for v in values)
        except ConfigError:
            raise ConfigError(f"config key {f.name!r} must be a list of {item.__name__}, got {value!r}") from None
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    if value is None and kind in ("float", "int", "str", "bool"):
        raise ConfigError(f"config key {f.name!r} has no value; give a {kind} (e.g. {f.name}: {f.default!r}) or "
                          f"drop the key")
    return _scalar(kind, f.name, value)


def _scalar(kind: str, name: str, value: Any) -> Any:
    if kind == "str" and isinstance(value, (list, tuple, dict, set)):
        raise ConfigError(f"config key {name!r} must be str, got {value!r}")
    try:
        if kind in ("float", "int") and (isinstance(value, (bool, list, dict)) or value is None):
            raise ValueError
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
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"config key {name!r} must be {kind}, got {value!r}") from None
    return value


def setting(default: Any, help: str, choices: tuple | None = None, item: type | None = None, *,
            at_least: float | None = None, above: float | None = None, at_most: float | None = None,
            below: float | None = None) -> Any:
    """A dataclass field declared once with what the CLI and docs need: help text, choices, list item type, and
    its range (``at_least``/``above``: the lower bound, inclusive/exclusive; ``at_most``/``below``: the upper;
    for a list, of every item). Every float setting must also be finite. ``check_ranges`` enforces the ranges
    of every setting of an object, before anything else looks at it.

    ``tunedepth.cli.run`` derives its flags from these fields, YAML keys are the field names, and the
    search passes every ``TrialSettings`` field to every trial unchanged."""
    bounds = {k: v for k, v in (("at_least", at_least), ("above", above), ("at_most", at_most), ("below", below))
              if v is not None}
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "item": item, **bounds})


_RULES = (("at_least", ">=", lambda v, b: v >= b), ("above", ">", lambda v, b: v > b),
          ("at_most", "<=", lambda v, b: v <= b), ("below", "<", lambda v, b: v < b))


def range_text(f: dataclasses.Field) -> str:
    """The declared range of a setting, e.g. ">= 1" or "> 0 and <= 1" ('' when it has none)."""
    return " and ".join(f"{sign} {f.metadata[key]:g}" for key, sign, _ in _RULES if key in f.metadata)


def _example(f: dataclasses.Field) -> str:
    default = f.default
    if isinstance(default, tuple):
        default = ",".join(map(str, default))
    return f"--{f.name.replace('_', '-')} {default}"


def check_ranges(obj: Any) -> None:
    """Every setting of ``obj`` within its declared range (floats also finite), else one ``ConfigError`` line
    naming the setting, its range and an example value."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        values = value if isinstance(value, tuple) else (value,)
        kind = f.metadata.get("item") or f.type
        kind = kind if isinstance(kind, str) else getattr(kind, "__name__", "")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            rule = range_text(f)
            finite = math.isfinite(v)
            if finite and all(ok(v, f.metadata[key]) for key, _, ok in _RULES if key in f.metadata):
                continue
            if not rule and finite:
                continue
            need = " ".join(x for x in ("a finite number" if kind == "float" or not finite else "", rule) if x)
            where = " (every item)" if isinstance(value, tuple) else ""
            raise ConfigError(f"{f.name} (--{f.name.replace('_', '-')}){where} must be {need}, got {v:g}; "
                              f"e.g. {_example(f)}")


@dataclass(frozen=True)
class TrialSettings:
    """The trial settings a search shares by all its trials: declared here once. ``SearchConfig`` inherits
    them (flags, YAML keys) and ``TrialConfig`` adds what varies per trial (depth, budget, lr, seed)."""

    app: str = setting("colonoscopy-frames", "application (`tunedepth apps` lists them)")
    backbone: str = setting("", "network (`tunedepth backbones` lists them, or timm:NAME, unet-timm:NAME); '' = the "
                                "app's default, with ImageNet weights offline: efficientnet-lite0, for mask apps "
                                "(segmentation, intima-media-seg) unet-efficientnet-lite0")
    source: str = setting(
        "imagenet",
        "where pretrained weights come from (imagenet, fractal, scratch, file:PATH); depth scratch ignores it",
    )
    lr_protocol: str = setting("paper", "'paper': new head 10x lr, biases 2x; 'uniform': every tuned parameter "
                                        "gets lr", LR_PROTOCOLS)
    optimizer: str = setting("sgd", "'sgd' (with momentum, the paper) or 'adamw'", OPTIMIZERS)
    momentum: float = setting(0.9, "SGD's momentum (AdamW keeps its default betas)", at_least=0, below=1)
    weight_decay: float = setting(5e-4, "on weights only: biases and normalisation parameters get none", at_least=0)
    layer_decay: float = setting(1.0, "pretrained groups' lr x layer_decay**d, d = groups below the head; 1 = off",
                                  above=0, at_most=1)
    warmup_epochs: float = setting(1.0, "epoch-equivalents of linear warmup of schedule 'warmup-cosine'", at_least=0)
    scratch_warmup_epochs: float = setting(1.0, "depth scratch: linear warmup from 1% of its lr over this many "
                                                "epoch-equivalents, before any schedule (random weights need it); "
                                                "0 = off", at_least=0)
    freeze_bn: bool = setting(True, "BatchNorm in frozen groups keeps its running statistics (eval mode)")
    feature_cache: bool = setting(True, "frozen groups run once per sample, not every epoch "
                                        "(tunedepth.training.features)")
    augment: str = setting("none", "'none', 'hflip' (random left-right mirror per sample and step) or 'flip-rotate' "
                                   "(a random one of the 8 mirrors/quarter turns)", AUGMENTS)
    metric: str = setting("", "validation metric that selects lr, epoch and depth; '' = the app's own. Generic "
                              "apps: classification auc, balanced-accuracy, macro-f1 (`tunedepth apps` lists them)")
    resize: str = setting("resize", "generic apps: how an image becomes the square input: 'resize' (stretch), 'pad' "
                                    "(keep the aspect ratio, pad), 'crop' (keep it, centre crop); the paper's apps "
                                    "keep their own protocol", RESIZES)
    input_size: int = setting(0, "side of the square network input in px; 0 = the backbone's own (a backbone with "
                                 "global pooling takes any size, e.g. resnet18; tiny-alexnet only 64)")
    amp: bool = setting(True, "on CUDA: bfloat16 autocast and channels_last; ignored on the CPU")
    batch_size: int = setting(32, "mini-batch size", at_least=1)
    epochs: int = setting(40, "cap: at most this many epoch-equivalents per trial (the scheduler's max_t). A ceiling, "
                              "not the trial's length: a trial ends on a validation plateau (patience_steps); one that "
                              "reaches the cap is 'capped' and its score is a lower bound", at_least=1)
    epoch_steps: int = setting(0, "optimizer steps per epoch-equivalent (one validation, one scheduler time "
                                  "unit), equal at every budget; 0 = one pass over the full training split", at_least=0)
    patience_steps: int = setting(240, "plateau: end a trial after this many optimizer steps without a better "
                                       "validation metric (the same at every budget; checked at each validation, "
                                       "every epoch_steps); 0 = off (every trial runs to the cap)", at_least=0)
    data_seed: int = setting(0, "seed of the embedded dataset and splits (the same for every trial of a run)",
                             at_least=0)

    def __post_init__(self) -> None:
        if not self.backbone:  # resolved here, so config.yaml and every trial record the network that ran
            from tunedepth.apps.registry import default_backbone

            object.__setattr__(self, "backbone", default_backbone(self.app))
        check_ranges(self)  # every declared range (a SearchConfig's too), before the checks below read them
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.epoch_steps < 0 or self.patience_steps < 0:
            raise ConfigError(f"need epoch_steps >= 0 and patience_steps >= 0 (0 = default / off), got "
                              f"{self.epoch_steps}, {self.patience_steps}")
        for name in ("lr_protocol", "optimizer", "augment", "resize"):
            choices = next(f for f in fields(TrialSettings) if f.name == name).metadata["choices"]
            if getattr(self, name) not in choices:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; choose one of: {', '.join(choices)}")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ConfigError(f"layer_decay must be in (0, 1] (1.0 = no layer-wise decay), got {self.layer_decay}")
        if self.weight_decay < 0 or not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"need weight_decay >= 0 and 0 <= momentum < 1, got {self.weight_decay}, {self.momentum}")
        if self.input_size < 0 or 0 < self.input_size < 16:
            raise ConfigError(f"input_size must be 0 (the backbone's own) or >= 16 px, got {self.input_size}")
        if self.warmup_epochs < 0 or self.scratch_warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs and scratch_warmup_epochs must be >= 0, got {self.warmup_epochs}, "
                              f"{self.scratch_warmup_epochs}")

    def trial_settings(self) -> dict[str, Any]:
        """The ``TrialSettings`` fields of this object (a ``SearchConfig``'s keys every trial shares)."""
        return {f.name: getattr(self, f.name) for f in fields(TrialSettings)}


@dataclass(frozen=True)
class TrialConfig(TrialSettings):
    """Everything one Tune trial needs; saved (via Tune's params.json) beside every trial's result."""

    depth: str = "head"  # `tunedepth depths BACKBONE`: "head", "conv_head-head", ..., "stem-head" or "scratch"
    budget: float = 1.0  # fraction of the training split (nested, stratified subsets)
    lr: float = 1e-3  # alpha in Tajbakhsh et al.: tuned pretrained layers; new head gets 10x, biases 2x
    schedule: str = "paper"  # tunedepth.schedules: a function of the optimizer step; 'paper' = x0.95/epoch
    seed: int = 0  # weight init, batch order and augmentation of this trial

    def __post_init__(self) -> None:
        super().__post_init__()
        check_budget(self.budget)
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrialConfig":
        return from_mapping(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
