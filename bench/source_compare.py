"""The demo's search from two sources side by side: ImageNet EfficientNet-Lite0 vs fractal tiny-alexnet.

Both runs are the demo's search (``tunedepth.cli.demo.demo_config``: its data, budgets, lr grid, seeds,
trial length and scheduler), each over its backbone's demo depth subset. For each budget it prints, per source: the
best fine-tuned depth (selected by validation) and
its test metric with the 95% bootstrap interval, scratch's test metric with its interval, scratch - best
fine-tune with its paired interval, and the verdict; then each source's check (linear probe on frozen
features vs random-init features, ``source_check.json``).

    python bench/source_compare.py            # two demo-size searches (~10 min on 2 idle cores)
    python bench/source_compare.py --smoke    # seconds-size check of the script itself
"""
from __future__ import annotations

import argparse
import json
import tempfile

import ray

from tunedepth.cli.demo import demo_config
from tunedepth.config import SearchConfig
from tunedepth.hpo.runner import run_search

PAIRS = (("efficientnet-lite0", "imagenet"), ("tiny-alexnet", "fractal"))


def ci(est: float, lo: float, hi: float, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(est)} [{f.format(lo)}, {f.format(hi)}]"


def rows_of(outcome, label: str) -> list[tuple]:
    summary = outcome.report.summary.set_index(["budget", "depth"])
    rows = []
    for a in outcome.report.answers:
        ft = summary.loc[(a.budget, a.best_finetune)] if a.best_finetune else None
        sc = summary.loc[(a.budget, "scratch")] if (a.budget, "scratch") in summary.index else None
        d = a.scratch_vs_finetune
        rows.append((f"{100 * a.budget:g}%", a.n_train, label, a.best_finetune or "-",
                     ci(ft.test_metric, ft.test_metric_low, ft.test_metric_high) if ft is not None else "-",
                     ci(sc.test_metric, sc.test_metric_low, sc.test_metric_high) if sc is not None else "-",
                     ci(*d, signed=True) if d is not None else "-", a.scratch_verdict))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results-dir", default=None)
    args = p.parse_args()
    results_dir = args.results_dir or tempfile.mkdtemp(prefix="tunedepth-bench-")
    rows, checks, walls = [], [], []
    for backbone, source in PAIRS:  # the demo's protocol and subset (tunedepth.cli.demo), each backbone's depths
        cfg = demo_config(SearchConfig(name=f"{backbone}-{source}", backbone=backbone, source=source,
                                       results_dir=results_dir), args.smoke)
        out = run_search(cfg, log=lambda s: None)
        label = f"{backbone} / {source}"
        rows += rows_of(out, label)
        checks.append((label, json.loads((out.run_dir / "source_check.json").read_text())))
        walls.append(f"{label} {out.wall_s:.0f}s")
    ray.shutdown()
    metric = checks[0][1]["metric"]
    head = ("budget", "n_train", "backbone / source", "best fine-tuned depth", f"its test {metric} [95% CI]",
            f"scratch test {metric} [95% CI]", "scratch − best fine-tune [95% CI]", "verdict")
    rows.sort(key=lambda r: (float(r[0].rstrip("%")), r[2]))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))
    print(f"\nsource check (linear probe on frozen penultimate features, validation {metric}):")
    for label, c in checks:
        print(f"  {label}: source {c['source_val']:.3f} vs random-init {c['random_val']:.3f} "
              f"({c['features']}-d features, {c['n_train']} train / {c['n_val']} val)")
    print("wall: " + ", ".join(walls))


if __name__ == "__main__":
    main()
