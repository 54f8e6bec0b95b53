"""Running the command line in tests of bad input and failed computations."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rexfit.cli import main

ROOT = Path(__file__).resolve().parents[2]


def line_of(text: str, fragment: str) -> int:
    """1-based line of the first occurrence of ``fragment`` in ``text``."""
    return text[:text.index(fragment)].count("\n") + 1


def run_cli(capsys, tmp_path, path, *extra, limit: float = 40.0) -> tuple[int, str]:
    """Exit code and stderr of ``rexfit PATH -q --output-dir TMP/out EXTRA``; it must finish
    within ``limit`` seconds and print no traceback."""
    start = time.perf_counter()
    code = main([str(path), "-q", "--output-dir", str(tmp_path / "out"), *extra])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert seconds < limit, f"took {seconds:.1f} s"
    return code, err


def short_lj_job(tmp_path, max_iter: int) -> Path:
    """jobs/ar-lj copied into ``tmp_path`` with a fit of ``max_iter`` iterations."""
    shutil.copytree(ROOT / "jobs/ar-lj", tmp_path / "ar-lj")
    path = tmp_path / "ar-lj/job.xml"
    path.write_text(path.read_text().replace('max-iter="100"', f'max-iter="{max_iter}"'))
    return path
