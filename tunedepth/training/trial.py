"""One trial of the depth x budget study, as a plain object: build, step an epoch, save/restore state.

``TrialRun`` knows nothing about Ray: the Tune adapter (``tunedepth.hpo.trainable``) drives it, and so can
a script or a test. One ``step()`` = one epoch-equivalent, then validation: ``epoch_steps`` optimizer steps (default
the steps of one pass over the *full* training split), the same at every data budget, so a budget's unit of
training time is the same optimizer steps everywhere.

A trial trains to convergence: it ends on a validation *plateau* (``patience_steps`` optimizer steps without a
better validation metric: ``early_stopped``), or at the *cap* of ``epochs`` epoch-equivalents (``capped``: its
score is then a lower bound). Each validation also reports the score's noise (``val_se``, its standard error over
halves of the validation units), the metric on each of those halves (``val_halves``: the same halves for every
trial, so two trials' scores are compared paired) and its chance level (``val_chance``), which the scheduler
prunes on.
"""
from __future__ import annotations

import math
import time

import torch

from tunedepth.data import SplitData
from tunedepth.errors import ConfigError, DivergedError
from tunedepth.metrics.mode import Mode
from tunedepth.metrics.noise import compute_chance, compute_halves, halves_se
from tunedepth.models import SCRATCH, configure_depth
from tunedepth.models.depth import set_train_mode
from tunedepth.models.engine import (
    AUGMENT_VIEWS,
    InputFn,
    evaluate,
    image_inputs,
    predict_logits,
    train_one_epoch,
)
from tunedepth.schedules import trial_lr_factor
from tunedepth.settings import TrialConfig
from tunedepth.training.features import (
    STORE,
    CachePlan,
    compute_features,
    feature_inputs,
    feature_key,
    module_fingerprint,
    plan_cache,
)
from tunedepth.training.resolved import ResolvedTrial, build_model, effective_source, resolve_trial

__all__ = ["TrialRun", "build_model", "effective_source"]  # the last two live in tunedepth.training.resolved
from tunedepth.data.stream import on_device, select


def build_optimizer(cfg: TrialConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or AdamW over ``configure_depth``'s parameter groups (their lrs and decay)."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def build_lr_scheduler(cfg: TrialConfig, optimizer: torch.optim.Optimizer,
                       steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """``cfg.schedule`` as a ``LambdaLR`` stepped after every batch (the schedule is a pure function of the step,
    over the cap's steps); depth scratch first ramps up linearly over ``scratch_warmup_epochs``."""
    total = steps_per_epoch * cfg.epochs
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    ramp = round(cfg.scratch_warmup_epochs * steps_per_epoch) if cfg.depth == SCRATCH else 0
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: trial_lr_factor(cfg.schedule, step, steps_per_epoch, total, warmup, ramp)
    )


def epoch_steps(cfg: TrialConfig, n_train: int) -> int:
    """Optimizer steps of one epoch-equivalent: ``cfg.epoch_steps``, or one pass over the full training split
    (``n_train`` samples) at ``cfg.batch_size``; independent of the trial's budget."""
    return cfg.epoch_steps or math.ceil(n_train / cfg.batch_size)


class TrialRun:
    def __init__(self, cfg: TrialConfig, data: SplitData, weights: dict[str, dict | None],
                 device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        # app (metric, resize), sized backbone, depth index, effective source, its weights and normalisation
        self.resolved: ResolvedTrial = resolve_trial(cfg, weights)
        self.app, self.spec = self.resolved.app, self.resolved.spec
        self.depth_index, self.source, self.norm = self.resolved.depth_index, self.resolved.source, self.resolved.norm
        if data.train_x.shape[-1] != self.spec.input_size:
            raise ConfigError(
                f"images are {data.train_x.shape[-1]}px but backbone {self.spec.name!r} takes {self.spec.input_size}px"
            )

        self.data = data
        self.idx = data.budget_indices(cfg.budget)
        # targets: the labels, or the per-pixel masks of a whole-image segmentation app
        self.train_y, self.val_y = data.targets("train")[self.idx].to(self.device), data.targets("val").to(self.device)
        self.val_meta = data.val_meta
        self.views = AUGMENT_VIEWS[cfg.augment]
        self.amp = cfg.amp and self.device.type == "cuda"
        self.channels_last = True  # NHWC: faster convolutions on CUDA and on the CPU (bench/channels_last.py)

        torch.manual_seed(cfg.seed)
        self.model = self.resolved.build_model(data.num_classes or self.app.num_classes)  # real data may have more
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        groups = configure_depth(self.model, self.spec, cfg.depth, cfg.lr, cfg.weight_decay,
                                 protocol=cfg.lr_protocol, layer_decay=cfg.layer_decay)
        self.optimizer = build_optimizer(cfg, groups)
        self.steps_per_epoch = epoch_steps(cfg, len(data.train_y))
        self.lr_scheduler = build_lr_scheduler(cfg, self.optimizer, self.steps_per_epoch)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.epoch = 0
        self.diverged = ""  # why the loss became NaN/inf, once it did (the trial then ends)
        # the weights of the best validation epoch so far travel in every checkpoint, so a run keeps only its
        # latest checkpoints (safe to resume from) and still evaluates exactly the epoch it selected
        self.best: dict = {"epoch": 0, "val_metric": None, "model": None, "val_se": None}
        self.elapsed = 0.0
        self.cache: CachePlan = plan_cache(
            self.spec, self.model, min(self.depth_index, len(self.spec.groups)), enabled=cfg.feature_cache,
            freeze_bn=cfg.freeze_bn, augment=cfg.augment, n_samples=len(data.train_y) + len(data.val_y),
            input_shape=tuple(data.train_x.shape[1:]),
        )
        self._inputs: tuple[torch.nn.Module, InputFn, InputFn] | None = None  # built on the first step()
        self._prefix_fingerprint: str | None = None

    def inputs(self) -> tuple[torch.nn.Module, InputFn, InputFn]:
        """(network to train, train inputs, validation inputs): the suffix on cached prefix features when
        ``self.cache`` is on, else the whole model on images. Built once, on first use."""
        if self._inputs is None:
            net, train = self._split_inputs("train", self.views, self.idx)
            self._inputs = (net, train, self._split_inputs("val")[1])
        return self._inputs

    def _split_inputs(self, split: str, views: int = 1,
                      idx: torch.Tensor | None = None) -> tuple[torch.nn.Module, InputFn]:
        """(network, inputs) for samples ``idx`` (default all) of ``split``: the suffix on the cached prefix
        features when the cache is on, else the whole model on the images, which then live on the trial's
        device once (uint8: a few MB), not copied per batch."""
        if self.cache.on:
            _, suffix = self.spec.split(self.model, self.cache.n_frozen)
            f = self._features(split, views)
            return suffix, feature_inputs(f, idx.to(f.device) if idx is not None else None, self.cache.shapes)
        x = select(getattr(self.data, f"{split}_x"), idx, self.device)  # on disk: stays there, read per batch
        return self.model, on_device(image_inputs(x, self.norm, self.channels_last), x, self.device)

    def _features(self, split: str, views: int) -> torch.Tensor:
        """The frozen prefix's output for every sample of ``split`` (views, N, ...), from the node's store."""
        prefix, _ = self.spec.split(self.model, self.cache.n_frozen)
        x = getattr(self.data, f"{split}_x")
        if self._prefix_fingerprint is None:  # frozen: hashed once per trial
            self._prefix_fingerprint = module_fingerprint(prefix)
        key = feature_key(self.spec, self.cache.n_frozen, self._prefix_fingerprint, self.data.fingerprint(split),
                          self.norm, views, self.device, self.amp)
        f = STORE.get(key, lambda: compute_features(prefix, x, self.norm, views, self.device, self.amp))
        return f.to(self.device) if self.device.type != "cpu" else f

    def predict(self, split: str) -> torch.Tensor:
        """Logits (N, C) of a whole split ("val" or "test") with the model's current weights, through the
        cached prefix when the cache is on (the driver scores every selected checkpoint this way)."""
        net, inputs = self._split_inputs(split)
        return predict_logits(net, inputs, len(getattr(self.data, f"{split}_y")), amp=self.amp, device=self.device)

    @property
    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def step(self) -> dict[str, float]:
        """Train one epoch-equivalent on the budget's subset, validate, and return its metrics."""
        t0 = time.perf_counter()
        net, train_inputs, val_inputs = self.inputs()
        try:
            train_loss = train_one_epoch(
                net, train_inputs, self.train_y, self.optimizer, self.app.loss, self.cfg.batch_size,
                self.generator, self.lr_scheduler,
                set_mode=lambda: set_train_mode(self.model, self.spec, self.cfg.depth, self.cfg.freeze_bn),
                views=self.views, amp=self.amp, steps=self.steps_per_epoch,
            )
            val = evaluate(net, val_inputs, self.val_y, self.app.loss, self.app.compute_metric, self.val_meta,
                           amp=self.amp)
            halves, se, chance = self._noise(val)
        except DivergedError as e:  # an outcome of this lr, not a crash: the trial ends and its lr loses
            self.diverged = str(e)
            train_loss, val = float("nan"), {"metric": float("nan"), "loss": float("nan")}
            se = chance = float("nan")
            halves = None
        self.epoch += 1
        self.elapsed += time.perf_counter() - t0
        self._track_best(val["metric"], se, halves)
        return {
            "epoch": self.epoch,
            "step": self.epoch * self.steps_per_epoch,  # optimizer steps so far (the same at every budget)
            "best_epoch": self.best["epoch"],
            "best_val_metric": self.best["val_metric"],
            "best_val_se": self.best.get("val_se"),
            "best_val_halves": self.best.get("val_halves"),
            "val_metric": float(val["metric"]),
            "val_se": se,
            "val_halves": halves,
            "val_chance": chance,
            "val_loss": val["loss"],
            "train_loss": train_loss,
            "time_s": self.elapsed,
            "n_train": int(self.idx.numel()),
            "depth_index": self.depth_index,
            "trainable_params": self.n_trainable,
            "feature_cache": self.cache.on,
            "early_stopped": self.early_stopped,
            "capped": self.capped,
            "diverged": bool(self.diverged),
        }

    @property
    def early_stopped(self) -> bool:
        """True once ``patience_steps`` optimizer steps brought no better validation metric (a plateau)."""
        since = (self.epoch - int(self.best["epoch"])) * self.steps_per_epoch
        return self.cfg.patience_steps > 0 and since >= self.cfg.patience_steps

    @property
    def capped(self) -> bool:
        """Ran to the cap without a plateau: its best score is a lower bound of what it would reach."""
        return self.epoch >= self.cfg.epochs and not self.early_stopped and not self.diverged

    @property
    def finished(self) -> bool:
        return self.epoch >= self.cfg.epochs or self.early_stopped or bool(self.diverged)

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The part of the model's state a trial changes: its tuned groups (plus, with ``freeze_bn`` off, the
        running statistics of frozen BatchNorm layers). The rest equals the source's weights, which every
        process of the run already holds, so checkpoints of a head-only trial stay small."""
        tuned = set(self.resolved.tuned_groups)
        params = {n for n, _ in self.model.named_parameters()}
        return {k: v for k, v in self.model.state_dict().items()
                if self.spec.find_group(k) in tuned or (not self.cfg.freeze_bn and k not in params)}

    def load_trained_state(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.trained_state()):
            raise ConfigError("checkpoint does not match this trial's model and depth; start a new run")
        self.model.load_state_dict(state, strict=False)

    def _noise(self, val: dict) -> tuple[list[float] | None, float, float]:
        """The validation score's half values (the same halves for every trial and epoch: they pair up across
        trials), its standard error and its chance level."""
        if not math.isfinite(float(val["metric"])):
            return None, math.nan, math.nan
        labels, probs, meta = val["labels"], val["probs"], val["meta"]
        halves = compute_halves(self.app.compute_metric, labels, *summarised(self.app, labels, probs, meta), seed=0)
        chance = compute_chance(self.app.compute_metric, labels, probs, meta, seed=self.epoch)  # shuffles: per pixel
        return [float(v) for v in halves], halves_se(halves), chance

    def _track_best(self, value: float, se: float = float("nan"), halves: list[float] | None = None) -> None:
        if not math.isfinite(value):
            return
        best = self.best["val_metric"]
        if Mode(self.app.mode).better(value, best):
            model = {k: v.detach().to("cpu", copy=True) for k, v in self.trained_state().items()}
            self.best = {"epoch": self.epoch, "val_metric": float(value), "model": model,
                         "val_se": float(se) if math.isfinite(se) else None, "val_halves": halves}

    def load_best_model(self) -> int:
        """Put the best validation epoch's weights into the model; returns that epoch (0 if none yet)."""
        if self.best["model"] is not None:
            self.load_trained_state(self.best["model"])
        return int(self.best["epoch"]) or self.epoch

    def state_dict(self) -> dict:
        return {
            "best": self.best,
            "model": self.trained_state(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "elapsed": self.elapsed,
            "config": self.cfg.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a checkpoint of this trial; its config may differ in ``epochs`` alone (a higher cap:
        ``tunedepth extend`` continues a capped trial)."""
        saved, own = dict(state["config"]), self.cfg.to_dict()
        if {**saved, "epochs": own["epochs"]} != own:
            raise ConfigError("checkpoint was written by a trial with a different config; start a new run")
        self.load_trained_state(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        self.epoch = int(state["epoch"])
        self.elapsed = float(state["elapsed"])
        if "best" in state:
            self.best = state["best"]


def summarised(app, labels, probs, meta) -> tuple:
    """``(probs, meta)`` to score subsets of a split's images from: a mask app's per-image summary
    (``app.summarize``, what predictions.parquet keeps), computed once, else the output as it is. A summary row
    depends on its own image only, so any subset scores exactly as it does from the per-pixel output, without
    recomputing every image's Dice and surface distances for each of the halves."""
    if app.summarize is None or getattr(probs, "ndim", 0) != 4:
        return probs, meta
    return app.summarize(labels, probs, meta)
