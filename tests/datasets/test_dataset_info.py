"""``rexfit dataset-info FILE``: frames, atoms, species, groups, what the frames carry, the
energy per atom; exit 2 on input it cannot read; no JAX imported."""

from __future__ import annotations

import subprocess
import sys

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from rexfit.cli import main


def write(path):
    out = []
    for k in range(5):
        n = 1 + k
        a = Atoms("Cu" * (n - 1) + "Ni", positions=np.arange(3 * n).reshape(n, 3) * 0.9,
                  cell=8 * np.eye(3), pbc=True)
        res = {"energy": -4.0 * n + k / 8}
        if k != 2:
            res["forces"] = np.zeros((n, 3))
        if k < 2:
            res["stress"] = np.zeros(6)
        a.calc = SinglePointCalculator(a, **res)
        a.info["config_type"] = "bulk" if k < 3 else "cluster"
        out.append(a)
    ase.io.write(path, out, format="extxyz")


def test_summary(tmp_path, capsys):
    path = tmp_path / "set.xyz"
    write(path)
    assert main(["dataset-info", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path} (extxyz): 5 frames"
    assert "  atoms: 1 to 5 per frame, 15 in all" in out
    assert "  species: Cu 10, Ni 5" in out
    assert "  groups (config_type): bulk 3, cluster 2" in out
    assert "  frames with energy 5, forces 4, stress 2 (of 5)" in out
    assert "  energy per atom: -4 to -3.9 eV/atom" in out
    assert main(["dataset-info", str(path), "--group", "cluster", "--format", "extxyz"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{path} (extxyz): 2 frames"


def test_unreadable_and_missing_files_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\nnot a comment line\nSi 0 0\n")
    assert main(["dataset-info", str(bad), str(tmp_path / "none.xyz")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}" in err and "none.xyz not found" in err and "Traceback" not in err
    assert main(["dataset-info", str(bad), "--index", "x"]) == 2
    assert "index=" in capsys.readouterr().err


def test_imports_no_jax(tmp_path):
    path = tmp_path / "set.xyz"
    write(path)
    code = ("import sys; from rexfit.cli import main; rc = main(['dataset-info', sys.argv[1]]);"
            " assert 'jax' not in sys.modules, 'jax imported'; sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "5 frames" in run.stdout


def test_run_prints_input_warnings_like_job_warnings(capsys):
    import warnings

    from rexfit.cli import _input_warnings_printed
    from rexfit.errors import InputError, InputWarning, Origin

    with _input_warnings_printed():
        warnings.warn(InputWarning(InputError("stress missing in 2 of 9 entries",
                                              Origin("d.xyz", 21), severity="warning")))
    assert capsys.readouterr().err == "d.xyz:21: warning: stress missing in 2 of 9 entries\n"
