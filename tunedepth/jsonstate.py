"""Resume state as JSON, not pickle: loading a run folder's scheduler or searcher state runs no code.

What our schedulers and searchers keep survives a round trip: tuples (also as dict keys), sets, dicts with
non-string keys, inf/nan, numpy scalars, and dataclasses registered with ``@stored`` (only those are rebuilt
on load; anything else is refused when saving, with its type named). Ray's own experiment state (``tuner.pkl``,
``experiment_state-*.json``) stays Ray's business: resume only run folders you trust. Every searcher and
scheduler of tunedepth writes this JSON (the Optuna searcher: its trial numbers; its studies are in
``optuna.db``), so nothing of tunedepth's own state is a pickle.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

_CLASSES: dict[str, type] = {}
_TAGS = ("__tuple__", "__set__", "__items__", "__class__", "__float__")


def stored(cls: type) -> type:
    """Class decorator: a dataclass whose instances may appear in JSON state."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    _CLASSES[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return cls


def encode(obj: Any) -> Any:
    """``obj`` as plain JSON values (tagged dicts for what JSON lacks)."""
    if obj is None or isinstance(obj, (bool, str, int)) and not isinstance(obj, np.generic):
        return obj
    if isinstance(obj, np.generic):
        return encode(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(x) for x in obj]}
    if isinstance(obj, (set, frozenset)):
        return {"__set__": [encode(x) for x in sorted(obj, key=repr)]}
    if isinstance(obj, list):
        return [encode(x) for x in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: encode(v) for k, v in obj.items()}
        return {"__items__": [[encode(k), encode(v)] for k, v in obj.items()]}
    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if name in _CLASSES:
        return {"__class__": name, "fields": {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    raise TypeError(f"cannot keep a {type(obj).__name__} in JSON resume state (register dataclasses with @stored)")


def decode(obj: Any) -> Any:
    if isinstance(obj, list):
        return [decode(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tuple__" in obj:
        return tuple(decode(x) for x in obj["__tuple__"])
    if "__set__" in obj:
        return {decode(x) for x in obj["__set__"]}
    if "__items__" in obj:
        return {decode(k): decode(v) for k, v in obj["__items__"]}
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__class__" in obj:
        cls = _CLASSES.get(obj["__class__"])
        if cls is None:
            raise ValueError(f"resume state names an unknown class {obj['__class__']!r}")
        return cls(**{k: decode(v) for k, v in obj["fields"].items()})
    return {k: decode(v) for k, v in obj.items()}


def dump(state: Any, path: str) -> None:
    """Write ``state`` to ``path`` atomically (a crash mid-write leaves the previous state)."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(encode(state), f)
        os.replace(tmp, path)
    finally:  # a failed write (a full disk) leaves no temp file beside the previous state
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path: str) -> Any:
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return decode(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path} is not JSON resume state (written by an older tunedepth, or not by tunedepth); "
                         "start the run again under a new --name") from None

