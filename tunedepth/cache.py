"""The one cache directory of tunedepth: ``$TUNEDEPTH_CACHE``, default ``~/.cache/tunedepth``.

Its owners read paths under it from here: pretrained sources (``sources/``, ``tunedepth.models``), the
streamed-data store (``tunedepth.data.stream``) and the frozen-prefix feature store (``tunedepth.training.features``).
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("TUNEDEPTH_CACHE", Path.home() / ".cache" / "tunedepth"))
