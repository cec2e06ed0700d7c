"""What keeps a run safe: valid run names, one owner per run name, and interrupts that end as interrupts.

- ``check_run_name``: a run name is one path component (no separators, no ``..``, not absolute), so
  ``results/<name>`` never points outside ``--results-dir``.
- ``RunLock``: while a run or a resume owns ``results/<name>``, a second one with that name is refused in
  one line (an ``flock`` on ``results/.<name>.lock``, released by the kernel if the owner dies).
- :class:`Interrupted`: what the runner raises when a signal ended the search (``tunedepth.hpo.interrupts`` watches
  for it inside Tune); the CLI prints one line and exits 130 (SIGINT) or 143 (SIGTERM).
- Cluster attach: ``check_address`` (the port answers, and the head accepts this client's token) and
  ``use_token_auth`` (RAY_AUTH_MODE=token when a token exists, which Ray 2.60 does not do for an explicit address).

Nothing here imports Ray at module level (only ``check_authentication``, when an address is given): the CLI,
``report`` and ``status`` import this module.
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from tunedepth.errors import ConfigError
from tunedepth.hpo.ray_compat import gcs_cluster_id, reread_auth_mode


def check_run_name(name: str) -> str:
    """``name`` if it is a single, ordinary path component; else a one-line ConfigError with the fix."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise ConfigError(f"run name {name!r} must be one plain folder name (no '/', no leading '.', not '..'); "
                          f"use --results-dir to choose where runs go, e.g. --name my-run")
    return name


TOKEN_FIX = ("copy the cluster's token (`ray get-auth-token` on its head node prints it) into $RAY_AUTH_TOKEN "
             "or ~/.ray/auth_token")


def find_token() -> tuple[str, str] | None:
    """(token, where it came from) as Ray's client looks for it: $RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH,
    ~/.ray/auth_token; None when there is none."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip(), "$RAY_AUTH_TOKEN"
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH", ""), str(Path.home() / ".ray" / "auth_token")):
        try:
            token = Path(path).read_text().strip() if path else ""
        except OSError:
            continue
        if token:
            return token, path
    return None


def use_token_auth() -> bool:
    """Before attaching to a cluster: when $RAY_AUTH_MODE is unset and a token exists, set RAY_AUTH_MODE=token.

    Ray 2.60 turns token mode on by itself for a local cluster and for address "auto" only; with an explicit
    address (``--address``, $RAY_ADDRESS, ``ray job submit``) the client would connect without its token and be
    refused. A mode the user set is left as it is. Returns whether token mode is on.
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None:
        return mode.lower() == "token"
    if find_token() is None:
        return False
    os.environ["RAY_AUTH_MODE"] = "token"
    reread_auth_mode()  # Ray read its config at import: have it read RAY_AUTH_MODE again (as Ray itself does)
    return True


def cluster_address(address: str) -> str:
    """The address a search attaches to: ``--address``, else $RAY_ADDRESS (set by `ray job submit`), else ''."""
    return address or os.environ.get("RAY_ADDRESS", "")


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail in one line, within ``timeout_s``, when a cluster address names a port nobody answers on, or a Ray
    head that refuses this client's token (or its lack of one).

    ``auto`` and an empty address are left to Ray (they look for a local cluster). Checked before any data is
    built or folder written; Ray checks the rest when it attaches.
    """
    if not address or address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    host, port = parts.hostname, parts.port
    if not host or not port:
        raise ConfigError(
            f"--address {address!r} is not HOST:PORT, ray://HOST:PORT or auto; e.g. --address 127.0.0.1:6379"
        )
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as e:
        raise ConfigError(f"no Ray cluster answers at {host}:{port} ({e.strerror or type(e).__name__}); start one with "
                          f"`ray start --head --port {port}`, or drop --address to run locally") from None
    if "://" not in address:  # a head's GCS port (ray:// is Ray Client's own protocol)
        check_authentication(host, port, 2 * timeout_s)


def auth_disabled() -> bool:
    """$RAY_AUTH_MODE opts this process out of token auth."""
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled"


def check_authentication(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Ask the Ray head at ``host:port`` one cheap question with the token the client will send (none when
    RAY_AUTH_MODE is not token and no token exists); its refusal becomes one line naming the fix."""
    import grpc

    found = None if auth_disabled() else find_token()
    metadata = [("authorization", f"Bearer {found[0]}")] if found else []
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            gcs_cluster_id(channel, timeout_s, metadata)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise ConfigError(
                    f"{host}:{port} answers but not as a Ray head ({e.code().name} within {timeout_s:g}s); "
                    f"give the port `ray start --head --port` was started with (default 6379), or "
                    f"retry if the head is overloaded"
                ) from None
            if auth_disabled():
                why = "RAY_AUTH_MODE=disabled is set here"
                fix = "unset it (a token in $RAY_AUTH_TOKEN or ~/.ray/auth_token is then used)"
            elif found:
                why = f"it refused the token from {found[1]}"
                fix = "replace it with the cluster's own (`ray get-auth-token` on its head node prints it)"
            else:
                why, fix = "no token was found ($RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)", TOKEN_FIX
            raise ConfigError(f"the Ray cluster at {host}:{port} uses token authentication and {why}; {fix}") from None


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
