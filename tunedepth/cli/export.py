"""``tunedepth export NAME|PATH``: the trained model of one cell, loadable in plain PyTorch, with its preprocessing."""
from __future__ import annotations

import argparse

from tunedepth.cli.flags import run_argument


def register(sub) -> None:
    from tunedepth.run_files import EXPORT_FORMATS

    p = sub.add_parser("export", help="write one cell's full trained model (frozen part included), its "
                                      "preprocessing and config, loadable without tunedepth")
    run_argument(p)
    p.add_argument("--budget", type=float, default=None, help="data budget of the cell (default the largest)")
    p.add_argument("--depth", default=None, help="depth of the cell (default the recommended depth at that budget)")
    p.add_argument("--format", dest="fmt", choices=tuple(EXPORT_FORMATS), default="torchscript",
                   help="torchscript (torch.jit.load, default), state_dict (+ the constructor to rebuild it), "
                        "onnx (needs onnx and onnxscript installed)")
    p.add_argument("--out", default=None, help="folder to write to (default <run>/export/<depth>_b<budget>)")
    p.add_argument("--examples", type=int, default=16,
                   help="test samples stored beside the model with the run's predictions for them, and reproduced "
                        "before writing (default 16; 0 skips rebuilding the data)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tunedepth.export import TOLERANCE, export_run

    done = export_run(args.run, args.results_dir, args.budget, args.depth, args.fmt, args.out, args.examples,
                      log=lambda s: None)
    c = done.choice
    which = "the recommended depth" if c.recommended else "not the recommended depth"
    print(f"exported {c.depth} @ budget {c.budget:g} ({which}): trial {c.trial_id}, lr {c.lr:g}, seed {c.seed}, "
          f"best validation epoch {c.epoch} (val {c.val_metric:.4f})")
    print(f"model:  {done.paths.model}\nconfig: {done.paths.config}  (preprocessing, constructor, trial config)")
    if done.max_diff is not None:
        print(f"check:  reproduces the run's stored test probabilities on {done.n_examples} samples "
              f"(max |diff| {done.max_diff:.1e} <= {TOLERANCE:g}); inputs in {done.paths.examples}")
    else:
        print("check:  skipped (no stored test predictions for this trial, --examples 0, or a per-pixel output)")
    return 0
