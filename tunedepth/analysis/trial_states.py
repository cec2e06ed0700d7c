"""The words for a trial's state, shared by the live view (``tunedepth.hpo.progress``) and ``tunedepth status``.

Tune's own statuses (PENDING, RUNNING, PAUSED, TERMINATED, ERROR) are mapped onto what a user asks of a
trial: not started, in play, ran its full length, ended before it (a scheduler's cut or early stopping),
diverged (its loss became NaN/inf: the trial ended itself, its learning rate lost; ``trials.parquet``
status ``diverged``), failed. Needs neither Ray nor the training code.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

PENDING, RUNNING, PAUSED = "pending", "running", "paused"
FINISHED, STOPPED, DIVERGED, ERROR = "finished", "stopped early", "diverged", "error"
STATES = (PENDING, RUNNING, PAUSED, FINISHED, STOPPED, DIVERGED, ERROR)
ENDED = (FINISHED, STOPPED, DIVERGED, ERROR)
SHOWN_WHEN_SOME = (DIVERGED, ERROR)  # counted in the line only when a trial is in them


def ended_state(epochs: int, max_epochs: int, diverged: bool = False) -> str:
    """A trial that ended without error: diverged if its last result says so, finished if it ran every
    epoch, else stopped early."""
    if diverged:
        return DIVERGED
    return FINISHED if epochs >= max_epochs else STOPPED


def state_of(tune_status: str, epochs: int, max_epochs: int, diverged: bool = False) -> str:
    """The state word of a trial Tune lists with ``tune_status`` after ``epochs`` reported epochs
    (``diverged``: its last result's flag).

    PAUSED: waiting for its successive-halving rung to be decided, or a replicate seed waiting for its learning
    rate to survive (it holds no CPU)."""
    status = str(tune_status).upper()
    if status == "ERROR":
        return ERROR
    if status == "TERMINATED":
        return ended_state(epochs, max_epochs, diverged)
    return {"RUNNING": RUNNING, "PAUSED": PAUSED}.get(status, PENDING)


def counts_text(states: Iterable[str]) -> str:
    """"pending 0, running 1, paused 0, finished 2, stopped early 2" (", diverged N" and ", error N" only
    when there is one)."""
    count = Counter(states)
    words = [f"{s} {count[s]}" for s in STATES if s not in SHOWN_WHEN_SOME or count[s]]
    return ", ".join(words)
