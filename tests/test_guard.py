"""Run names, one owner per run name, and Ctrl-C / SIGTERM ending a search as an interrupt (real processes, real
Ray)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunedepth.errors import ConfigError
from tunedepth.hpo.guard import RunLock, check_run_name


@pytest.mark.parametrize("name", ["../x", "..", ".", "a/b", "/abs", ".hidden", ""])
def test_bad_run_names_are_refused_in_one_line(name):
    with pytest.raises(ConfigError, match="one plain folder name") as e:
        check_run_name(name)
    assert "\n" not in str(e.value)


def test_a_run_name_has_one_owner_at_a_time(tmp_path):
    """A second process asking for the same run name is refused while the first holds it, and gets it after."""
    code = ("import sys; from tunedepth.hpo.guard import RunLock\n"
            "try:\n    RunLock(sys.argv[1], 'r').__enter__()\nexcept Exception as e:\n    print(e); sys.exit(2)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with RunLock(tmp_path, "r"):
        other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env)
        assert other.returncode == 2 and f"in use by process {os.getpid()}" in other.stdout
        with RunLock(tmp_path, "other-name"):
            pass  # other names are free
    again = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stdout


def test_unusable_results_dir_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match="choose a writable --results-dir") as e:
        RunLock(tmp_path / "file" / "results", "x").__enter__()
    assert "\n" not in str(e.value)


def _start_search(tmp_path: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "TUNEDEPTH_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    exe = str(Path(sys.executable).with_name("tunedepth"))
    return subprocess.Popen([exe, "run", "--smoke", "--backbone", "tiny-alexnet", "--source", "scratch",
                             "--depths", "scratch", "--epochs", "40", "--grace-period", "40", "--patience-steps", "0",
                             "--samples", "1", "--name", name,
                             "--results-dir", str(tmp_path / "results")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _wait_for(proc: subprocess.Popen, needle: str, timeout: float) -> str:
    seen, t0 = [], time.time()
    while time.time() - t0 < timeout:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"{needle!r} not seen in {timeout}s:\n{''.join(seen)[-2000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_results_and_exits_with_the_signal(tmp_path, sig):
    """Ctrl-C (or SIGTERM) mid-search: exit 128+signal, one line pointing to resume, no answer, a second run
    with the same name refused while the first lives (checked once, with SIGINT), and the partial trials.parquet
    kept."""
    proc = _start_search(tmp_path, "intr")
    try:
        _wait_for(proc, "running", 240)  # the live view shows running trials
        if sig == signal.SIGINT:
            second = _start_search(tmp_path, "intr")
            out2 = second.communicate(timeout=120)[0]
            assert second.returncode == 2 and "is in use by process" in out2, out2[-1500:]
        time.sleep(3)
        proc.send_signal(sig)
        out = proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, out[-2000:]
    assert "interrupted: resume with `tunedepth resume intr`" in out
    assert "best tuning depth per data budget" not in out
    run_dir = tmp_path / "results" / "intr"
    assert (run_dir / "config.yaml").exists() and (run_dir / "tune").is_dir()
    assert not any(p.name.startswith("intr.") for p in (tmp_path / "results").iterdir())  # nothing moved aside


def test_unreachable_address_fails_fast_before_any_folder(tmp_path):
    import socket

    from tunedepth.config import SearchConfig
    from tunedepth.hpo.runner import run_search

    with socket.socket() as s:  # a port that was free a moment ago: nobody listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    with pytest.raises(ConfigError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        run_search(SearchConfig(name="x", address=f"127.0.0.1:{port}", results_dir=str(tmp_path / "r")),
                   log=lambda s: None)
    assert time.time() - t0 < 15 and not (tmp_path / "r").exists()
