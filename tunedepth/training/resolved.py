"""One trial's config resolved once, and a trained trial's network rebuilt from its checkpoint file.

Everything that turns a trial's flat config into the objects it runs on is here, and nowhere else:

- ``resolve_app`` / ``resolve_network``: the app configured with the run's ``metric`` and ``resize``, and the
  backbone sized to ``input_size`` (``sized``), checked to fit the app. The search's validation takes these
  from a ``SearchConfig`` (a ``TrialSettings`` too), before any trial exists.
- ``resolve_trial`` -> ``ResolvedTrial``: that app and backbone plus the depth's group index and tuned groups,
  the *effective* source (``scratch`` at depth scratch, else the configured one), the source's weights and the
  input normalisation they were trained with. ``TrialRun`` trains on it; test evaluation and export rebuild
  the same network from it.
- ``load_trained``: a trial's checkpoint file (``CHECKPOINT_FILE``, written by the Tune adapter
  ``tunedepth.hpo.trainable``) -> the full trained network at its best validation epoch, as the trial built it
  (same seed, same source weights) with the tuned groups on top. *Where* a trial's checkpoint lies in a run
  folder (Tune's trial folders, extensions) is the run-files module's business (``tunedepth.run_files``): the
  caller passes the file in. This module imports neither Ray nor ``search``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from tunedepth.apps import APPS, App, get_app
from tunedepth.errors import ConfigError
from tunedepth.models import SCRATCH, depth_index, get_backbone, trainable_groups
from tunedepth.models.registry import BACKBONES, BackboneSpec, sized
from tunedepth.models.sources import get_source_weights, load_pretrained
from tunedepth.models.weights import Norm, input_norm
from tunedepth.schedules import check_schedule
from tunedepth.settings import TrialConfig, TrialSettings

CHECKPOINT_FILE = "trial.pt"  # one trial checkpoint: TrialRun.state_dict(), torch.save'd (weights_only-loadable)
Log = Callable[[str], None]


def check_backbone(app: App, spec: BackboneSpec, augment: str = "none") -> None:
    """A one-line ConfigError, before any data or trial, when ``spec``'s output does not fit ``app``'s target (or
    an augmentation would move the images but not their per-pixel targets)."""
    if app.target == "mask" and augment != "none":
        raise ConfigError(f"app {app.name!r} trains on per-pixel masks, which --augment {augment} would not move with "
                          "the image; use --augment none")
    if app.target == getattr(spec, "output", "label"):
        return
    fits = sorted(name for name, s in BACKBONES.items() if s.output == app.target)
    alt = sorted(name for name, a in APPS.items() if a.target != app.target and a.kind == app.kind)
    what = "per-pixel masks (whole images)" if app.target == "mask" else "one class per sample"
    hint = f" (or keep --backbone {spec.name} with app {' or '.join(alt)})" if alt else ""
    raise ConfigError(f"app {app.name!r} predicts {what} but backbone {spec.name!r} outputs "
                      f"{'per-pixel logits' if spec.output == 'mask' else 'class logits'}; use --backbone "
                      f"{' or '.join(fits)}{hint}")


def effective_source(cfg: TrialConfig) -> str:
    """The weights a trial actually starts from: ``scratch`` at depth scratch, else the configured source."""
    return "scratch" if cfg.depth == SCRATCH else cfg.source


def resolve_app(settings: TrialSettings) -> App:
    """The app of ``settings`` configured with its ``metric`` and ``resize`` (what selection and data use)."""
    return get_app(settings.app, settings.metric, settings.resize)


def resolve_network(settings: TrialSettings) -> tuple[App, BackboneSpec]:
    """(configured app, backbone sized to ``input_size``), the backbone checked to fit the app and augmentation."""
    app, spec = resolve_app(settings), sized(get_backbone(settings.backbone), settings.input_size)
    check_backbone(app, spec, settings.augment)
    return app, spec


@dataclass(frozen=True, eq=False)  # eq=False: it holds weights (tensors), compared by identity
class ResolvedTrial:
    """A trial's config and what it resolves to; built once (``resolve_trial``) and read everywhere."""

    config: TrialConfig
    app: App  # configured with the run's metric and resize
    spec: BackboneSpec  # sized to the run's input size
    depth_index: int  # groups trained: 1 = head only ... len(groups) = all; scratch len(groups) + 1
    tuned_groups: tuple[str, ...]  # the groups the trial trains (every group at depth scratch)
    source: str  # the effective source: "scratch" at depth scratch, else the configured one
    source_weights: Mapping[str, torch.Tensor] | None  # the source's state_dict (None from scratch)
    norm: Norm  # the input normalisation the source's weights were trained with (the default from scratch)

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    def build_model(self, num_classes: int) -> torch.nn.Module:
        """The network before training: the architecture with a ``num_classes``-way head holding the source's
        weights (built under the caller's torch RNG: ``TrialRun`` seeds it with the trial's seed first)."""
        return build_model(self.spec, num_classes, self.source_weights)


def build_model(spec: BackboneSpec, num_classes: int, source_weights: Mapping | None) -> torch.nn.Module:
    """``spec``'s architecture with a ``num_classes``-way head, holding ``source_weights`` (None: from scratch)."""
    model = spec.build(num_classes)
    if source_weights is not None:
        load_pretrained(model, spec, source_weights)
    return model


def resolve_trial(config: TrialConfig | Mapping[str, Any], weights: Mapping[str, Any] | None = None, *,
                  smoke: bool = False, log: Log = print) -> ResolvedTrial:
    """Resolve a trial's config once. ``weights``: the run's prepared source weights by source name (what the
    driver ships to every trial); None reads the effective source's weights now (``get_source_weights`` at the
    sized backbone, ``smoke`` choosing the smoke recipe of source fractal, as the run's own ``smoke`` did)."""
    cfg = config if isinstance(config, TrialConfig) else TrialConfig.from_dict(config)
    app, spec = resolve_network(cfg)
    index = depth_index(spec, cfg.depth)
    check_schedule(cfg.schedule)
    source = effective_source(cfg)
    if source == "scratch":
        state = None
    elif weights is None:
        state = get_source_weights(source, spec, smoke=smoke, log=log)
    else:
        state = weights.get(source)
        if state is None:
            raise ConfigError(f"no pretrained weights for source {source!r} were prepared for this run")
    return ResolvedTrial(cfg, app, spec, index, trainable_groups(spec, cfg.depth), source, state, input_norm(state))


# ------------------------------------------------------------------------------------ a trained trial
@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A trial's network in full, in eval mode, at the epoch its checkpoint selected."""

    trial: ResolvedTrial
    model: torch.nn.Module
    trained: dict[str, torch.Tensor]  # the tuned groups' state the checkpoint held
    epoch: int  # the best validation epoch so far at that checkpoint (else the checkpoint's own epoch)
    num_classes: int


def read_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict:
    """A trial checkpoint (``TrialRun.state_dict()``), read without running code (``weights_only``)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def num_classes_of(spec: BackboneSpec, trained: Mapping[str, torch.Tensor]) -> int:
    """Classes of a trained head: the output size of the head group's last weight (every trial tunes it)."""
    heads = [v for k, v in trained.items() if spec.find_group(k) == spec.head and k.endswith("weight") and v.ndim >= 2]
    if not heads:
        raise ConfigError(f"the checkpoint holds no {spec.head!r} weights; it is not a trial of {spec.name}")
    return int(heads[-1].shape[0])


def load_trained(checkpoint: Path | str, weights: Mapping[str, Any] | None = None, *, smoke: bool = False,
                 log: Log = print) -> TrainedModel:
    """The trained network of the trial whose checkpoint file is ``checkpoint``: the trial's starting model
    (its seed, its source's weights: ``resolve_trial`` with ``weights``/``smoke``) plus the tuned groups of its
    best validation epoch (every checkpoint carries the best so far; a trial's latest carries its best)."""
    state = read_checkpoint(checkpoint)
    best = state.get("best") or {}
    trained, epoch = (best["model"], int(best["epoch"])) if best.get("model") is not None \
        else (state["model"], int(state["epoch"]))
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stays as it was
        trial = resolve_trial(state["config"], weights, smoke=smoke, log=log)
        n_classes = num_classes_of(trial.spec, trained)
        torch.manual_seed(trial.config.seed)  # as TrialRun: frozen random-init groups are the trial's own
        model = trial.build_model(n_classes)
    result = model.load_state_dict(trained, strict=False)
    if result.unexpected_keys:
        raise ConfigError(f"the checkpoint has {len(result.unexpected_keys)} key(s) the {trial.spec.name} model lacks "
                          f"(e.g. {result.unexpected_keys[0]}); it was not written by this run's backbone")
    return TrainedModel(trial, model.eval(), trained, epoch, n_classes)
