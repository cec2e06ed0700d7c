"""The words for a trial's state, shared by the live view (``search.progress``) and ``tunedepth status``.

Tune's own statuses (PENDING, RUNNING, PAUSED, TERMINATED, ERROR) are mapped onto what a user asks of a
trial: not started, in play, ran its full length, ended before it (a scheduler's cut or early stopping),
failed. Needs neither Ray nor the training code.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

PENDING, RUNNING, PAUSED = "pending", "running", "paused"
FINISHED, STOPPED, ERROR = "finished", "stopped early", "error"
STATES = (PENDING, RUNNING, PAUSED, FINISHED, STOPPED, ERROR)
ENDED = (FINISHED, STOPPED, ERROR)


def ended_state(epochs: int, max_epochs: int) -> str:
    """A trial that ended without error: finished if it ran every epoch, else stopped early."""
    return FINISHED if epochs >= max_epochs else STOPPED


def state_of(tune_status: str, epochs: int, max_epochs: int) -> str:
    """The state word of a trial Tune lists with ``tune_status`` after ``epochs`` reported epochs.

    PAUSED: waiting for its successive-halving rung to be decided, or a replicate seed waiting for its learning
    rate to survive (it holds no CPU)."""
    status = str(tune_status).upper()
    if status == "ERROR":
        return ERROR
    if status == "TERMINATED":
        return ended_state(epochs, max_epochs)
    return {"RUNNING": RUNNING, "PAUSED": PAUSED}.get(status, PENDING)


def counts_text(states: Iterable[str]) -> str:
    """"pending 0, running 1, paused 0, finished 2, stopped early 2" (", error N" only when there is one)."""
    count = Counter(states)
    words = [f"{s} {count[s]}" for s in STATES if s != ERROR or count[ERROR]]
    return ", ".join(words)
