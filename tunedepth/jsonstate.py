"""Resume state as JSON, not pickle: loading a run folder's scheduler or searcher state runs no code.

What our schedulers and searchers keep survives a round trip: tuples (also as dict keys), sets, dicts with
non-string keys, inf/nan, numpy scalars, and dataclasses registered with ``@stored`` (only those are rebuilt
on load; anything else is refused when saving, with its type named). Ray's own experiment state (``tuner.pkl``,
``experiment_state-*.json``) stays Ray's business: resume only run folders you trust.

State that only pickles (the Optuna searcher's Ray ``OptunaSearch`` objects) is written signed instead
(``dump_signed``): an HMAC-SHA256 with a key kept outside the run folder (``$TUNEDEPTH_CACHE/state.key``, mode
0600, made on first use), checked before anything is unpickled, so a folder from elsewhere is refused in one line.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import os
import pickle
from pathlib import Path
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


SIGNED_MAGIC = b"tunedepth-signed-pickle-1\n"


def _key() -> bytes:
    path = Path(os.environ.get("TUNEDEPTH_CACHE", Path.home() / ".cache" / "tunedepth")) / "state.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it just now
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32).hex().encode())
    return path.read_bytes().strip()


def dump_signed(state: Any, path: str) -> None:
    """Pickle ``state`` to ``path`` with an HMAC of the bytes (atomic)."""
    body = pickle.dumps(state)
    tag = hmac.new(_key(), body, hashlib.sha256).hexdigest().encode()
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(SIGNED_MAGIC + tag + b"\n" + body)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_signed(path: str) -> Any:
    """Unpickle what ``dump_signed`` wrote, only if its HMAC checks out with this machine's key."""
    with open(path, "rb") as f:
        raw = f.read()
    head, _, rest = raw.partition(b"\n")
    tag, _, body = rest.partition(b"\n")
    ok = head + b"\n" == SIGNED_MAGIC and hmac.compare_digest(tag, hmac.new(_key(), body, hashlib.sha256)
                                                               .hexdigest().encode())
    if not ok:
        raise ValueError(f"{path} is not resume state signed on this machine (key $TUNEDEPTH_CACHE/state.key); "
                         "refusing to unpickle it: resume the run where it was started, or start it again")
    return pickle.loads(body)
