"""Resume state is JSON: what the schedulers and searchers keep round-trips, and loading runs no code."""
import json
import math
import pickle
from dataclasses import dataclass, field

import numpy as np
import pytest

from tunedepth import jsonstate
from tunedepth.hpo.searchers.guideline import GuidelineSearcher


@jsonstate.stored
@dataclass
class _Box:
    items: list = field(default_factory=list)
    seen: set = field(default_factory=set)


def test_round_trip_keeps_types(tmp_path):
    state = {
        "strata": {(0.05, "head"): ["a", "b"], (1.0, "scratch"): []},  # tuple keys
        "rung": {1: 0.5, 3: -math.inf},  # int keys, -inf scores
        "done": {"a", "c"},
        "box": _Box([("head", 1e-3, 0)], {"t1"}),
        "np": np.float64(0.25), "n": np.int64(3), "nan": float("nan"),
        "__tuple__": "a key that looks like a tag",
    }
    jsonstate.dump(state, str(tmp_path / "s.json"))
    back = jsonstate.load(str(tmp_path / "s.json"))
    assert back["strata"] == state["strata"] and back["rung"] == state["rung"] and back["done"] == {"a", "c"}
    assert back["box"] == state["box"] and isinstance(back["box"].items[0], tuple)
    assert back["np"] == 0.25 and type(back["n"]) is int and math.isnan(back["nan"])
    assert back["__tuple__"] == "a key that looks like a tag"
    json.loads((tmp_path / "s.json").read_text())  # plain JSON on disk


def test_unknown_objects_are_refused_when_saving(tmp_path):
    class Opaque:
        pass
    with pytest.raises(TypeError, match="Opaque"):
        jsonstate.dump({"x": Opaque()}, str(tmp_path / "s.json"))


def test_a_pickle_or_an_unknown_class_is_not_loaded(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(ValueError, match="not JSON resume state"):
        jsonstate.load(str(bad))
    bad.write_text(json.dumps({"__class__": "os.system", "fields": {"command": "echo pwned"}}))
    with pytest.raises(ValueError, match="unknown class 'os.system'"):
        jsonstate.load(str(bad))


def test_guideline_searcher_state_round_trips(tmp_path):
    s = GuidelineSearcher(depths=["head", "b6-head", "stem-head", "scratch"], budgets=[0.1, 1.0], lrs=[1e-3, 3e-3],
                          seeds=(0, 1), metric="val_metric", mode="max")
    first = s.suggest("t1")
    s.save(str(tmp_path / "g.json"))
    r = GuidelineSearcher(depths=["head"], budgets=[1.0], lrs=[1e-3], metric="val_metric", mode="max")
    r.restore(str(tmp_path / "g.json"))
    assert r.state == s.state and r.trial_info == s.trial_info and first is not None
    assert r.suggest("t2") == s.suggest("t2")
