"""Scale-out behaviour on real Ray: resume after the driver is SIGKILLed, a killed trial worker, a two-node cluster
that loses a node mid-run, the dashboard."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

EXE = str(Path(sys.executable).with_name("tunedepth"))


def _env(tmp_path):
    env = {**os.environ, "TUNEDEPTH_CACHE": str(tmp_path / "cache")}
    env.pop("RAY_ADDRESS", None)
    return env


def _wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _reported(exp: Path) -> int:
    return sum(1 for f in exp.glob("*/result.json") if f.stat().st_size > 0)


@pytest.mark.slow
def test_resume_after_the_driver_is_killed_finishes_every_trial_once(tmp_path):
    run = [
        EXE,
        "run",
        "--smoke",
        "--name",
        "r",
        "--results-dir",
        str(tmp_path),
        "--epochs",
        "4",
        "--scheduler",
        "none",
        "--samples",
        "1",
        "--backbone",
        "tiny-alexnet",
        "--source",
        "fractal",
        "--depths",
        "fc8,scratch",
    ]  # Ray mechanics: cheap model, 2 depths x 2 budgets (4 trials; the driver is killed once 2 have reported)
    driver = subprocess.Popen(run, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    exp = tmp_path / "r" / "tune"
    _wait_for(lambda: _reported(exp) >= 2, 240, "the first epochs to be reported")
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert not (tmp_path / "r" / "trials.parquet").exists()  # it really died mid-run

    status = subprocess.run([EXE, "status", "r", "--results-dir", str(tmp_path)], capture_output=True, text=True,
                            env=_env(tmp_path), check=True)
    assert "not finished" in status.stdout and "budget 0.25" in status.stdout

    resumed = subprocess.run([EXE, "resume", "r", "--results-dir", str(tmp_path)], capture_output=True, text=True,
                             env=_env(tmp_path), timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "r" / "trials.parquet")
    assert trials["trial_id"].nunique() == 4  # 2 depths x 2 budgets, none duplicated or lost
    for _, group in trials.groupby("trial_id"):
        assert group["epoch"].tolist() == [1, 2, 3, 4]
    assert (trials.groupby(["depth", "budget"])["trial_id"].nunique() == 1).all()


def _epochs_reported(exp: Path) -> int:
    return sum(len([row for row in f.read_text().splitlines() if row.strip()]) for f in exp.glob("*/result.json"))


def _trial_workers(pid: int) -> list[int]:
    """Ray worker processes below the driver ``pid`` running a trial (process title ray::ImplicitFunc...), from
    /proc."""
    parent, title = {}, {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                title[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                pass

    def below(p: int) -> bool:
        while p > 1:
            p = parent.get(p, 0)
            if p == pid:
                return True
        return False
    return [p for p, t in title.items() if "ImplicitFunc" in t and below(p)]


@pytest.mark.slow
def test_a_killed_trial_worker_is_retried_from_its_checkpoint(tmp_path):
    """SIGKILL of the process running a trial: Tune retries the trial from its last checkpoint (max_failures 1)
    and the run completes with exit 0; no epoch is lost, training resumes after the checkpointed epoch, and the
    run's answer is complete (the cell scored on test, summary and report written)."""
    run = [EXE, "run", "--smoke", "--backbone", "tiny-alexnet", "--source", "scratch", "--depths", "scratch",
           "--budgets", "1.0", "--epochs", "6", "--scheduler", "none", "--samples", "1", "--patience-steps", "0",
           "--name", "k", "--results-dir", str(tmp_path)]
    driver = subprocess.Popen(run, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    exp = tmp_path / "k" / "tune"
    try:
        _wait_for(lambda: _epochs_reported(exp) >= 2, 240, "two epochs to be reported")
        workers = _trial_workers(driver.pid)
        assert workers, "no trial worker found below the driver"
        for w in workers:
            os.kill(w, signal.SIGKILL)
        out = driver.communicate(timeout=400)[0]
    finally:
        driver.kill()
    assert driver.returncode == 0, out[-3000:]
    trials = pd.read_parquet(tmp_path / "k" / "trials.parquet")
    assert trials["trial_id"].nunique() == 1
    assert sorted(set(trials["epoch"])) == [1, 2, 3, 4, 5, 6]
    rows = [json.loads(line) for f in exp.glob("*/result.json") for line in f.read_text().splitlines() if line.strip()]
    restored = [r for r in rows if r["iterations_since_restore"] < r["training_iteration"]]
    assert restored and min(r["training_iteration"] for r in restored) >= 2  # it restarted from a checkpoint
    run_dir = tmp_path / "k"  # the answer is complete: the cell was evaluated on test and reported
    summary = pd.read_parquet(run_dir / "summary.parquet")
    assert list(zip(summary["budget"], summary["depth"])) == [(1.0, "scratch")]
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    assert len(predictions) and set(predictions["trial_id"]) == set(trials["trial_id"])
    assert "best tuning depth per data budget" in out and (run_dir / "report.md").exists()


def _result_rows(exp: Path) -> list[dict]:
    rows = []
    for f in exp.glob("*/result.json"):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip().endswith("}")]
    return rows


@pytest.mark.slow
def test_two_node_cluster_uses_both_nodes_and_survives_losing_one(tmp_path):
    """A search on a 2-node ``cluster_utils.Cluster`` runs trials on both nodes; when the worker node is removed
    mid-run, its trials are rescheduled on the head node (retried from their checkpoints) and every trial of the
    search completes once, exit 0."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    exp = tmp_path / "c" / "tune"
    try:
        cluster.wait_for_nodes()
        run = [
            EXE,
            "run",
            "--smoke",
            "--name",
            "c",
            "--results-dir",
            str(tmp_path),
            "--address",
            cluster.address,
            "--scheduler",
            "none",
            "--samples",
            "1",
            "--epochs",
            "4",
            "--patience-steps",
            "0",
            "--data-samples",
            "1200",
            "--backbone",
            "tiny-alexnet",
            "--source",
            "fractal",
        ]
        driver = subprocess.Popen(run, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        try:
            # remove the worker node once a trial on it has checkpointed an epoch (and before the search ends)
            _wait_for(lambda: any(r.get("node_id") == worker.node_id for r in _result_rows(exp)), 300,
                      "a trial to report from the worker node")
            cluster.remove_node(worker, allow_graceful=False)
            out = driver.communicate(timeout=400)[0]
        finally:
            driver.kill()
        assert driver.returncode == 0, out[-3000:]
        assert "2 node(s)" in out
        rows = _result_rows(exp)
        assert {r["node_id"] for r in rows} >= {worker.node_id}  # it did run there before the node went away
        trials = pd.read_parquet(tmp_path / "c" / "trials.parquet")
        assert trials["trial_id"].nunique() == 8 and (trials.groupby("trial_id")["epoch"].max() == 4).all()
        assert set(trials["status"]) <= {"ok", "early-stopped"}, trials["status"].value_counts()
    finally:
        cluster.shutdown()


@pytest.mark.slow
def test_dashboard_starts_on_localhost_and_requires_the_token(tmp_path):
    script = ("from tunedepth.config import SearchConfig\nfrom tunedepth.hpo.runner import connect_ray\n"
              "import time\nconnect_ray(SearchConfig(dashboard=True), print)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], env=_env(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        url = "http://127.0.0.1:8265/api/version"

        def status(headers=None):
            try:
                return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2).status
            except urllib.error.HTTPError as e:
                return e.code
            except OSError:
                return None

        _wait_for(lambda: status() is not None, 90, "the dashboard to answer")
        token_file = Path.home() / ".ray" / "auth_token"
        if status() == 200:
            pytest.skip("token authentication is disabled on this Ray (RAY_AUTH_MODE); nothing to check")
        assert status() == 401
        token = token_file.read_text().strip()
        assert status({"Authorization": f"Bearer {token}"}) == 200
    finally:
        proc.terminate()  # Ray drains for up to 30 s on SIGTERM; the test does not need a graceful exit
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def test_yaml_config_with_an_unknown_key_is_one_clear_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("searcher: grid\nlearning_rate: 0.1\n")
    out = subprocess.run([EXE, "run", "--config", str(tmp_path / "bad.yaml")], capture_output=True, text=True,
                         env=_env(tmp_path))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "unknown config key(s) learning_rate" in out.stderr


@pytest.mark.slow
def test_yaml_config_flags_override_and_storage_elsewhere(tmp_path):
    (tmp_path / "run.yaml").write_text("searcher: random\nsamples: 2\nepochs: 3\nbudgets: [0.5, 1.0]\n")
    shared = tmp_path / "shared-storage"
    out = subprocess.run(
        [
            EXE,
            "run",
            "--config",
            str(tmp_path / "run.yaml"),
            "--smoke",
            "--epochs",
            "2",
            "--backbone",
            "tiny-alexnet",
            "--source",
            "fractal",
            "--name",
            "y",
            "--results-dir",
            str(tmp_path / "res"),
            "--storage",
            str(shared),
        ],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=400,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    import yaml

    saved = yaml.safe_load((tmp_path / "res" / "y" / "config.yaml").read_text())
    assert saved["searcher"] == "random" and saved["epochs"] == 2 and saved["budgets"] == [0.5, 1.0]
    assert saved["experiment_path"] == str(shared / "y")
    assert any((shared / "y").glob("*/result.json"))  # Tune's experiment went to the storage path
    trials = pd.read_parquet(tmp_path / "res" / "y" / "trials.parquet")
    assert trials.groupby("budget")["trial_id"].nunique().to_dict() == {0.5: 2, 1.0: 2}
    status = subprocess.run([EXE, "status", "y", "--results-dir", str(tmp_path / "res")], capture_output=True,
                            text=True, env=_env(tmp_path), check=True)
    assert "y: finished (random search, 4 trials known" in status.stdout

