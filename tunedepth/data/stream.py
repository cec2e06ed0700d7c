"""Data beyond memory: samples decoded once to a file on disk and read back per batch, never all at once.

The in-memory path holds every unit's decoded image (float32) and every sample (uint8) in RAM, and Ray ships
the samples through its object store to each trial process: fine for MedMNIST, not for 100k images at 224 px.
The streaming path, chosen by the search settings ``stream`` (auto | on | off) and ``stream_bytes``:

* a loader lists files (``LazyImages``) instead of reading them; a unit is decoded when it is used;
* the near-duplicate hashes and the app's samples are computed per chunk of units in ``DataLoader`` worker
  processes (``map_chunks``), each chunk's samples appended to one raw uint8 file per split (``DiskWriter``),
  like MONAI's ``PersistentDataset``: decoded once, kept on disk under ``$TUNEDEPTH_CACHE/stream``;
* a split's images are then a ``DiskImages``: shape/dtype like a tensor, ``x[idx]`` reads just those rows with
  ``os.pread``, and it pickles as its path, so a trial receives a few bytes and reads what its batches need;
* a frozen prefix's features are computed batch by batch from it and kept on disk, memory-mapped, by
  ``tunedepth.training.features`` (as on the in-memory path).

Splits, budgets, hashes and samples are the same as in memory (each unit's samples depend on the unit alone);
``tests/test_stream.py`` checks it. The files live on the driver's disk: a multi-node cluster needs
``$TUNEDEPTH_CACHE`` on a filesystem every node mounts.
"""
from __future__ import annotations

import hashlib
import os
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from tunedepth.errors import ConfigError

STREAM_MODES = ("auto", "on", "off")
DEFAULT_STREAM_BYTES = 4 << 30  # "auto" streams above 4 GiB of decoded uint8 samples (the search setting's default)
WORKERS = 2  # DataLoader processes decoding files
CHUNK_UNITS = 256  # units decoded per worker task


def use_stream(mode: str, n_units: int, image_size: int, threshold_bytes: int) -> bool:
    """Stream when ``mode`` is "on", or "auto" and the units' decoded uint8 samples at the network size
    (``n_units`` x 3 x size x size bytes, one sample per unit) exceed ``threshold_bytes``."""
    return mode == "on" or (mode == "auto" and n_units * 3 * image_size * image_size > threshold_bytes)


def stream_store(app, raw, image_size: int, seed: int, mode: str, threshold_bytes: int, log) -> Path | None:
    """The folder a build streams its samples to, or None to build in memory. Only apps whose samples come
    from each unit alone (classification: crops of a frame) stream; the detection and segmentation apps
    number and draw their samples across a split's units."""
    if not use_stream(mode, len(raw), image_size, threshold_bytes):
        return None
    if app.kind != "classification":
        if mode == "on":
            raise ConfigError(f"--stream on: app {app.name} ({app.kind}) cuts its samples across a split's units and "
                              f"is built in memory; use --stream off (or auto)")
        log(f"data: {len(raw)} {app.unit}s exceed stream_bytes, but {app.kind} apps are built in memory")
        return None
    store = stream_dir() / f"{app.name}-{image_size}-{seed}-{raw_key(raw)}"
    log(f"data: streaming {len(raw)} {app.unit}s: samples decoded once to {store}, read per batch")
    return store


def raw_key(raw) -> str:
    """Names the stream folder: the file listing's key, or a hash of the embedded units' names and labels."""
    if is_lazy(raw.images):
        return raw.images.key()
    return hashlib.blake2b(repr((raw.names, raw.labels.tolist())).encode(), digest_size=12).hexdigest()


def stream_dir() -> Path:
    from tunedepth.cache import cache_dir

    return cache_dir() / "stream"


class LazyImages(Sequence):
    """Image files read on access (``reader(item)``): what a loader lists in place of decoded images. An item is
    a path, or a tuple whose first element is the path. ``read_all(items)`` (optional) reads them all at once
    for the in-memory path (e.g. listing every unreadable file, with a count)."""

    def __init__(self, items: Sequence, reader: Callable, read_all: Callable | None = None):
        self.paths, self.reader, self.read_all = list(items), reader, read_all

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        return self.reader(self.paths[i])

    def subset(self, idx) -> "LazyImages":
        return LazyImages([self.paths[int(i)] for i in idx], self.reader, self.read_all)

    def materialize(self) -> list:
        """Every image decoded, in order."""
        return self.read_all(self.paths) if self.read_all else [self.reader(p) for p in self.paths]

    def key(self) -> str:
        """A content key of the listing: paths, sizes and modification times."""
        h = hashlib.blake2b(digest_size=12)
        for item in self.paths:
            p = item[0] if isinstance(item, tuple) else item
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


def is_lazy(images) -> bool:
    return isinstance(images, LazyImages)


def fixed_mmap_threshold(nbytes: int = 128 << 10) -> None:
    """glibc serves blocks above ``nbytes`` with mmap and returns them on free. By default it raises that
    threshold as blocks are freed, after which batch-sized buffers come from the heap, which small tensors
    kept between batches then pin: peak RSS grows with the samples read although nothing is retained
    (measured: +117 MB per 1500 samples at 224 px, none with the threshold fixed). A process reading from
    disk fixes it; elsewhere (no glibc) nothing happens."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, int(nbytes))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


class DiskImages:
    """uint8 images (N, C, H, W) in a raw file, rows ``rows`` of it (a view): read per index, never whole."""

    dtype = torch.uint8
    ndim = 4

    def __init__(self, path: str | Path, full_shape: tuple[int, ...], rows: np.ndarray | None = None):
        self.path, self.full_shape = str(path), tuple(int(s) for s in full_shape)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._fd: int | None = None

    @property
    def shape(self) -> torch.Size:
        n = self.full_shape[0] if self.rows is None else len(self.rows)
        return torch.Size((n, *self.full_shape[1:]))

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.full_shape[1:]))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}  # a trial process opens the file itself

    def _positions(self, idx) -> np.ndarray:
        if isinstance(idx, slice):
            pos = np.arange(*idx.indices(len(self)))
        else:
            pos = np.asarray(idx.cpu() if isinstance(idx, torch.Tensor) else idx, dtype=np.int64).reshape(-1)
        return pos if self.rows is None else self.rows[pos]

    def __getitem__(self, idx) -> torch.Tensor:
        """The rows ``idx`` (slice, int array or tensor) as a uint8 tensor, read from disk; runs of consecutive
        rows are read at once."""
        rows = self._positions(idx)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
            fixed_mmap_threshold()
        out = np.empty((rows.size, self.row_bytes), dtype=np.uint8)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
        for run in np.split(np.arange(rows.size), breaks):
            if run.size == 0:
                continue
            first, n = int(sorted_rows[run[0]]), run.size
            buf = os.pread(self._fd, n * self.row_bytes, first * self.row_bytes)
            out[order[run]] = np.frombuffer(buf, dtype=np.uint8).reshape(n, self.row_bytes)
        return torch.from_numpy(out).view(rows.size, *self.full_shape[1:])

    def take(self, idx) -> "DiskImages":
        """A view of the rows ``idx`` (nothing read)."""
        return DiskImages(self.path, self.full_shape, self._positions(idx))

    def fingerprint(self, chunk: int = 1024) -> str:
        """The content hash ``SplitData.fingerprint`` gives the same images held in memory."""
        h = hashlib.blake2b(digest_size=16)
        h.update(repr((tuple(self.shape), str(torch.uint8))).encode())
        for i in range(0, len(self), chunk):
            h.update(self[i : i + chunk].numpy().tobytes())
        return h.hexdigest()


def select(x, idx: torch.Tensor | None, device: torch.device):
    """The images of samples ``idx`` (all if None) for a trial: an in-memory tensor moves to ``device`` once;
    images on disk stay there (a view), read per batch."""
    if isinstance(x, DiskImages):
        return x if idx is None else x.take(idx)
    return (x if idx is None else x[idx]).to(device)


def on_device(inputs: Callable, x, device: torch.device) -> Callable:
    """``inputs`` (an ``InputFn``) whose batches are moved to ``device`` when read from disk on the CPU."""
    if not isinstance(x, DiskImages) or torch.device(device).type == "cpu":
        return inputs
    return lambda idx, view=None: inputs(idx, view).to(device, non_blocking=True)


def take(x, idx):
    """``x[idx]`` for a tensor; a view for ``DiskImages``."""
    return x.take(idx) if isinstance(x, DiskImages) else x[idx]


class DiskWriter:
    """Appends uint8 sample batches (n, C, H, W) to a file; ``finish()`` moves it in place atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        self.f = open(self.tmp, "wb")
        self.n, self.sample_shape = 0, None

    def append(self, x: torch.Tensor) -> None:
        if self.sample_shape is None:
            self.sample_shape = tuple(x.shape[1:])
        self.f.write(x.contiguous().numpy().tobytes())
        self.n += x.shape[0]

    def finish(self, sample_shape: tuple[int, ...]) -> DiskImages:
        self.f.close()
        os.replace(self.tmp, self.path)
        return DiskImages(self.path, (self.n, *(self.sample_shape or sample_shape)))


class _Chunks(torch.utils.data.Dataset):
    def __init__(self, fn: Callable, n: int, size: int):
        self.fn, self.n, self.size = fn, n, size

    def __len__(self) -> int:
        return (self.n + self.size - 1) // self.size

    def __getitem__(self, k: int):
        lo = k * self.size
        try:
            return lo, self.fn(np.arange(lo, min(lo + self.size, self.n)))
        except Exception as e:  # handed back whole: DataLoader would wrap it in its worker's traceback
            return lo, e


def map_chunks(fn: Callable[[np.ndarray], object], n: int, workers: int = WORKERS,
               size: int = CHUNK_UNITS) -> Iterator[tuple[int, object]]:
    """``(first unit, fn(unit indices))`` per chunk of ``size`` of ``n`` units, in order, computed in ``workers``
    DataLoader processes (0: here). Only a few chunks are in flight at once: memory stays bounded."""
    loader = torch.utils.data.DataLoader(_Chunks(fn, n, size), batch_size=None, num_workers=workers,
                                         prefetch_factor=2 if workers else None)
    for lo, result in loader:
        if isinstance(result, Exception):
            raise result  # e.g. a ConfigError naming an unreadable file: one line, as on the in-memory path
        yield lo, result


def _signature_chunk(raw, idx: np.ndarray) -> np.ndarray:
    from tunedepth.data.structure import unit_signatures

    torch.set_num_threads(1)
    return unit_signatures(raw.subset(idx).thumbnails())


def stream_signatures(raw, workers: int = WORKERS) -> np.ndarray:
    """Every unit's near-duplicate signature (``tunedepth.data.structure``), decoding a chunk of units at a time."""
    from tunedepth.data.structure import SIGNATURE

    parts = [h for _, h in map_chunks(partial(_signature_chunk, raw), len(raw), workers)]
    return np.concatenate(parts) if parts else np.zeros((0, SIGNATURE, SIGNATURE), dtype=np.uint8)


def _samples_chunk(make_samples, raw, split, size, seed, train_raw, idx: np.ndarray):
    torch.set_num_threads(1)
    return make_samples(raw.subset(idx), split, size, seed, train_raw)


def stream_samples(app, raw, split: str, size: int, seed: int, train_raw, path: Path, workers: int = WORKERS):
    """The app's samples of ``raw``'s units (one split), with the images written to ``path`` chunk by chunk:
    ``Samples`` whose ``x`` is a ``DiskImages``."""
    from tunedepth.data.units import Samples

    writer = DiskWriter(path)
    ys, metas, masks = [], [], []
    fn = partial(_samples_chunk, app.make_samples, raw, split, size, seed, train_raw)
    for lo, s in map_chunks(fn, len(raw), workers):
        writer.append(s.x)
        ys.append(s.y)
        metas.append({**s.meta, "unit": np.asarray(s.meta["unit"]) + lo})
        if s.mask is not None:
            masks.append(s.mask)
    x = writer.finish((3, size, size))
    meta = {k: np.concatenate([m[k] for m in metas]) for k in (metas[0] if metas else {"unit": 0})} if metas else \
        {"unit": np.zeros(0, dtype=np.int64)}
    y = torch.cat(ys) if ys else torch.zeros(0, dtype=torch.int64)
    return Samples(x=x, y=y, meta=meta, mask=torch.cat(masks) if masks else None)
