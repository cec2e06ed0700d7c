"""Metrics as pure ``compute_*`` functions of labels and scores, one module per family.

``classification`` (ROC AUC, sensitivity at a false-positive rate), ``detection`` (FROC),
``segmentation`` (boundary error, Dice, intima-media interfaces); ``common`` holds per-unit averaging.
Each is tested against scikit-learn, MONAI or hand-computed cases.
"""
from tunedepth.metrics.classification import (  # noqa: F401
    classification_metrics,
    compute_balanced_accuracy,
    compute_macro_f1,
    compute_multiclass_auc,
    compute_roc_auc,
    compute_roc_auc_weighted,
    compute_sensitivity_at_fpr,
    label_metrics,
)
from tunedepth.metrics.common import aggregate_mean, check_finite  # noqa: F401
from tunedepth.metrics.detection import (  # noqa: F401
    compute_froc,
    detection_metrics,
    froc_partial_area,
    froc_sensitivity,
)
from tunedepth.metrics.segmentation import (  # noqa: F401
    MASK_IGNORE,
    boundary_rows,
    compute_boundary_error,
    compute_dice,
    compute_mask_boundary_error,
    compute_mask_dice,
    interface_metrics,
    label_map_dice,
    label_map_metrics,
    label_map_summary,
    mask_boundaries,
    mask_interface_batched,
    mask_interface_metrics,
    mask_interface_summary,
    mask_interface_values,
)
