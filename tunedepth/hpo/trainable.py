"""The Tune adapter, the one place ``TrialRun`` meets Ray Tune: a function trainable around ``TrialRun``.

It reads ``config`` (a flat ``TrialConfig``), resumes from ``tune.get_checkpoint()`` if there is one (else, for
a trial continuing another, from that trial's checkpoint given in ``start``), and
after every epoch-equivalent (``epoch_steps`` optimizer steps, the same at every budget) calls
``tune.report(metrics, checkpoint=...)``. Data and pretrained weights arrive
through ``tune.with_parameters`` (Ray's object store), built once by the driver, not per trial.
"""
from __future__ import annotations

import os
import tempfile

import ray
import torch
from ray import tune

from tunedepth.data import SplitData
from tunedepth.errors import ConfigError
from tunedepth.settings import TrialConfig
from tunedepth.training.resolved import CHECKPOINT_FILE, read_checkpoint
from tunedepth.training.trial import TrialRun

__all__ = ["CHECKPOINT_FILE", "CONTINUES", "train_depth"]
CONTINUES = "continues"  # extra config key of a trial that continues another (tunedepth extend): its trial id


def _threads_for_trial() -> int:
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    except Exception:
        cpus = 1
    return max(1, int(cpus))


def _device_for_trial() -> str:
    """The GPU Ray assigned to this trial (Ray sets CUDA_VISIBLE_DEVICES accordingly), else the CPU."""
    return "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"


def train_depth(config: dict, data: SplitData, weights: dict[str, dict | None],
                start: dict[str, tune.Checkpoint] | None = None) -> None:
    """``start`` (``tunedepth extend``): trial id -> its latest checkpoint of the run it continues; a trial
    whose config names one under ``CONTINUES`` (popped here) starts from it, unless Tune restores its own."""
    config = dict(config)
    continues = config.pop(CONTINUES, None)
    cfg = TrialConfig.from_dict(config)
    torch.set_num_threads(_threads_for_trial())
    node_id = ray.get_runtime_context().get_node_id()
    device = _device_for_trial()
    run = TrialRun(cfg, data, weights, device=device)
    print(f"trial {cfg.depth} @ budget {cfg.budget:g} on {device}: feature cache {run.cache.reason}", flush=True)

    checkpoint = tune.get_checkpoint()
    if checkpoint is None and continues is not None:
        checkpoint = (start or {}).get(str(continues))
        if checkpoint is None:
            raise ConfigError(f"trial {continues} to continue has no checkpoint; it cannot be extended")
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            run.load_state_dict(read_checkpoint(os.path.join(d, CHECKPOINT_FILE), map_location=device))

    while not run.finished:
        metrics = run.step()
        metrics["source"] = run.source  # the effective source (scratch at depth scratch)
        metrics["node_id"] = node_id  # which Ray node ran the trial (the cluster test checks trials spread)
        with tempfile.TemporaryDirectory() as d:
            torch.save(run.state_dict(), os.path.join(d, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
