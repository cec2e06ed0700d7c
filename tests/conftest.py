import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Pretrained-source caches go to a per-session temp folder, never the user's ~/.cache."""
    monkeypatch.setenv("TUNEDEPTH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray (2 CPUs), shared by the tests that need one."""
    import ray

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_smoke_run(ray_local, tmp_path_factory):
    """One smoke search (tiny-alexnet from its fractal source, the smoke's 4 depths x 2 budgets x 2 lrs) on the
    shared local Ray, run once per session: ``(outcome, run folder)``. Tests that change the folder (report
    rebuild, export) copy it first (``shutil.copytree``); the original stays as the search wrote it."""
    from tunedepth.config import SearchConfig, smoke_config
    from tunedepth.hpo.runner import run_search

    base = tmp_path_factory.mktemp("tiny-smoke")
    with pytest.MonkeyPatch.context() as mp:  # the same cache the function-scoped _isolated_cache names
        mp.setenv("TUNEDEPTH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        out = run_search(smoke_config(SearchConfig(name="tiny", backbone="tiny-alexnet", source="fractal",
                                                   results_dir=str(base))), log=lambda s: None)
    return out, base / "tiny"
