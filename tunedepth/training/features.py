"""Frozen-prefix caching: the frozen bottom groups of a trial run once per sample, not once per epoch.

At depth k the bottom ``G - k`` groups are frozen: no gradient, eval mode (no dropout, BatchNorm with its
running statistics). Their output for a given input never changes during the trial, so it is computed
once (the *prefix*, ``BackboneSpec.split``) and the trial trains only the top k groups (the *suffix*) on
it. The loop, the batches, the random numbers and therefore the losses are the same as on the full
network (``tunedepth.models.engine.InputFn``); only the work differs.

When it applies (``plan_cache``): ``feature_cache`` is on, the backbone declares stages, at least one group
is frozen, and the prefix is deterministic (``freeze_bn`` or no BatchNorm in it). Augmentation must have
a finite set of views (``hflip``: the image and its mirror); every view is cached. Otherwise, or when
the features would exceed ``$TUNEDEPTH_FEATURE_CACHE_MB`` (default 4096 MB), the trial runs the full
network and says why (``TrialRun.cache_status``).

Sharing: features depend on the backbone, the prefix's weights, the split's images, the input
normalisation, the views and the device type, and are keyed by a hash of all of them. They cover the
whole split (every budget indexes into them), live in this process's memory (trials of a reused actor
hit them) and in ``$TUNEDEPTH_CACHE/features`` on the node's disk, written once under a file lock and
memory-mapped by every other trial on the node.

Several outputs: a prefix may return a tuple of tensors (a UNet's frozen encoder stages return every skip
level the decoder reads from them, ``seg_unet.unet_stages``). They are packed into one row per sample
(``pack``), stored like any features, and unpacked into the same tuple for the suffix (``CachePlan.shapes``).
"""
from __future__ import annotations

import fcntl
import hashlib
import math
import os
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from tunedepth.errors import FeatureCacheError
from tunedepth.models.engine import AUGMENT_VIEWS, InputFn, Norm, apply_views, autocast, to_input
from tunedepth.models.registry import BackboneSpec

DEFAULT_LIMIT_MB = 4096
MEMORY_ENTRIES = 16  # feature tensors kept in this process (LRU); the disk copy stays memory-mapped
DISK_LIMIT_MB = 16384  # oldest files are removed beyond this


@dataclass(frozen=True)
class CachePlan:
    n_frozen: int  # groups computed once (0 = the cache is off)
    views: int
    reason: str  # what happens and why, for the log and the trial's results
    shapes: tuple[tuple[int, ...], ...] = ()  # per-sample shapes of a prefix's several outputs (empty: one tensor)

    @property
    def on(self) -> bool:
        return self.n_frozen > 0


def limit_mb() -> float:
    return float(os.environ.get("TUNEDEPTH_FEATURE_CACHE_MB", DEFAULT_LIMIT_MB))


def features_dir() -> Path:
    from tunedepth.cache import cache_dir

    return cache_dir() / "features"


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def plan_cache(spec: BackboneSpec, model: nn.Module, n_trained: int, *, enabled: bool, freeze_bn: bool,
               augment: str, n_samples: int, input_shape: tuple[int, ...]) -> CachePlan:
    """Whether (and how deep) a trial training the top ``n_trained`` groups can cache its frozen prefix."""
    views = AUGMENT_VIEWS[augment]
    n_frozen = len(spec.groups) - n_trained
    if not enabled:
        return CachePlan(0, views, "off (feature_cache is false)")
    if spec.stages is None:
        return CachePlan(0, views, f"off (backbone {spec.name} has skip connections across groups: no prefix)")
    if n_frozen <= 0:
        return CachePlan(0, views, "off (every group is trained)")
    prefix, _ = spec.split(model, n_frozen)
    if not freeze_bn and has_batchnorm(prefix):
        return CachePlan(0, views, "off (freeze_bn is false: frozen BatchNorm layers use batch statistics)")
    device = next(model.parameters()).device
    with torch.no_grad():
        out = prefix.eval()(torch.zeros(1, *input_shape, device=device))
    shapes = tuple(tuple(t.shape[1:]) for t in out) if isinstance(out, (tuple, list)) else ()
    mb = n_samples * views * pack(out).shape[1:].numel() * 4 / 2**20
    if mb > limit_mb():
        return CachePlan(0, views, f"off ({mb:.0f} MB of features > TUNEDEPTH_FEATURE_CACHE_MB={limit_mb():.0f}; "
                                   "raise it to cache)")
    what = f"{n_frozen} frozen group(s) computed once" + (f", {views} views per sample" if views > 1 else "")
    if shapes:
        what += f", {len(shapes)} maps"
    return CachePlan(n_frozen, views, f"on ({what}, {mb:.1f} MB)", shapes)


def pack(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """A prefix's output as one tensor: itself, or its several outputs flattened side by side (N, D)."""
    if isinstance(out, torch.Tensor):
        return out
    return torch.cat([t.float().flatten(1) for t in out], 1)


def unpack(rows: torch.Tensor, shapes: tuple[tuple[int, ...], ...]) -> tuple[torch.Tensor, ...]:
    """``pack``'s inverse for rows (B, D); 4-D maps come back channels-last, as the trial's model computes them."""
    sizes = [math.prod(s) for s in shapes]
    out = (t.reshape(-1, *s) for t, s in zip(rows.split(sizes, 1), shapes))
    return tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in out)


@torch.no_grad()
def compute_features(prefix: nn.Module, x_uint8: torch.Tensor, norm: Norm | None, views: int,
                     device: torch.device, amp: bool = False, batch_size: int = 256) -> torch.Tensor:
    """The prefix's output for every sample and view: (views, N, ...) float32 on the CPU."""
    prefix.eval()
    out = []
    for v in range(views):
        chunks = []
        for i in range(0, x_uint8.shape[0], batch_size):
            xb = x_uint8[i : i + batch_size].to(device)
            xb = apply_views(xb, torch.full((xb.shape[0],), v)) if views > 1 else xb
            with autocast(device, amp):
                chunks.append(pack(prefix(to_input(xb, norm))).float().cpu())
        out.append(torch.cat(chunks))
    return torch.Tensor.as_subclass(torch.stack(out), torch.Tensor)  # plain: torch.load(weights_only) reads it


def feature_inputs(features: torch.Tensor, idx_map: torch.Tensor | None = None,
                   shapes: tuple[tuple[int, ...], ...] = ()) -> InputFn:
    """The ``InputFn`` of cached features (views, N, ...); ``idx_map`` maps trial sample -> feature row;
    ``shapes``: the rows are packed outputs, unpacked into their tuple (``CachePlan.shapes``)."""
    def inputs(idx: torch.Tensor, view: torch.Tensor | None = None):
        rows = idx_map[idx] if idx_map is not None else idx
        f = features[0, rows] if view is None else features[view.to(features.device), rows]
        return unpack(f, shapes) if shapes else f
    return inputs


def module_fingerprint(module: nn.Module) -> str:
    """A content hash of a module's state (names and values)."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def feature_key(spec: BackboneSpec, n_frozen: int, prefix_fingerprint: str, x_fingerprint: str,
                norm: Norm | None, views: int, device: torch.device, amp: bool) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((spec.name, n_frozen, prefix_fingerprint, x_fingerprint, norm, views, device.type,
                   amp and device.type == "cuda")).encode())
    return f"{spec.name}-{n_frozen}-{h.hexdigest()}"


class FeatureStore:
    """Feature tensors by key: this process's memory first, then the node's disk, else computed once."""

    def __init__(self) -> None:
        self.memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.computed = 0  # how many times this process ran a prefix over a split (tests and logs read it)

    def get(self, key: str, compute: Callable[[], torch.Tensor], directory: Path | None = None) -> torch.Tensor:
        if key in self.memory:
            self.memory.move_to_end(key)
            return self.memory[key]
        directory = directory or features_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{key}.pt"
        with _locked(directory / f"{key}.lock"):
            features = _load(path)
            if features is None:
                features = compute()
                self.computed += 1
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                torch.save(features, tmp)
                os.replace(tmp, path)  # atomic: another trial sees the whole file or none
                features = _load(path, retry=False)
                _prune(directory, keep=path)
        self.memory[key] = features
        while len(self.memory) > MEMORY_ENTRIES:
            self.memory.popitem(last=False)
        return features


def _load(path: Path, retry: bool = True) -> torch.Tensor | None:
    """The cached features at ``path``; None if there are none (or, with ``retry``, if the entry is
    unreadable: it is removed and recomputed once). A file this process just wrote that still does not
    load is a :class:`FeatureCacheError` naming the file and the cause, never a silent None."""
    if not path.exists():
        if retry:
            return None
        raise FeatureCacheError(f"feature cache file {path} vanished right after it was written; "
                                f"check the disk under {path.parent} (or set feature_cache false)")
    try:
        features = torch.load(path, mmap=True, weights_only=True)  # shared page cache, no copy per trial
        if not isinstance(features, torch.Tensor):
            raise TypeError(f"holds a {type(features).__name__}, not a tensor")
        return features
    except Exception as e:  # a truncated file from a killed writer: recompute it once
        if not retry:
            raise FeatureCacheError(f"feature cache file {path} was just written but does not load "
                                    f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); delete {path.parent} "
                                    f"or set feature_cache false") from None
        path.unlink(missing_ok=True)
        return None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _prune(directory: Path, keep: Path) -> None:
    files = sorted(directory.glob("*.pt"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    for p in files:
        if total <= DISK_LIMIT_MB * 2**20:
            break
        if p != keep:
            total -= p.stat().st_size
            p.unlink(missing_ok=True)


STORE = FeatureStore()  # one per process: trials of a reused Ray actor share it
