"""A results folder on a full disk (issue 27): one line naming the problem and the fix, exit 2, and nothing
half-written left as if complete (run files are written to a temp file, then renamed: ``run_files._atomic``).
A real 256 KiB tmpfs where the test may mount one (root), else skipped; the CLI case simulates ENOSPC in our
own run-files writer (the parquet write of ``summary.parquet``), on a real run folder."""
import errno
import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_report import _probs, write_run
from tunedepth import run_files
from tunedepth.cli.main import main
from tunedepth.run_files import DiskFull, write_parquet, write_text


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)  # our own mount, nothing else


def test_a_full_disk_is_one_line_and_leaves_the_complete_file_as_it_was(tiny_disk):
    write_text("complete report\n", tiny_disk / "report.md")
    big = pd.DataFrame(np.random.default_rng(0).normal(size=(60_000, 4)), columns=list("abcd"))  # ~2 MB
    with pytest.raises(DiskFull) as e:
        write_parquet(big, tiny_disk / "trials.parquet")
    assert "\n" not in str(e.value) and "no space left" in str(e.value) and "--results-dir" in str(e.value)
    with pytest.raises(DiskFull):
        write_text("x" * 2_000_000, tiny_disk / "report.md")
    assert (tiny_disk / "report.md").read_text() == "complete report\n"  # the earlier complete file
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["report.md"]  # no trials.parquet, no temp file


def test_report_on_a_full_disk_exits_2_with_one_line_and_keeps_the_earlier_files(tmp_path, monkeypatch, capsys):
    run_dir = write_run(tmp_path / "r", {(1.0, "fc8"): (0.8, _probs(2.0, 0)), (1.0, "scratch"): (0.7, _probs(1.0, 1))})
    assert main(["report", str(run_dir)]) == 0
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run_dir.iterdir() if p.is_file()}
    real = run_files.pq.write_table

    def half_then_full(table, where, **kw):  # writes part of the file, then the disk is full
        real(table, where, **kw)
        Path(where).write_bytes(Path(where).read_bytes()[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_files.pq, "write_table", half_then_full)
    capsys.readouterr()
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no space left" in err and "summary.parquet" in err and "Traceback" not in err
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run_dir.iterdir() if p.is_file()}
    assert after == before  # summary.parquet and report.md still the earlier complete ones, no temp file


def test_a_run_into_a_full_disk_is_refused_in_one_line_before_any_data(tiny_disk):
    """On the real tmpfs: `tunedepth run` stops before data, folder or Ray, not in Tune's sync errors."""
    from tests.test_divergence import TUNEDEPTH

    run = subprocess.run([TUNEDEPTH, "run", "--smoke", "--name", "f", "--results-dir", str(tiny_disk)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "MB free" in lines[0] and "--results-dir" in lines[0] and "Traceback" not in run.stderr
    assert list(tiny_disk.iterdir()) == []  # nothing written
