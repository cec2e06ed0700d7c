"""Searchers whose whole state is their attributes, saved for ``Tuner.restore`` as JSON (``tunedepth.jsonstate``).

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


class SignedPickleSearcher(JsonStateSearcher):
    """For a searcher that holds Ray searchers (whose state only pickles): pickled, signed with a local key and
    checked before loading (``tunedepth.jsonstate.dump_signed``)."""

    def save(self, checkpoint_path: str) -> None:
        jsonstate.dump_signed(self.get_state(), checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(jsonstate.load_signed(checkpoint_path))
