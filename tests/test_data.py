import numpy as np
import pandas as pd
import pytest
import torch

from tunedepth.apps import get_app
from tunedepth.data import budget_indices, budget_ranks, make_splits, stratified_split
from tunedepth.errors import ConfigError

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
    with pytest.raises(ConfigError, match=r"every class needs >= 2 at the smallest budget: use a budget >= 0\.00"):
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


# ------------------------------------------------------------- groups, near-duplicates, budgets by unit

from tunedepth.apps import App, DataSize  # noqa: E402
from tunedepth.apps.colonoscopy import frame_crops, render_frames  # noqa: E402
from tunedepth.data import (  # noqa: E402
    assign_splits,
    balance_classes,
    grouped_split,
    hamming,
    merge_groups,
    near_duplicate_pairs,
    perceptual_hash,
    splits_frame,
)
from tunedepth.data.build import split_units  # noqa: E402
from tunedepth.data.units import RawSet  # noqa: E402
from tunedepth.metrics import classification_metrics  # noqa: E402
from tunedepth.run_files import write_parquet  # noqa: E402


def _frames(n, seed=0, size=72):
    images, labels, _ = render_frames(n, size, seed)
    return images, labels.numpy()


def test_perceptual_hash_survives_resizing_noise_and_brightness_but_separates_images():
    images, _ = _frames(40)
    grey = images.float().mean(1)
    h = perceptual_hash(grey)
    g = torch.Generator().manual_seed(0)
    resized = torch.nn.functional.interpolate(grey[:, None], size=(57, 57), mode="bilinear", antialias=True)[:, 0]
    noisy = grey + 4 * torch.randn(grey.shape, generator=g)
    for variant in (resized, noisy, grey * 0.8 + 10):
        assert hamming(h, perceptual_hash(variant)).max() <= 4
    d = hamming(h[:, None], h[None, :])[~np.eye(40, dtype=bool)]
    assert d.min() > 7 and np.median(d) > 20


def test_near_duplicate_pairs_match_all_pairs():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64)
    flips = (np.uint64(1) << rng.integers(0, 64, (40, 3)).astype(np.uint64))
    dup = h[:40] ^ flips[:, 0] ^ flips[:, 1] ^ flips[:, 2]  # within 3 bits of the first 40
    allh = np.concatenate([h, dup])
    got = {tuple(p) for p in near_duplicate_pairs(allh, 4).tolist()}
    d = hamming(allh[:, None], allh[None, :])
    ref = {(i, j) for i, j in zip(*np.nonzero(np.triu(d <= 4, k=1)))}
    assert got == ref and len(ref) >= 40


def test_merge_groups_joins_groups_through_duplicates():
    groups = np.array(["a", "a", "b", "c", "d", "e"])
    comp = merge_groups(groups, np.array([[1, 2], [3, 5]]))
    assert comp[0] == comp[1] == comp[2] and comp[3] == comp[5] and len(set(comp.tolist())) == 3


def test_grouped_split_keeps_groups_whole_and_stratifies():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 120, 1000)
    labels = (groups % 4 == 0).astype(int) * rng.integers(0, 2, 1000)  # only some groups hold positives
    parts = grouped_split(labels, groups, (0.6, 0.2, 0.2), seed=1)
    seen = [set(groups[p].tolist()) for p in parts]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(1000))
    for p, frac in zip(parts, (0.6, 0.2, 0.2)):
        assert abs(p.size / 1000 - frac) < 0.05
        assert labels[p].sum() > 0


def test_preassigned_splits_send_a_straddling_group_to_the_held_out_side():
    pre = np.array(["train", "train", "test", "val", "train", "val"], dtype=object)
    groups = np.array([0, 1, 1, 2, 2, 3])  # group 1 spans train/test, group 2 train/val
    out = assign_splits(np.zeros(6, int), groups, 0, preassigned=pre)
    assert out.tolist() == ["train", "test", "test", "val", "val", "val"]


def test_too_few_groups_is_a_clear_error():
    with pytest.raises(ConfigError, match="too few to fill"):
        assign_splits(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]), seed=0)


def test_unit_budgets_are_nested_stratified_and_keep_whole_units():
    rng = np.random.default_rng(2)
    units = np.repeat(np.arange(200), 3)
    labels = np.repeat((rng.random(200) < 0.3).astype(int), 3)
    ranks = budget_ranks(labels, seed=5, units=units)
    sets = [set(budget_indices(labels, ranks, b).tolist()) for b in BUDGETS]
    for small, large in zip(sets, sets[1:]):
        assert small < large
    unit_class = labels[::3]
    for b, kept in zip(BUDGETS, sets):
        kept_units = np.unique(units[sorted(kept)])
        assert all(set(range(3 * u, 3 * u + 3)) <= kept for u in kept_units)  # whole units
        for c in (0, 1):
            assert (unit_class[kept_units] == c).sum() == int(np.ceil(b * (unit_class == c).sum()))


def test_negative_down_sampling_keeps_whole_bundles_and_the_ratio():
    labels = np.r_[np.zeros(600, int), np.ones(60, int)]
    bundles = np.r_[np.repeat(np.arange(100), 6), 1000 + np.repeat(np.arange(10), 6)]
    keep = balance_classes(labels, bundles, 2.0, seed=0)
    assert (labels[keep] == 1).sum() == 60 and (labels[keep] == 0).sum() == 120
    kept_bundles = np.unique(bundles[keep])
    assert all(np.isin(np.flatnonzero(bundles == b), keep).all() for b in kept_bundles)
    assert np.array_equal(balance_classes(labels, bundles, 0, 0), np.arange(660))


def _toy_app():
    return App(name="toy", description="", num_classes=2, metric="auc", mode="max", build_data=None,
               compute_metric=lambda y, p, m: classification_metrics(y, p, m)["auc"], sizes=DataSize(60, 30),
               unit="frame", make_samples=frame_crops)


def test_near_duplicates_never_straddle_splits_and_splits_parquet(tmp_path):
    images, labels = _frames(90, seed=3)
    # 15 near-duplicates of the first frames (brightened, noisy), each in a different source group
    g = torch.Generator().manual_seed(1)
    dup = (images[:15].float() * 0.9 + 3 * torch.randn(15, 3, 72, 72, generator=g)).clamp(0, 255).to(torch.uint8)
    raw = RawSet("classification", torch.cat([images, dup]), np.r_[labels, labels[:15]],
                 [f"f{i}" for i in range(105)], groups=np.array([f"v{i // 3}" for i in range(90)] +
                                                                [f"dup{i}" for i in range(15)], dtype=object))
    data = split_units(_toy_app(), raw, 64, seed=0)
    units = data.units.set_index("unit_id")
    for i in range(15):
        assert units.loc[i, "split"] == units.loc[90 + i, "split"]
        assert units.loc[i, "group"] == units.loc[90 + i, "group"]
    # source groups (videos) never straddle either
    assert units.groupby("source_group")["split"].nunique().max() == 1
    # every unit's 3 crops sit in one split, and budgets keep whole frames
    assert (data.train_meta["group"].numpy().reshape(-1, 3) == data.train_meta["group"].numpy()[::3, None]).all()
    frame = splits_frame(data, (0.25, 0.5, 1.0))
    write_parquet(frame, tmp_path / "splits.parquet")
    back = pd.read_parquet(tmp_path / "splits.parquet")
    assert list(back.columns) == ["sample_id", "unit_id", "unit", "group", "source_group", "split", "label", "budget"]
    assert back["sample_id"].is_unique and len(back) == 3 * 105 == len(frame)
    train = back[back.split == "train"]
    assert set(train["budget"]) <= {0.25, 0.5, 1.0} and back.loc[back.split != "train", "budget"].isna().all()
    for b in (0.25, 0.5):
        assert (train["budget"] <= b).sum() == data.budget_indices(b).numel()
    assert back.groupby("unit_id")["split"].nunique().max() == 1


def test_split_units_rejects_a_validation_split_without_both_classes():
    images, _ = _frames(30, seed=4)
    labels = np.r_[np.ones(29, int), 0]  # one negative frame: validation cannot hold both classes
    raw = RawSet("classification", images, labels, [f"f{i}" for i in range(30)])
    with pytest.raises(ConfigError, match="validation split cannot give toy's metric 'auc'"):
        split_units(_toy_app(), raw, 64, seed=0)


def test_a_budget_must_keep_two_units_per_class_not_two_samples():
    units = np.repeat(np.arange(40), 3)
    labels = np.repeat(np.arange(40) % 2, 3)
    ranks = budget_ranks(labels, seed=0, units=units)
    with pytest.raises(ConfigError, match=r"class\(es\) '0' \(1 of its 20\), '1' \(1 of its 20\) .*"
                                          r"every class needs >= 2 at the smallest budget: use a budget >= 0\.05"):
        budget_indices(labels, ranks, 0.05)  # one frame (3 crops) per class is not enough
    assert budget_indices(labels, ranks, 0.1).numel() == 2 * 2 * 3


def test_near_duplicates_across_contrast_window_and_crops_share_a_group():
    """Copies that differ in gamma, window or a crop of a few percent join their original's group (the plain
    pHash misses most of them); distinct frames of other videos are never merged."""
    from tunedepth.data import near_duplicate_groups, unit_hash_set

    images, _ = _frames(300, seed=3, size=96)
    grey = images.float().mean(1)[::10]  # one frame per video: 30 unrelated originals
    lo, hi = torch.quantile(grey.reshape(30, -1), 0.1, dim=1), torch.quantile(grey.reshape(30, -1), 0.9, dim=1)
    windowed = ((grey.clamp(lo[:, None, None], hi[:, None, None]) - lo[:, None, None])
                / (hi - lo)[:, None, None] * 255)
    cropped = torch.nn.functional.interpolate(grey[:, None, 4:-4, 4:-4], size=(96, 96), mode="bilinear")[:, 0]
    variants = {"gamma": 255 * (grey / 255) ** 1.7, "window": windowed, "crop": cropped}
    for name, copy in variants.items():
        groups = near_duplicate_groups(unit_hash_set(torch.cat([grey, copy])))
        assert (groups[30:] == groups[:30]).mean() >= 0.9, name
        assert len(np.unique(groups[:30])) == 30, name  # no two originals merged
    plain = near_duplicate_groups(unit_hash_set(torch.cat([grey, variants["crop"]]), (("phash", 1.0),)))
    assert (plain[30:] == plain[:30]).mean() < 0.6  # what the single pHash caught
