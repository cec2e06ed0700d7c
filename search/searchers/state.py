"""Searchers whose whole state is their attributes: Tune snapshots them by pickling, for Tuner.restore."""
from __future__ import annotations

import pickle

from ray.tune.search import Searcher


class PicklableSearcher(Searcher):
    def get_state(self) -> dict:
        return dict(self.__dict__)

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
