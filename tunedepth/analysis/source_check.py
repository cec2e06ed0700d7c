"""``results/<name>/source_check.json``: the linear-probe check of a run's pretrained source (written by the
runner before tuning, ``tunedepth.training.probe``), and the report's note when the source's features do no
better than random-init ones. Reading it needs neither Ray nor torch."""
from __future__ import annotations

import json
from pathlib import Path

FILE = "source_check.json"


def write_source_check(check: dict, run_dir: Path) -> Path:
    path = Path(run_dir) / FILE
    path.write_text(json.dumps(check, indent=2))
    return path


def describe(check: dict) -> str:
    """One line: both probe scores, e.g. "imagenet 0.962 vs random-init 0.901 (validation auc, ...)"."""
    return (f"linear probe on frozen {check['backbone']} features ({check['features']}-d, {check['n_train']} train / "
            f"{check['n_val']} val): source {check['source']} {check['source_val']:.3f} vs random-init weights "
            f"{check['random_val']:.3f} (validation {check['metric']})")


RANDOM = "random features"  # what a depth other than scratch trains on when its frozen layers are random


def random_features_reason(config: dict, path: Path) -> str:
    """Why the run's depths other than scratch train on random features ("" if they fine-tune): source scratch
    (nothing pretrained: the frozen layers are random init), or a source whose linear probe did no better than
    random-init weights (source_check.json)."""
    if str(config.get("source", "")) == "scratch":
        return "source scratch: the frozen layers are random init, nothing is pretrained"
    try:
        check = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return ""
    if check.get("better_than_random", True):
        return ""
    return f"source {check['source']}'s features do no better than random-init weights ({describe(check)})"


def source_check_note(path: Path) -> str | None:
    """The report's note if the run's source did no better than random weights; None otherwise or if absent."""
    try:
        check = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if check.get("better_than_random", True):
        return None
    return (f"source {check['source']} does no better than random weights on this app: {describe(check)}; "
            f"the fine-tuned depths start from features no better than random, so the answer says more about the "
            f"source than about depth (README, 'Source check')")
