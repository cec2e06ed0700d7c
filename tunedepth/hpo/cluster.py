"""Where the trials run: a fresh local Ray, or a cluster (``--address``, $RAY_ADDRESS under `ray job submit`).

Attaching uses the cluster's token when one exists (``tunedepth.hpo.guard.use_token_auth``);
``tunedepth.hpo.guard.check_address`` has already checked, before any data was built, that the head answers and
accepts it.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable

import ray

from tunedepth.config import SearchConfig
from tunedepth.errors import ConfigError
from tunedepth.hpo.guard import TOKEN_FIX, auth_disabled, cluster_address, use_token_auth
from tunedepth.hpo.ray_compat import quiet_token_notice

Log = Callable[[str], None]
DASHBOARD_HOST, DASHBOARD_PORT = "127.0.0.1", 8265


def connect_ray(cfg: SearchConfig, log: Log) -> None:
    """Attach to ``cfg.address`` (or $RAY_ADDRESS, as under `ray job submit`), else start a local Ray."""
    if ray.is_initialized():
        return
    # Each checkpoint forces a small experiment-state snapshot (num_to_keep is set); that is intended here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    common = dict(logging_level=logging.WARNING, log_to_driver=False)
    address = cluster_address(cfg.address)
    if address:
        if cfg.dashboard:
            log("--dashboard applies to a local Ray only; the cluster's own dashboard is on its head node (:8265)")
        token = use_token_auth()
        try:
            ray.init(address=cfg.address or None, **common)
        except (ConnectionError, ray.exceptions.AuthenticationError) as e:
            raise ConfigError(f"could not attach to the Ray cluster at {address} ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160]}); check it is up (`ray status --address {address}`)"
                              f"{'' if token else ' and, if it uses token auth, ' + TOKEN_FIX}") from None
        log(f"ray: attached to {address}{' (token auth)' if token else ''}, "
            f"{int(ray.cluster_resources().get('CPU', 0))} CPUs, {len(ray.nodes())} node(s)")
        return
    # address="local": always a fresh local Ray, even if a stale /tmp/ray/ray_current_cluster names another
    with quiet_token_notice():  # said in the line below, on stdout: stderr keeps one line for a run's error
        ray.init(address="local", include_dashboard=cfg.dashboard, dashboard_host=DASHBOARD_HOST,
                 dashboard_port=DASHBOARD_PORT, **common)
    log(f"ray: local, {int(ray.cluster_resources().get('CPU', 0))} CPUs"
        + ("" if auth_disabled() else " (token auth on: `ray get-auth-token`; RAY_AUTH_MODE=disabled opts out)"))
    if cfg.dashboard:
        log(f"ray dashboard: http://{DASHBOARD_HOST}:{DASHBOARD_PORT}  (token auth: `ray get-auth-token` prints "
            "the token the page asks for)")


def warn_job_working_dir(cfg: SearchConfig, run_dir: Path, log: Log) -> None:
    """Under `ray job submit --working-dir`, a relative results dir lies in the job's temporary copy of it."""
    try:
        runtime_env = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")).get("runtime_env") or {}
    except ValueError:
        return
    if runtime_env.get("working_dir") and not Path(cfg.results_dir).is_absolute():
        log(f"note: this job runs in a temporary copy of its --working-dir, so the results go to {run_dir}, which "
            f"Ray deletes later; pass an absolute --results-dir (shared storage on a multi-node cluster)")
