"""What must start quickly (issue 20, parts 5 and 6): ``rexfit --help`` and ``rexfit validate``
import no JAX (nor does ``import rexfit.ase``: tests/api/test_api.py), and ``rexfit validate``
counts datasets, their files and fitted parameters.  Each import check runs in a fresh
interpreter and asserts on ``sys.modules``; the seconds are printed (``pytest -s``), not
asserted."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rexfit.cli import main

ROOT = Path(__file__).resolve().parents[2]

def _fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON line last."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _command(argv: list[str]) -> dict:
    return _fresh(f"""
        import contextlib, io, json, sys, time
        start = time.perf_counter()
        import rexfit.cli
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                code = rexfit.cli.main({argv!r})
            except SystemExit as exc:
                code = exc.code
        print(json.dumps({{"code": code, "seconds": time.perf_counter() - start,
                          "jax": sorted(m for m in sys.modules if m.split(".")[0] == "jax")}}))
        """)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["template", "eam"],
                                  ["validate", "--help"]])
def test_help_imports_no_jax(argv):
    seen = _command(argv)
    print(argv, f"{seen['seconds']:.3f} s")
    assert seen["code"] == 0
    assert seen["jax"] == []


def test_validate_imports_no_jax():
    jobs = ["jobs/al-eam/job.xml", "jobs/mo-snap-dataset/job.xml"]  # functions; a dataset
    seen = _command(["validate", *jobs])
    print("validate", *jobs, f"{seen['seconds']:.3f} s")
    assert seen["code"] == 0
    assert seen["jax"] == []


def test_validate_counts_datasets_files_and_parameters(capsys):
    jobs = ROOT / "jobs"
    assert main(["validate", str(jobs / "si-sw-dataset/job.xml"),
                 str(jobs / "mo-snap-dataset/job.xml"), str(jobs / "al-eam/job.xml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("valid (1 dataset of 1 file, 5 fitted parameters)")
    # SNAP coefficients: how many follows from twojmax, known once the model is built
    assert out[1].endswith("valid (1 dataset of 1 file, 2 groups of fitted coefficients "
                           "(Mo[SNAP].beta0, Mo[SNAP].beta; their sizes are known once the "
                           "model is built))")
    assert out[2].endswith("valid (4 structures, 4 fitted parameters)")
    assert main(["validate", "-v", str(jobs / "si-sw-dataset/job.xml")]) == 0
    text = capsys.readouterr().out
    assert "si <dataset> (training, 0.2 held out for validation)" in text
    assert f"<file> {jobs / 'si-sw-dataset/si.xyz'}" in text
