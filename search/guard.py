"""What keeps a run safe: valid run names, one owner per run name, and interrupts that end as interrupts.

- ``check_run_name``: a run name is one path component (no separators, no ``..``, not absolute), so
  ``results/<name>`` never points outside ``--results-dir``.
- ``RunLock``: while a run or a resume owns ``results/<name>``, a second one with that name is refused in
  one line (an ``flock`` on ``results/.<name>.lock``, released by the kernel if the owner dies).
- :class:`Interrupted`: what the runner raises when a signal ended the search (``search.interrupts`` watches
  for it inside Tune); the CLI prints one line and exits 130 (SIGINT) or 143 (SIGTERM).

Nothing here imports Ray: the CLI, ``report`` and ``status`` import this module.
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from trainables.errors import ConfigError


def check_run_name(name: str) -> str:
    """``name`` if it is a single, ordinary path component; else a one-line ConfigError with the fix."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise ConfigError(f"run name {name!r} must be one plain folder name (no '/', no leading '.', not '..'); "
                          f"use --results-dir to choose where runs go, e.g. --name my-run")
    return name


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail in one line, within ``timeout_s``, when a cluster address names a port nobody answers on.

    ``auto`` and an empty address are left to Ray (they look for a local cluster). Only reachability is
    checked here, before any data is built or folder written; Ray checks the rest when it attaches.
    """
    if not address or address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    host, port = parts.hostname, parts.port
    if not host or not port:
        raise ConfigError(f"--address {address!r} is not HOST:PORT, ray://HOST:PORT or auto; e.g. --address 127.0.0.1:6379")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as e:
        raise ConfigError(f"no Ray cluster answers at {host}:{port} ({e.strerror or type(e).__name__}); start one with "
                          f"`ray start --head --port {port}`, or drop --address to run locally") from None


class RunLock:
    """Exclusive ownership of run ``name`` under ``results_dir`` for the life of this object (a context manager)."""

    def __init__(self, results_dir: str | Path, name: str) -> None:
        self.path = Path(results_dir).resolve() / f".{check_run_name(name)}.lock"
        self.name = name
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigError(f"cannot write to the results folder {self.path.parent} ({e.strerror}); "
                              f"choose a writable --results-dir") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(f"run {self.name!r} is in use by process {holder} (a run or resume of it is still "
                              f"going); wait for it, or pick another --name") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Interrupted(Exception):
    """The search was stopped by a signal before every trial ended; what was written so far is kept."""

    def __init__(self, name: str, signum: int) -> None:
        self.name, self.signum = name, signum
        super().__init__(f"interrupted: resume with `tunedepth resume {name}`")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
