"""A run's data for an app: its units from the embedded generator or from files (``tunedepth.data.loaders``), then
the data layer's build (``tunedepth.data.build.split_units``: near-duplicates, splits, samples, budgets)."""
from __future__ import annotations

import time

from tunedepth.data.build import Log, split_units, subsample_units
from tunedepth.data.loaders import load_units
from tunedepth.data.splits import SplitData
from tunedepth.data.stream import DEFAULT_STREAM_BYTES, is_lazy, stream_store
from tunedepth.errors import ConfigError


def build_split_data(app, data_path: str = "", image_size: int = 64, seed: int = 0, smoke: bool = False,
                     n: int = 0, neg_per_pos: float | None = None, log: Log | None = None,
                     stream: str = "auto", stream_bytes: int = DEFAULT_STREAM_BYTES, masks: str = "auto") -> SplitData:
    """The run's data for ``app``: embedded (``data_path`` empty) or real files at ``data_path``.

    ``n``: units to generate (embedded; 0 = the app's size, smaller with ``smoke``), or the most units to use
    (real data; 0 = all, ``app.sizes.smoke`` with ``smoke``). ``neg_per_pos``: negative down-sampling of the
    training split, at most this many samples of any class per sample of the rarest (None = the app's
    default, 0 = off). ``stream`` / ``stream_bytes``: samples decoded to disk and read per batch
    (``tunedepth.data.stream``) when "on", or "auto" above that many bytes. ``masks``: how the mask values of
    real segmentation data are read (``tunedepth.data.loaders.segmentation.read_as``).
    """
    log = log or (lambda s: None)
    t0 = time.time()
    if data_path:
        raw = load_units(data_path, app, masks=masks)
        cap = n or (app.sizes.smoke if smoke else 0)
        if cap and len(raw) > cap:
            raw = subsample_units(raw, cap, seed)
            log(f"data: using {cap} of the units in {data_path} (smoke run or data_samples)")
    else:
        if app.generate is None:
            raise ConfigError(f"app {app.name!r} has no embedded data; give --data PATH")
        raw = app.generate(n or (app.sizes.smoke if smoke else app.sizes.full), image_size, seed)
    store = stream_store(app, raw, image_size, seed, stream, stream_bytes, log)
    if store is None and is_lazy(raw.images):
        raw.images = raw.images.materialize()  # in memory: every file read now
    log(f"data: {len(raw)} {app.unit}s ({time.time() - t0:.1f}s to {'read' if data_path else 'generate'})")
    return split_units(app, raw, image_size, seed, neg_per_pos=neg_per_pos, log=log, store=store)
