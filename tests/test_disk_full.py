"""A results folder on a full disk (issue 27): one line naming the problem and the fix, exit 2, and nothing
half-written left as if complete (run files are written to a temp file, then renamed: ``run_files._atomic``).
A real 256 KiB tmpfs where the test may mount one (root), else skipped; the CLI case simulates ENOSPC in our
own run-files writer (the parquet write of ``summary.parquet``), on a real run folder."""
import errno
import hashlib
import os
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


def test_the_epoch_log_on_a_full_disk_is_one_line_and_keeps_its_complete_lines(tiny_disk):
    """``epochs.jsonl`` (appended by the driver's Tune callback as results arrive): when the disk fills, the log
    is cut back to its last complete line, and the error is ``DiskFull``'s one line, not a bare OSError."""
    log = tiny_disk / "epochs.jsonl"
    run_files.append_json_line({"trial_id": "a", "epoch": 1}, log)
    before = log.read_bytes()
    with pytest.raises(DiskFull) as e:
        run_files.append_json_line({"trial_id": "a", "epoch": 2, "pad": "x" * 400_000}, log)  # > the 256 KiB disk
    assert "\n" not in str(e.value) and "epochs.jsonl" in str(e.value) and "--results-dir" in str(e.value)
    assert log.read_bytes() == before  # no half line left behind
    assert run_files.read_json_lines(log) == [{"trial_id": "a", "epoch": 1}]


def test_a_disk_that_fills_while_tune_runs_is_disk_fulls_one_line(ray_local, tiny_disk, tmp_path):
    """A real Tune run whose driver callback (``EpochLog``) appends to ``epochs.jsonl`` on the tmpfs, filled up
    but for a few bytes: Tune wraps the callback's error in a ``TuneError`` (a traceback as text);
    ``results.fit`` turns it back into ``DiskFull``'s one line, and the log keeps only complete lines."""
    from ray import tune

    from tunedepth.hpo.results import EpochLog, fit

    def trainable(config):
        for epoch in range(1, 201):  # ~14 KB of log lines, more than the one free page
            tune.report({"epoch": epoch, "val_metric": 0.5, "train_loss": 1.0})

    filler = tiny_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk, then give back one page: the first line or two of the log fit, then ENOSPC
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as full:
        assert full.errno == errno.ENOSPC
    os.ftruncate(fd, os.fstat(fd).st_size - 4096)
    os.close(fd)
    tuner = tune.Tuner(trainable, run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0,
                                                            callbacks=[EpochLog(tiny_disk)]))
    with pytest.raises(DiskFull) as e:
        fit(tuner)
    assert "\n" not in str(e.value) and "epochs.jsonl" in str(e.value) and "Traceback" not in str(e.value)
    for row in run_files.read_json_lines(tiny_disk / "epochs.jsonl"):
        assert row["val_metric"] == 0.5
    log = (tiny_disk / "epochs.jsonl").read_bytes()
    assert log == b"" or log.endswith(b"\n")  # complete lines only
