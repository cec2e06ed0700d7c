"""A real ``ray start --head`` cluster that a test starts and stops itself, never touching other Ray instances.

It runs as ``ray start --head --block`` in its own temp dir on free ports; stopping it is SIGTERM to that one
process, which shuts down the processes it started (what ``--block`` is for), never ``ray stop``.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass
class Head:
    port: int
    dashboard_port: int
    token: str
    cwd: Path  # the head's working directory: a job's, without --working-dir
    env: dict  # a client environment with the cluster's token in $RAY_AUTH_TOKEN and RAY_AUTH_MODE unset

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def ray_head(cwd: Path, cpus: int = 2, timeout_s: float = 90):
    """A token-auth head on 127.0.0.1 (dashboard included) started in ``cwd``, with the worktree on its workers'
    PYTHONPATH."""
    port, dash, client, agent, agent_grpc, env_agent, metrics = free_ports(7)
    token = secrets.token_hex(32)
    temp = tempfile.mkdtemp(prefix="td-ray-", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cluster_env = {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    cmd = [str(BIN / "ray"), "start", "--head", "--block", "--port", str(port), "--dashboard-host", "127.0.0.1",
           "--dashboard-port", str(dash), "--ray-client-server-port", str(client),
           "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
           "--runtime-env-agent-port", str(env_agent), "--metrics-export-port", str(metrics),
           "--num-cpus", str(cpus), "--temp-dir", temp, "--disable-usage-stats"]
    log = open(Path(temp) / "head.log", "w")
    proc = subprocess.Popen(cmd, env=cluster_env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        t0 = time.time()
        while not (
            _answers(port) and _answers(dash) and "Ray runtime started" in (Path(temp) / "head.log").read_text()
        ):
            if proc.poll() is not None or time.time() - t0 > timeout_s:
                raise RuntimeError(f"ray start --head failed:\n{(Path(temp) / 'head.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield Head(port, dash, token, Path(cwd), {**base, "RAY_AUTH_TOKEN": token})
    finally:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started, and only those
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the processes it started, nobody else's
            proc.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
