"""The data layer, beneath the loaders and the apps: units, splits, budgets, near-duplicates, and the build
from units to a run's ``SplitData``. It imports neither ``tunedepth.apps`` nor ``tunedepth.data.loaders``:
loaders read files into ``units.RawSet``; apps generate units and cut samples out of them.

Vocabulary:

* a *sample* is what the network sees: one 3-channel uint8 image (a crop, a patch);
* a *unit* is what a clinician reads and what a metric scores: a frame, an image, a volume. Every sample
  belongs to one unit (``meta["group"]``); crops/patches of a unit are scored together;
* a *split group* is what must never straddle train/validation/test: a patient, a video, a volume. Near-
  duplicate images (the same structure after any change of contrast, a small crop or shift:
  ``structure``) are merged into one split group.

Budgets (``budgets``) are nested and stratified by the units' class; validation/test are the same for every
budget.
"""
from tunedepth.data.budgets import (  # noqa: F401
    MIN_PER_CLASS,
    balance_classes,
    budget_indices,
    budget_ranks,
    smallest_budget,
    unit_labels,
)
from tunedepth.data.build import check_metric, split_units, subsample_units  # noqa: F401
from tunedepth.data.near_duplicates import (  # noqa: F401
    HASH_KINDS,
    HASH_SIZE,
    HASH_VIEWS,
    NEAR_DUPLICATE_BITS,
    hamming,
    merge_groups,
    near_duplicate_groups,
    near_duplicate_pairs,
    near_duplicate_set_pairs,
    perceptual_hash,
    rank_normalise,
    unit_hash_set,
)
from tunedepth.data.splits import (  # noqa: F401
    SPLITS,
    SplitData,
    assign_splits,
    grouped_split,
    make_splits,
    splits_frame,
    stratified_split,
)
from tunedepth.data.structure import structure_pairs, unit_signatures  # noqa: F401
from tunedepth.data.units import IGNORE, KINDS, RawSet, Samples  # noqa: F401
