"""Every use of Ray's private internals, in one place, behind one version check.

Ray's public API does not offer these, so they are written against the Ray the project pins (``SUPPORTED_RAY``,
pyproject.toml's ``ray==`` pin). ``check_ray`` compares ``ray.__version__`` with it once per process; every
function here calls it first, and the schedulers call it when they are built (before ``Tuner.fit``), so a Ray
upgrade fails in one line naming the supported version instead of deep inside a trial's bookkeeping.

- ASHA's per-trial brackets and stop counter (``AsyncHyperBandScheduler._trial_info``, ``_num_stopped``,
  ``_brackets``/``_Bracket._rungs``): forgetting an errored trial, counting stops, and its state as plain data
  for JSON resume state (``tunedepth.jsonstate``) instead of Ray's own pickle;
- ``TuneController._set_trial_status``: put a requeued trial back to PAUSED on resume (``tunedepth.hpo.promotion``);
- ``ray._raylet.Config.initialize``: have an already imported Ray re-read ``RAY_AUTH_MODE`` (``tunedepth.hpo.guard``);
- Ray's generated gRPC stubs: the GCS's ``GetClusterId``, the cheapest question a head answers
  (``tunedepth.hpo.guard``);
- the logger of ``ray._private.authentication.authentication_token_setup``: its notice that a fresh local
  cluster has token auth on, which would be a second stderr line after a run's one error line; the runner
  says it in its own ``ray: local`` line instead (``quiet_token_notice``, ``tunedepth.hpo.cluster``).

The searchers use none: the Optuna searcher (``tunedepth.hpo.searchers.optuna_study``) is Tune's public ``Searcher``
API over Optuna's public ask/tell API.
Importing this module imports nothing of Ray (``tunedepth.hpo.guard`` is imported before Ray is).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import sys
from typing import Any, Iterator

from tunedepth.errors import ConfigError

SUPPORTED_RAY = "2.60.0"


@functools.cache
def check_ray() -> str:
    """``ray.__version__`` if it is ``SUPPORTED_RAY``, else one ``ConfigError`` line naming it (checked once)."""
    import ray

    if ray.__version__ != SUPPORTED_RAY:
        raise ConfigError(
            f"tunedepth supports ray=={SUPPORTED_RAY} only (it uses Ray internals, tunedepth/hpo/ray_compat.py); "
            f"this is ray {ray.__version__}: pip install 'ray[tune]=={SUPPORTED_RAY}'"
        )
    return ray.__version__


# ------------------------------------------------------------------------------- starting Ray
TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


@contextlib.contextmanager
def quiet_token_notice() -> Iterator[None]:
    """Within the block, Ray's WARNING that a local cluster enabled token auth by default is not printed
    (errors from that module still are)."""
    check_ray()
    logger = logging.getLogger(TOKEN_NOTICE_LOGGER)
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


# ------------------------------------------------------------------------------- ASHA (schedulers)
def asha_forget(asha, trial_id: str) -> None:
    """Drop an errored trial from ASHA's bracket assignment (Ray's ASHA has no ``on_trial_error``)."""
    check_ray()
    asha._trial_info.pop(trial_id, None)


def asha_num_stopped(asha) -> int:
    """How many trials this ASHA stopped at a rung."""
    check_ray()
    return int(asha._num_stopped)


_ASHA_OWN = ("_brackets", "_trial_info")  # object-valued: written as bracket states and bracket indices


def asha_state(asha) -> dict[str, Any]:
    """An ``AsyncHyperBandScheduler``'s whole state as plain data: its scalars, each bracket's rungs
    (milestone, {trial id: signed score}), and each trial's bracket as an index into them."""
    check_ray()
    brackets = list(asha._brackets)
    return {
        "scalars": {k: v for k, v in vars(asha).items() if k not in _ASHA_OWN},
        "brackets": [dict(vars(b)) for b in brackets],
        "trial_bracket": {tid: brackets.index(b) for tid, b in asha._trial_info.items()},
    }


def asha_restore(asha, state: dict[str, Any]) -> None:
    """Put ``asha_state``'s output into ``asha``, an ASHA built with the same arguments (same brackets)."""
    check_ray()
    brackets = list(asha._brackets)
    if len(brackets) != len(state["brackets"]):
        raise ValueError(f"scheduler state has {len(state['brackets'])} ASHA bracket(s), this scheduler "
                         f"{len(brackets)}; resume with the run's own settings")
    vars(asha).update(state["scalars"])
    for bracket, saved in zip(brackets, state["brackets"]):
        vars(bracket).update(saved)
    asha._trial_info = {tid: brackets[i] for tid, i in state["trial_bracket"].items()}


# --------------------------------------------------------------------------- Tune controller (promotion)
def set_trial_paused(tune_controller, trial) -> None:
    """Mark a (requeued, PENDING) trial PAUSED again without Tune stopping or starting anything."""
    check_ray()
    from ray.tune.experiment import Trial

    tune_controller._set_trial_status(trial, Trial.PAUSED)


# ------------------------------------------------------------------------------------- cluster (guard)
def reread_auth_mode() -> None:
    """Have an already imported Ray read its config (RAY_AUTH_MODE) again, as Ray itself does; a no-op when Ray
    is not imported yet (it reads the environment at import)."""
    raylet = sys.modules.get("ray._raylet")
    if raylet is not None:
        check_ray()
        raylet.Config.initialize("")


def gcs_cluster_id(channel, timeout_s: float, metadata: list[tuple[str, str]]) -> None:
    """Ask a Ray head's GCS for its cluster id over ``channel`` (a ``grpc`` channel); raises ``grpc.RpcError``."""
    check_ray()
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
        gcs_service_pb2.GetClusterIdRequest(), timeout=timeout_s, metadata=metadata)
