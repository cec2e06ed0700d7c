"""The run-level configuration of one search: flat, typed, unknown keys rejected, saved with the results.

``SearchConfig`` inherits every trial setting from ``tunedepth.settings.TrialSettings`` (declared there once, with
help text) and adds what belongs to the search. ``tunedepth.cli.run`` derives its flags from these fields; YAML
keys are the field names; the runner passes ``cfg.trial_settings()`` unchanged to every trial.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from tunedepth.data.budgets import BUDGET_RANGE
from tunedepth.data.stream import DEFAULT_STREAM_BYTES, STREAM_MODES
from tunedepth.errors import ConfigError
from tunedepth.run_files import CONFIG_FILE, RESULTS_DIR
from tunedepth.schedules import check_schedule
from tunedepth.settings import MASK_MODES, TrialSettings, from_mapping, setting

SEARCHERS = ("grid", "random", "optuna", "guideline")  # see tunedepth/hpo/searchers
# see tunedepth.hpo.promotion ("per-depth", "per-budget": synchronous successive halving)
# and tunedepth.hpo.schedulers ("asha")
SCHEDULERS = ("auto", "per-depth", "per-budget", "asha", "none")
REPLICATES = ("leader", "survivors", "all")  # see tunedepth.hpo.promotion: when a learning rate's further seeds run
# what "auto" means for each searcher: the guideline compares finished trials only; an adaptive searcher behind a
# concurrency limit cannot wait for paused trials, so optuna gets the stopping ASHA
AUTO_SCHEDULER = {"grid": "per-depth", "random": "per-depth", "optuna": "asha", "guideline": "none"}

# keys config.yaml adds beside the SearchConfig fields (resolved at run time, ignored when read back)
# ("metric" is a setting: config.yaml holds the resolved one, the app's own when the run left it empty)
DERIVED_KEYS = frozenset({"n_train", "n_val", "n_test", "mode", "experiment_path"})


@dataclass(frozen=True)
class SearchConfig(TrialSettings):
    name: str = setting("demo", "run name: results go to <results_dir>/<name>")
    data: str = setting("", "real data for the app (see tunedepth.data.loaders); empty = the app's embedded generator")
    masks: str = setting("auto", "segmentation --data: how mask values are read: 'binary' (0 = background, any other "
                                 "value foreground), 'semantic' (each value a class), 'auto' (semantic, but a run "
                                 "stops on masks that look like instance labels: many labels, each one blob)",
                         MASK_MODES)
    depths: tuple[str, ...] = setting((), "depths to try; empty = every depth of the backbone, plus scratch",
                                      item=str)
    budgets: tuple[float, ...] = setting((0.05, 0.1, 0.25, 0.5, 1.0), "data budgets: fractions of the training "
                                         "split", item=float, above=BUDGET_RANGE["above"],
                                         at_most=BUDGET_RANGE["at_most"])
    lr_min: float = setting(3e-4, "smallest learning rate (alpha) of the grid / range", above=0)
    lr_max: float = setting(3e-3, "largest learning rate (alpha) of the grid / range", above=0)
    scratch_lr_min: float = setting(3e-3, "depth scratch: smallest learning rate of its own grid / range (every "
                                          "layer gets it: random weights are trained, not nudged)", above=0)
    scratch_lr_max: float = setting(3e-2, "depth scratch: largest learning rate of its own grid / range",
                                  above=0)
    schedules: tuple[str, ...] = setting(("paper",), "lr schedules raced in every cell with the learning rates "
                                         "(tunedepth.schedules: paper, constant, step, cosine, warmup-cosine, "
                                         "one-cycle); a cell's candidates are lr x schedule", item=str)
    samples: int = setting(5, "grid: learning rates per depth, log-spaced over [lr_min, lr_max]; random/optuna: "
                              "trials per budget (x seed)", at_least=1)
    seeds: tuple[int, ...] = setting((0, 1), "trial seeds: every (depth, budget, lr) runs once per seed; seeds are "
                                             "replicates (judged by their mean)", item=int,
                                   at_least=0)
    replicates: str = setting("leader", "grid + per-depth/per-budget scheduler: 'leader' = the first seed races the "
                                        "candidates, the other seeds run only for the best of those still in the race "
                                        "at its end (the others are recorded as tied with it; per-budget: every depth "
                                        "left); 'survivors' = for every "
                                        "candidate still in the race; 'all' = every seed races, judged by their mean",
                              REPLICATES)
    search_seed: int = setting(0, "permutes the lr grid's order and seeds random/optuna draws (`demo --seed`)",
                              at_least=0)
    grace_period: int = setting(0, "first rung of the scheduler, in epoch-equivalents; 0 = 2 (or the cap, if lower). "
                                   "A rung where every candidate is still within noise of chance decides nothing: "
                                   "the race waits for the next", at_least=0)
    reduction_factor: int = setting(2, "scheduler: rungs at grace_period x reduction_factor^k; asha keeps the best "
                                       "1/reduction_factor of each rung", at_least=2)
    prune_z: float = setting(2.0, "per-depth/per-budget halving: drop a candidate at a rung only when it is behind "
                                  "the best by more than prune_z standard errors of the difference (paired: over "
                                  "the same halves of the validation split for every trial); larger = fewer drops",
                             at_least=0)
    prune_growth: float = setting(1.0, "per-depth/per-budget halving: a candidate behind at a rung is dropped only "
                                       "if it would still be behind after gaining prune_growth times what it gained "
                                       "since the previous rung (a curve a - b/t gains 1x its last doubling's gain in "
                                       "the rest of training; rungs double); 0 = judge the scores as they stand",
                                  at_least=0)
    scheduler: str = setting("auto", "per-depth: per (budget, depth) successive halving over learning rates; "
                                     "per-budget: over (depth, lr) per budget; asha: Ray's stopping ASHA per "
                                     "budget; none; auto: per-depth (optuna: asha; guideline: none)", SCHEDULERS)
    searcher: str = setting("grid", "how trials are proposed (tunedepth/hpo/searchers)", SEARCHERS)
    guideline_min_delta: float = setting(-1.0, "guideline: a deeper level must beat the best by more than this; "
                                               "< 0 = the seeds' spread (0.01 with one seed)")
    guideline_patience: int = setting(1, "guideline: stop after this many deeper levels without such a gain",
                                    at_least=1)
    cpus_per_trial: float = setting(1.0, "CPUs per trial", above=0)
    gpus_per_trial: float = setting(0.0, "GPUs per trial; fractions allowed, e.g. 0.25 = four trials share one",
                                   at_least=0)
    max_concurrent: int = setting(0, "trials at once; 0 = as many as the cluster's resources allow",
                                 at_least=0)
    reuse_actors: bool = setting(True, "a finished trial's Ray actor runs the next (no process start)")
    address: str = setting("", "a cluster's head HOST:PORT (`ray start --head --port`), 'auto' or "
                                  "ray://HOST:10001; its token is read from $RAY_AUTH_TOKEN or ~/.ray/auth_token; "
                                  "'' = $RAY_ADDRESS (set under `ray job submit`), else start a local Ray")
    storage: str = setting("", "'' = results/<name>/tune; else a shared path or a pyarrow URI (s3://, gs://)")
    dashboard: bool = setting(False, "local Ray only: start the dashboard on 127.0.0.1:8265")
    mlflow: str = setting("", "MLflow tracking URI (file:///path, sqlite:///mlflow.db, http://host:5000): one MLflow "
                              "run per trial in the experiment named after the run; '' = none (needs "
                              "pip install 'tunedepth[mlflow]')")
    data_samples: int = setting(0, "units to generate, or at most to use from --data; 0 = the app's default",
                                 at_least=0)
    smoke: bool = setting(False, "tiny data, 2 budgets, 4 depths, short trials")
    stream: str = setting("auto", "data beyond memory: samples decoded once to disk and read per batch (on), kept "
                          "in memory (off), or on above stream_bytes (auto)", choices=STREAM_MODES)
    stream_bytes: int = setting(DEFAULT_STREAM_BYTES, "with stream auto: stream above this many bytes of decoded "
                                "uint8 samples (units x 3 x size x size)", at_least=0)
    results_dir: str = setting(RESULTS_DIR, "folder of the runs")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.budgets:
            raise ConfigError("budgets is empty; give at least one fraction in (0, 1], e.g. --budgets 0.1,1.0")
        for low, high, what in ((self.lr_min, self.lr_max, "lr"), (self.scratch_lr_min, self.scratch_lr_max,
                                                                     "scratch_lr")):
            if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
                raise ConfigError(
                    f"need finite 0 < {what}_min <= {what}_max, got {low}, {high}; e.g. --{what.replace('_', '-')}"
                    f"-min 3e-4 --{what.replace('_', '-')}-max 3e-3"
                )
        if not self.schedules:
            raise ConfigError("schedules is empty; give at least one, e.g. --schedules paper")
        for schedule in self.schedules:
            check_schedule(schedule)
        if len(set(self.schedules)) != len(self.schedules):
            raise ConfigError(f"schedules lists one twice: {', '.join(self.schedules)}")
        if not (math.isfinite(self.prune_z) and self.prune_z >= 0):
            raise ConfigError(f"prune_z must be a finite number >= 0, got {self.prune_z}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        if self.replicates not in REPLICATES:
            raise ConfigError(f"replicates must be one of {', '.join(REPLICATES)}, got {self.replicates!r}")
        if self.searcher not in SEARCHERS:
            raise ConfigError(f"unknown searcher {self.searcher!r}; choose one of: {', '.join(SEARCHERS)}")
        self._check_pairing(self.effective_scheduler)
        for key in ("samples", "epochs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}; e.g. --{key} 2")
        if not self.seeds:
            raise ConfigError("seeds is empty; give at least one, e.g. --seeds 0")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ConfigError("cpus_per_trial must be > 0 and gpus_per_trial >= 0")
        if self.grace_period < 0 or self.grace_period > self.epochs:
            raise ConfigError(f"grace_period ({self.grace_period}) exceeds epochs ({self.epochs}); lower it")
        if self.masks not in MASK_MODES:
            raise ConfigError(f"unknown masks {self.masks!r}; choose one of: {', '.join(MASK_MODES)}")
        if self.stream not in STREAM_MODES:
            raise ConfigError(f"stream must be one of {', '.join(STREAM_MODES)}, got {self.stream!r}")

    @property
    def first_rung(self) -> int:
        """``grace_period``, with 0 resolved: 2 epoch-equivalents, or the cap if it is lower."""
        return self.grace_period or min(2, self.epochs)

    @property
    def effective_scheduler(self) -> str:
        """``scheduler``, with "auto" resolved for the searcher (config.yaml records this one)."""
        return AUTO_SCHEDULER[self.searcher] if self.scheduler == "auto" else self.scheduler

    def _check_pairing(self, scheduler: str) -> None:
        """Searchers that wait for results cannot run under a scheduler that pauses or cuts trials short."""
        if scheduler in ("per-depth", "per-budget") and self.searcher not in ("grid", "random"):
            raise ConfigError(f"scheduler {scheduler!r} pauses trials until their rung fills, which searcher "
                              f"{self.searcher!r} waits on; use --scheduler asha (or none) with it")
        if self.searcher == "guideline" and scheduler != "none":
            raise ConfigError(f"the guideline searcher compares depths by trials of equal length; scheduler "
                              f"{scheduler!r} cuts some short: use --scheduler none (the default with it)")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SearchConfig":
        values = {k: v for k, v in values.items() if k not in DERIVED_KEYS}
        values = dict(values)
        if "schedule" in values and "schedules" not in values:  # a config.yaml from before schedules were searched
            values["schedules"] = [values.pop("schedule")]
        values.pop("schedule", None)
        if "patience" in values:  # epoch-equivalents before patience was counted in optimizer steps
            values.pop("patience")
        return from_mapping(cls, values)  # list keys become tuples of their item type there

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def replace(self, **changes: Any) -> "SearchConfig":
        return dataclasses.replace(self, **changes)


def smoke_config(base: SearchConfig) -> SearchConfig:
    """The smoke size of a search: two budgets, four depths (set by the runner), two lrs x one seed, short
    trials on tiny data."""
    return base.replace(smoke=True, budgets=(0.25, 1.0), epochs=2, grace_period=1, samples=2, seeds=base.seeds[:1])


def build_config(values: Mapping[str, Any]) -> SearchConfig:
    """A SearchConfig from keys (a --config file, flags, ``tunedepth.search(...)``): with ``smoke``, the smoke
    size of the search with the keys given explicitly kept (``--smoke --epochs 1`` runs one epoch)."""
    cfg = SearchConfig.from_dict(values)
    if cfg.smoke:
        given = {k: v for k, v in dataclasses.asdict(cfg).items() if k in values}
        cfg = SearchConfig.from_dict({**smoke_config(cfg).to_dict(), **given})
    return cfg


def load_config(run: str, results_dir: str = RESULTS_DIR) -> SearchConfig:
    """The SearchConfig saved with run ``run`` (a name under results_dir, or a run folder path)."""
    path = Path(run) if Path(run).is_dir() else Path(results_dir) / run
    cfg_file = path / CONFIG_FILE
    if not cfg_file.exists():
        raise ConfigError(f"no run at {path} (missing {cfg_file}); `ls {results_dir}` shows the runs")
    cfg = SearchConfig.from_dict(yaml.safe_load(cfg_file.read_text()))
    return cfg.replace(results_dir=str(path.resolve().parent), name=path.name)
