"""Searchers whose state is saved for ``Tuner.restore`` as JSON (``tunedepth.jsonstate``): by default their whole
``__dict__``; a searcher holding objects that are not data (an Optuna study) overrides ``get_state``/``set_state``.

Tune calls ``save``/``restore`` with a file in the experiment folder; loading it rebuilds plain values and
registered dataclasses only, so a resumed run executes no code from the folder it is given.
"""
from __future__ import annotations

from ray.tune.search import Searcher

from tunedepth import jsonstate


class JsonStateSearcher(Searcher):
    def get_state(self) -> dict:
        return dict(self.__dict__)

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        jsonstate.dump(self.get_state(), checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(jsonstate.load(checkpoint_path))

