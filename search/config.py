"""The run-level configuration of one search: flat, typed, unknown keys rejected, saved with the results."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from trainables.config import ConfigError, from_mapping


SCHEDULERS = ("asha", "promote", "none")  # see search.schedulers and search.promotion

# keys config.yaml adds beside the SearchConfig fields (resolved at run time, ignored when read back)
DERIVED_KEYS = frozenset({"n_train", "n_val", "n_test", "metric", "mode", "experiment_path"})


@dataclass(frozen=True)
class SearchConfig:
    name: str = "demo"
    app: str = "colonoscopy-frames"
    data: str = ""  # real data for the app (see trainables.loaders); empty = the app's embedded generator
    backbone: str = "efficientnet-lite0"  # ImageNet EfficientNet-Lite0, offline from PyPI (README, "Backbones")
    source: str = "imagenet"
    depths: tuple[str, ...] = ()  # empty = every depth of the backbone, plus scratch
    budgets: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0)
    lr_min: float = 1e-4
    lr_max: float = 3e-3
    samples: int = 1  # learning rates sampled per depth x budget x seed cell
    seeds: tuple[int, ...] = (0,)
    schedule: str = "paper"
    # learning-rate protocol of every trial (see trainables.config.TrialConfig and README)
    lr_protocol: str = "paper"
    optimizer: str = "sgd"
    weight_decay: float = 5e-4
    layer_decay: float = 1.0
    warmup_epochs: float = 1.0
    freeze_bn: bool = True
    # training loop of every trial (see trainables.config.TrialConfig and README, "Performance")
    feature_cache: bool = True
    augment: str = "none"
    amp: bool = True
    epochs: int = 8  # max epochs per trial (ASHA's max_t)
    grace_period: int = 1
    reduction_factor: int = 3
    scheduler: str = "asha"  # "asha" (stopping, stratified by budget), "promote" (promotion-based) or "none"
    searcher: str = "grid"  # grid | random | optuna | guideline (see search/searchers)
    guideline_min_delta: float = 0.01  # guideline: a deeper level must beat the best by more than this
    guideline_patience: int = 1  # guideline: stop after this many deeper levels without such a gain
    batch_size: int = 32
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions allowed, e.g. 0.25 = four trials share a GPU
    max_concurrent: int = 0  # 0 = as many as the cluster's resources allow
    reuse_actors: bool = True  # a finished trial's Ray actor runs the next (no process start; warm caches)
    address: str = ""  # "" = start a local Ray; "auto" or "ray://HOST:10001" = attach to a cluster
    storage: str = ""  # "" = results/<name>/tune; else a shared path or a pyarrow URI (s3://, gs://)
    dashboard: bool = False  # local Ray only: start the dashboard on 127.0.0.1:8265
    data_samples: int = 0  # 0 = the app's default size (smaller with smoke)
    data_seed: int = 0
    smoke: bool = False
    results_dir: str = "results"

    def __post_init__(self) -> None:
        if not self.budgets:
            raise ConfigError("budgets is empty; give at least one fraction in (0, 1], e.g. --budgets 0.1,1.0")
        bad = [b for b in self.budgets if not 0.0 < b <= 1.0]
        if bad:
            raise ConfigError(f"budgets must be fractions in (0, 1] of the training split, got {bad}")
        if not 0 < self.lr_min <= self.lr_max:
            raise ConfigError(f"need 0 < lr_min <= lr_max, got {self.lr_min}, {self.lr_max}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        if self.scheduler == "promote" and self.searcher not in ("grid", "random"):
            raise ConfigError(f"scheduler 'promote' pauses trials until their rung fills, which searcher "
                              f"{self.searcher!r} waits on; use --scheduler asha with it")
        if self.samples < 1 or self.epochs < 1 or not self.seeds:
            raise ConfigError("samples and epochs must be >= 1 and seeds non-empty")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ConfigError("cpus_per_trial must be > 0 and gpus_per_trial >= 0")
        if self.grace_period > self.epochs:
            raise ConfigError(f"grace_period ({self.grace_period}) exceeds epochs ({self.epochs}); lower it")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SearchConfig":
        values = {k: v for k, v in values.items() if k not in DERIVED_KEYS}
        for key in ("depths", "budgets", "seeds"):
            if key in values and not isinstance(values[key], tuple):
                values[key] = tuple(values[key])
        values["budgets"] = tuple(float(b) for b in values.get("budgets", cls.budgets))
        values["seeds"] = tuple(int(s) for s in values.get("seeds", cls.seeds))
        return from_mapping(cls, values)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def replace(self, **changes: Any) -> "SearchConfig":
        return dataclasses.replace(self, **changes)


def smoke_config(base: SearchConfig) -> SearchConfig:
    """The smoke size of a search: two budgets, four depths (set by the runner), two epochs, tiny data."""
    return base.replace(smoke=True, budgets=(0.25, 1.0), epochs=2, grace_period=1, samples=1, seeds=base.seeds[:1])


