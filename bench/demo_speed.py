"""The demo search with every optimisation vs the same search done the naive way, side by side.

Both runs are the demo's search (``tunedepth.cli.demo.demo_config``: its depths, budgets, lr grid, seeds and
scheduler), same seeds, same learning rates:

- **optimised** (what ``tunedepth demo`` does): data built once by the driver and shared through Ray's
  object store, frozen-prefix features computed once per node and shared (``tunedepth.training.features``),
  Ray actors reused between trials, checkpoints holding only the trained groups;
- **naive**: every trial rebuilds its data and reloads its weights, pushes every image through the frozen
  layers every epoch, and starts a fresh Ray actor.

Prints the wall time of each (whole run, and ``Tuner.fit`` alone), the ratio, the best depth per budget each
picked (by validation), whether the per-epoch numbers agree where both ran the same trial and epoch, and the
Ray overhead: the share of the search's worker-seconds (concurrent trial slots x ``Tuner.fit`` wall time)
spent inside training steps (an epoch of training plus its validation, ``TrialRun.step``).

    PYTHONPATH=$PWD python bench/demo_speed.py            # the demo's size (~20 min on 2 cores)
    PYTHONPATH=$PWD python bench/demo_speed.py --smoke    # seconds-size check of the script itself
"""
from __future__ import annotations

import argparse
import tempfile

import pandas as pd
import ray

from tunedepth.apps import build_split_data, get_app
from tunedepth.cli.demo import demo_config
from tunedepth.config import SearchConfig
from tunedepth.hpo.runner import Outcome, run_search
from tunedepth.hpo.trainable import train_depth
from tunedepth.models import get_backbone
from tunedepth.models.registry import sized
from tunedepth.models.sources import get_source_weights


def naive_trainable(cfg: SearchConfig):
    """A trainable that builds everything itself, in every trial: the loop without sharing."""
    search = cfg.to_dict()

    def naive_train_depth(config: dict) -> None:
        c = SearchConfig.from_dict(search)
        # as tunedepth.hpo.validate.check_search resolves them: the app with its metric, the backbone at the run's size
        app, spec = get_app(c.app, c.metric, c.resize), sized(get_backbone(c.backbone), c.input_size)
        data = build_split_data(app, c.data, spec.input_size, c.data_seed, smoke=c.smoke, n=c.data_samples,
                                log=lambda s: None)
        weights = {c.source: get_source_weights(c.source, spec, smoke=c.smoke, log=lambda s: None)}
        train_depth(config, data, weights)

    from ray import tune

    return tune.with_resources(naive_train_depth, {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial})


def slots(cfg: SearchConfig) -> int:
    n = int(ray.cluster_resources().get("CPU", 1) // cfg.cpus_per_trial)
    return max(1, min(n, cfg.max_concurrent) if cfg.max_concurrent else n)


def step_share(out: Outcome, n_slots: int) -> tuple[float, float]:
    """(seconds inside TrialRun.step summed over trials, that as a share of slots x Tuner.fit wall time)."""
    inside = float(out.trials.groupby("trial_id")["time_s"].max().sum())
    return inside, inside / (n_slots * out.tune_s)


def same_numbers(a: pd.DataFrame, b: pd.DataFrame, tol: float = 1e-4) -> tuple[int, int, list[str]]:
    """(trial-epochs both runs computed, how many agree within ``tol`` in validation metric and training loss,
    the trials where they do not, with their largest training loss: float-level differences grow in
    unstable training)."""
    keys = ["depth", "budget", "lr", "seed", "epoch"]
    cols = keys + ["val_metric", "train_loss"]
    m = a[cols].merge(b[cols], on=keys, suffixes=("_a", "_b"))
    ok = ((m["val_metric_a"] - m["val_metric_b"]).abs() <= tol) & \
         ((m["train_loss_a"] - m["train_loss_b"]).abs() <= tol * m["train_loss_a"].abs().clip(lower=1))
    bad = m[~ok].groupby(["depth", "budget", "lr"])["train_loss_a"].max()
    return len(m), int(ok.sum()), [f"{d} @ {b:g}, lr {lr:.2g} (training loss up to {v:.1f})"
                                   for (d, b, lr), v in bad.items()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results-dir", default=None)
    args = p.parse_args()
    results_dir = args.results_dir or tempfile.mkdtemp(prefix="tunedepth-bench-")
    base = demo_config(SearchConfig(results_dir=results_dir), args.smoke)
    quiet = lambda s: None  # noqa: E731
    runs: dict[str, Outcome] = {}
    naive_cfg = base.replace(name="naive", feature_cache=False, reuse_actors=False)
    # naive first: its fractal-source pretraining (if not cached yet) must not be charged to it twice
    get_source_weights(base.source, get_backbone(base.backbone), smoke=base.smoke, log=quiet)
    runs["naive"] = run_search(naive_cfg, log=quiet, trainable=naive_trainable(naive_cfg))
    n_slots = slots(base)
    runs["optimised"] = run_search(base.replace(name="optimised"), log=quiet)
    ray.shutdown()

    print(f"\nresults under {results_dir}; {n_slots} concurrent trial slots")
    print(f"{'run':<10} {'trials':>6} {'epochs':>6} {'wall s':>7} {'fit s':>6} {'in steps s':>10} {'step share':>10}")
    for name, out in runs.items():
        inside, share = step_share(out, n_slots)
        print(f"{name:<10} {out.trials['trial_id'].nunique():>6} {len(out.trials):>6} {out.wall_s:>7.1f} "
              f"{out.tune_s:>6.1f} {inside:>10.1f} {share:>10.0%}")
    naive, fast = runs["naive"], runs["optimised"]
    print(
        f"\nspeed-up, whole run: {naive.wall_s / fast.wall_s:.2f}x; Tuner.fit alone: {naive.tune_s / fast.tune_s:.2f}x"
    )
    n, equal, differ = same_numbers(naive.trials, fast.trials)
    print(f"same numbers: {equal} of the {n} trial-epochs both runs computed agree within 1e-4"
          + (f"; the others come from {'; '.join(differ)}" if differ else ""))
    answers = {k: v.validation.set_index("budget")["best_depth"].to_dict() for k, v in runs.items()}
    print("\nbest depth per budget (validation):")
    print(f"{'budget':>7} {'naive':>11} {'optimised':>11}  same?")
    for b in sorted(answers["naive"]):
        x, y = answers["naive"][b], answers["optimised"].get(b, "-")
        print(f"{b:>7g} {x:>11} {y:>11}  {'y' if x == y else 'n'}")


if __name__ == "__main__":
    main()
