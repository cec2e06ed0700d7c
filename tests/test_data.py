import numpy as np
import pytest
import torch

from trainables.apps import get_app
from trainables.config import ConfigError
from trainables.data import budget_indices, budget_ranks, make_splits, stratified_split

BUDGETS = (0.05, 0.1, 0.25, 0.5, 1.0)


@pytest.fixture(scope="module")
def labels():
    rng = np.random.default_rng(1)
    return (rng.random(997) < 0.3).astype(np.int64)  # imbalanced, odd size


def test_budgets_are_nested(labels):
    ranks = budget_ranks(labels, seed=3)
    sets = [set(budget_indices(labels, ranks, b).tolist()) for b in BUDGETS]
    for small, large in zip(sets, sets[1:]):
        assert small < large
    assert sets[-1] == set(range(labels.size))


def test_budgets_are_stratified(labels):
    ranks = budget_ranks(labels, seed=3)
    for b in BUDGETS:
        idx = budget_indices(labels, ranks, b).numpy()
        for c in (0, 1):
            n_c = int((labels == c).sum())
            assert (labels[idx] == c).sum() == int(np.ceil(b * n_c))


def test_budget_ranks_are_deterministic_and_seeded(labels):
    assert np.array_equal(budget_ranks(labels, 3), budget_ranks(labels, 3))
    assert not np.array_equal(budget_ranks(labels, 3), budget_ranks(labels, 4))


def test_impossible_budget_names_the_smallest_possible_one(labels):
    ranks = budget_ranks(labels, seed=0)
    with pytest.raises(ConfigError, match=r"every class needs >= 2: use a budget >= 0\.00"):
        budget_indices(labels, ranks, 0.001)
    with pytest.raises(ConfigError, match=r"budget must be in \(0, 1\]"):
        budget_indices(labels, ranks, 1.5)


def test_splits_partition_and_stratify(labels):
    parts = stratified_split(labels, (0.6, 0.2, 0.2), seed=0)
    allidx = np.concatenate(parts)
    assert np.array_equal(np.sort(allidx), np.arange(labels.size))
    for p, frac in zip(parts, (0.6, 0.2, 0.2)):
        assert abs(labels[p].mean() - labels.mean()) < 0.02
        assert abs(p.size / labels.size - frac) < 0.01


def test_single_class_data_is_rejected():
    x = torch.zeros(20, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="single class"):
        make_splits(x, torch.zeros(20, dtype=torch.long), seed=0)


def test_validation_and_test_do_not_depend_on_the_budget():
    data = get_app("colonoscopy-frames").build_data(300, 64, 0)
    again = get_app("colonoscopy-frames").build_data(300, 64, 0)
    assert torch.equal(data.val_x, again.val_x) and torch.equal(data.test_y, again.test_y)
    small, full = data.budget_indices(0.1), data.budget_indices(1.0)
    assert set(small.tolist()) < set(full.tolist())
    assert full.numel() == len(data.train_y)
