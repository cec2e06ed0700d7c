"""Ctrl-C and SIGTERM during ``Tuner.fit``: Ray Tune ends ``fit`` normally after Ctrl-C (it saves its state and
returns); :class:`InterruptWatch`, a Tune callback, records whether the experiment ended with trials still
unfinished, and turns SIGTERM into the same graceful stop. The runner then raises
:class:`tunedepth.hpo.guard.Interrupted` instead of presenting partial trials as an answer.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from ray.tune import Callback

from tunedepth.hpo.guard import Interrupted
from tunedepth.run_files import write_text


class InterruptWatch(Callback):
    """A Tune callback: did the experiment end with trials that never finished, and which signal stopped it?

    A trial has finished when Tune completed it (done, or stopped by the scheduler) or it errored, in this
    session or before a resume. Tune marks the trials it was running as terminated when it cleans up after
    Ctrl-C, so their status alone cannot tell; what this callback saw can.
    """

    FILE = "interrupt.json"  # written at the experiment's end: a resumed tuner's callback copy reports through it

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = str(run_dir)
        self.ended: set[str] = set()
        self.unfinished = 0
        self.signum = 0
        self._seen_start = False
        self._previous_term = None

    def install(self) -> "InterruptWatch":
        """Route SIGTERM to Tune's graceful SIGINT stop (Tune installs its SIGINT handler inside ``fit``)."""
        def on_term(signum, frame):
            self.signum = signal.SIGTERM
            os.kill(os.getpid(), signal.SIGINT)
        try:
            self._previous_term = signal.signal(signal.SIGTERM, on_term)
        except ValueError:  # not the main thread: signals cannot be caught here; Tune's own behaviour stays
            self._previous_term = None
        return self

    def uninstall(self) -> None:
        if self._previous_term is not None:
            signal.signal(signal.SIGTERM, self._previous_term)
            self._previous_term = None

    def on_step_begin(self, iteration, trials, **info) -> None:
        if not self._seen_start:  # trials restored already finished (a resume)
            self._seen_start = True
            self.ended |= {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.ended.add(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.ended.add(trial.trial_id)

    def on_experiment_end(self, trials, **info) -> None:
        self.unfinished = sum(t.trial_id not in self.ended for t in trials)
        write_text(json.dumps({"unfinished": self.unfinished}), Path(self.run_dir) / self.FILE)

    def reload(self) -> "InterruptWatch":
        """Read what the experiment's own copy of this callback wrote (after ``Tuner.restore``)."""
        path = Path(self.run_dir) / self.FILE
        self.unfinished = json.loads(path.read_text())["unfinished"] if path.exists() else 0
        return self

    @property
    def stopped_early(self) -> bool:
        return bool(self.unfinished or self.signum)

    def __getstate__(self) -> dict:  # Tune saves callbacks with the experiment; signal handlers stay here
        return {**self.__dict__, "_previous_term": None, "signum": 0}

    def check(self, name: str) -> None:
        """Raise :class:`Interrupted` if the experiment ended early."""
        self.uninstall()
        (Path(self.run_dir) / self.FILE).unlink(missing_ok=True)
        if self.stopped_early:
            raise Interrupted(name, int(self.signum or signal.SIGINT))
