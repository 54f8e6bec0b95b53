"""Class 5 of issue 17: an unusable output directory is found before anything is computed
(exit 2, the message names the directory, what is wrong and how to fix it), and a failure to
write at the end keeps the results in a fallback directory (exit 3, saying where)."""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.cli import short_lj_job

import rexfit.run as run_module
from rexfit.cli import main
from rexfit.errors import InputErrors
from rexfit.job import load_job
from rexfit.run import OutputNotWritten, _Outputs, check_output_dir, run_job

@pytest.fixture()
def lj_job(tmp_path) -> Path:
    """jobs/ar-lj with a short fit (3 iterations)."""
    return short_lj_job(tmp_path, 3)


def _bad_dir_run(job: Path, out: str, capsys) -> tuple[int, str, float]:
    started = time.perf_counter()
    code = main([str(job), "--output-dir", out])
    captured = capsys.readouterr()
    return code, captured.out + captured.err, time.perf_counter() - started


def _expect_early_exit_2(code, text, out, *words):
    assert code == 2
    assert "Traceback" not in text
    assert os.path.abspath(out) in text and "--output-dir" in text
    for word in words:
        assert word in text
    # nothing was computed: no training phase, no structure properties
    assert "Training phase" not in text and "Computing structure properties" not in text


def test_output_dir_that_is_a_file(lj_job, tmp_path, capsys):
    out = tmp_path / "results"
    out.write_text("not a directory\n")
    code, text, _ = _bad_dir_run(lj_job, str(out), capsys)
    _expect_early_exit_2(code, text, str(out), "is a file")
    assert out.read_text() == "not a directory\n"  # left alone


def test_output_dir_under_a_file(lj_job, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    out = blocker / "deeper" / "out"
    code, text, _ = _bad_dir_run(lj_job, str(out), capsys)
    _expect_early_exit_2(code, text, str(out), f"{blocker} is a file")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_output_dir_that_cannot_be_created(lj_job, capsys):
    out = "/proc/self/rexfit-out"  # no one, not even root, creates directories here
    code, text, _ = _bad_dir_run(lj_job, out, capsys)
    _expect_early_exit_2(code, text, out, "cannot be created")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_dir(lj_job, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, text, _ = _bad_dir_run(lj_job, str(out), capsys)
    finally:
        out.chmod(0o755)
    _expect_early_exit_2(code, text, str(out), "not writable")
    assert list(out.iterdir()) == []


def test_probe_leaves_nothing_behind(tmp_path):
    out = tmp_path / "a" / "b"
    check_output_dir(str(out))  # created, probed, removed again
    assert list(tmp_path.iterdir()) == []
    out.mkdir(parents=True)
    check_output_dir(str(out))  # an existing directory stays, empty
    assert out.is_dir() and list(out.iterdir()) == []


def test_python_api_raises_input_errors_before_computing(lj_job, tmp_path, monkeypatch):
    job, _ = load_job(str(lj_job))
    out = tmp_path / "file"
    out.write_text("")
    built = []
    monkeypatch.setattr(run_module, "build_potentials",
                        lambda *a, **k: built.append(1) or pytest.fail("computed"))
    with pytest.raises(InputErrors) as err:
        run_job(job, output_dir=str(out), quiet=True)
    assert str(out) in str(err.value) and not built


def test_failure_to_write_at_the_end_keeps_the_results(lj_job, tmp_path, monkeypatch, capsys):
    """The directory passed the check, then the disk filled up when results.json was written:
    everything goes to a fallback directory and the exit code is 3."""
    out = tmp_path / "out"
    fallback_root = tmp_path / "system-tmp"
    fallback_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(fallback_root))
    real = run_module.write_json

    def full_disk(path, data):
        if os.path.dirname(os.path.abspath(path)) == str(out):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        real(path, data)

    monkeypatch.setattr(run_module, "write_json", full_disk)
    code = main([str(lj_job), "--output-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 3
    assert "Traceback" not in captured.err
    [fallback] = list(fallback_root.iterdir())
    assert str(out) in captured.err and str(fallback) in captured.err
    assert os.strerror(errno.ENOSPC) in captured.err
    for name in ("results.json", "parameters.xml", "log.txt"):
        assert (fallback / name).is_file(), name
    res = json.loads((fallback / "results.json").read_text())
    fitted = {k: v for k, v in res["parameters"].items() if v["fitted"]}
    assert fitted and all(v["value"] != v["initial"] for v in fitted.values())
    assert str(fallback) in (fallback / "log.txt").read_text()
    assert not (out / "results.json").exists()


def test_when_the_fallback_fails_too_the_error_says_so(tmp_path, monkeypatch):
    def always_fails(directory):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(directory, "x"))

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    outputs = _Outputs(str(tmp_path / "out"), "job")
    with pytest.raises(OutputNotWritten) as err:
        outputs.write(always_fails)
    assert err.value.directory is None
    assert str(tmp_path / "out") in str(err.value) and "printed only" in str(err.value)


def test_a_failing_write_replays_the_earlier_files_into_the_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    outputs = _Outputs(str(out), "job")
    outputs.write(lambda d: Path(d, "first.txt").write_text("1"))

    def second(directory):
        if directory == str(out):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        Path(directory, "second.txt").write_text("2")

    outputs.write(second)
    assert outputs.dir != str(out) and outputs.failed() is not None
    assert sorted(p.name for p in Path(outputs.dir).iterdir()) == ["first.txt", "second.txt"]
    assert str(out) in outputs.failed() and outputs.dir in outputs.failed()
