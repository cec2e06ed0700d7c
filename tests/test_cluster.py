"""Attaching to a real cluster: a token-auth `ray start --head` that this module starts and stops itself
(tests/ray_head.py), `tunedepth run --address`, `ray job submit -- tunedepth run`, and refusals in one line."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from ray_head import BIN, ray_head

from tunedepth.cli.main import main
from tunedepth.hpo.guard import find_token, use_token_auth

TINY = ["--smoke", "--backbone", "tiny-alexnet", "--source", "scratch", "--depths", "scratch", "--budgets", "1.0",
        "--epochs", "1", "--samples", "1", "--seeds", "0"]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    with ray_head(tmp_path_factory.mktemp("head-cwd")) as h:
        yield h


def _tunedepth(*args) -> list[str]:
    return [str(BIN / "tunedepth"), "run", *TINY, *args]


@pytest.mark.slow
def test_run_attaches_with_address_and_the_token_alone(head, tmp_path):
    """RAY_AUTH_MODE unset, the token in $RAY_AUTH_TOKEN: `--address` attaches (Ray alone would be refused)."""
    assert "RAY_AUTH_MODE" not in head.env
    r = subprocess.run(_tunedepth("--address", head.address, "--name", "att", "--results-dir", str(tmp_path)),
                       env=head.env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"ray: attached to {head.address} (token auth)" in r.stdout
    assert (tmp_path / "att" / "trials.parquet").exists() and (tmp_path / "att" / "report.md").exists()


@pytest.mark.slow
def test_ray_job_submit_runs_a_search_into_results_of_its_working_dir(head, tmp_path):
    """`ray job submit -- tunedepth run ...`: the driver attaches through $RAY_ADDRESS; a relative results dir is
    the job's working dir's (the head's, without --working-dir): results/<name> there (README)."""
    env = {**head.env, "RAY_AUTH_MODE": "token"}  # the job CLI's HTTP client needs the mode (README)
    cmd = [str(BIN / "ray"), "job", "submit", "--address", f"http://127.0.0.1:{head.dashboard_port}", "--",
           *_tunedepth("--name", "job")]
    r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0 and "succeeded" in r.stdout + r.stderr, r.stdout[-3000:] + r.stderr[-2000:]
    assert "ray: attached to" in r.stdout and "(token auth)" in r.stdout
    run_dir = head.cwd / "results" / "job"
    assert (run_dir / "trials.parquet").exists() and (run_dir / "report.md").exists()
    assert not (tmp_path / "results").exists()  # not the submitting shell's folder


def test_a_job_working_dir_copy_gets_a_note_about_relative_results(tmp_path, monkeypatch):
    from tunedepth.config import SearchConfig
    from tunedepth.hpo.cluster import warn_job_working_dir

    said = []
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", '{"runtime_env": {"working_dir": "gcs://_ray_pkg_x.zip"}}')
    warn_job_working_dir(SearchConfig(results_dir="results"), tmp_path / "r", said.append)
    warn_job_working_dir(SearchConfig(results_dir=str(tmp_path)), tmp_path / "r", said.append)
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", '{"runtime_env": {"env_vars": {}}}')
    warn_job_working_dir(SearchConfig(results_dir="results"), tmp_path / "r", said.append)
    assert len(said) == 1 and "absolute --results-dir" in said[0]


@pytest.mark.slow
@pytest.mark.parametrize("token, needle", [("wrong", "refused the token from $RAY_AUTH_TOKEN"),
                                           (None, "no token was found"), ("disabled", "RAY_AUTH_MODE=disabled")])
def test_an_unauthenticated_attach_is_one_line_before_anything_is_built(head, tmp_path, monkeypatch, capsys,
                                                                          token, needle):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token
    for key in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    if token == "disabled":
        monkeypatch.setenv("RAY_AUTH_TOKEN", head.token)
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    elif token:
        monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    t0 = time.time()
    code = main(["run", *TINY, "--address", head.address, "--name", "x", "--results-dir", str(tmp_path / "r")])
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0], out.err
    assert "ray get-auth-token" in lines[0] or "unset it" in lines[0]
    assert time.time() - t0 < 15 and "data:" not in out.out
    assert not (tmp_path / "r" / "x").exists()


def test_token_lookup_order_and_token_mode(tmp_path, monkeypatch):
    """$RAY_AUTH_TOKEN, then the file $RAY_AUTH_TOKEN_PATH, then ~/.ray/auth_token; the mode is set only when a
    token exists and the user set no mode."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for key in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(key, raising=False)
    assert find_token() is None and use_token_auth() is False and "RAY_AUTH_MODE" not in os.environ
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("home-token\n")
    assert find_token() == ("home-token", str(tmp_path / ".ray" / "auth_token"))
    (tmp_path / "t").write_text("path-token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "t"))
    assert find_token()[0] == "path-token"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "env-token")
    assert find_token() == ("env-token", "$RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert use_token_auth() is False and os.environ["RAY_AUTH_MODE"] == "disabled"  # the user's choice stands
    monkeypatch.delenv("RAY_AUTH_MODE")
    try:
        assert use_token_auth() is True and os.environ["RAY_AUTH_MODE"] == "token"
    finally:
        monkeypatch.undo()
        if "ray._raylet" in sys.modules:  # leave Ray's cached config as the environment now says
            sys.modules["ray._raylet"].Config.initialize("")


def test_a_port_that_is_not_a_ray_head_is_one_line(monkeypatch):
    import socket

    from tunedepth.errors import ConfigError
    from tunedepth.hpo.guard import check_address

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with socket.socket() as listener:  # accepts TCP, speaks no gRPC
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(ConfigError, match="answers but not as a Ray head") as e:
            check_address(f"127.0.0.1:{port}", timeout_s=1.0)
    assert "\n" not in str(e.value) and "ray start --head --port" in str(e.value)
