"""The fitted LAMMPS parameter file of a Tersoff/ABOP/SW potential: the export layer writes the
text of the family's record, reads back to the same values, and refuses values LAMMPS would
refuse without leaving a file behind."""

from __future__ import annotations

from types import SimpleNamespace

import jax.numpy as jnp
import pytest

from rexfit.errors import CalculationFailed
from rexfit.export.parameter_files import write_parameter_file
from rexfit.potentials.manybody_files import TERSOFF_PARAMETERS, read_tersoff_file
from rexfit.potentials.tersoff import Tersoff
from tests.support.lammps_ref import potentials_dir

JOB = SimpleNamespace(name="test", path="/somewhere/job.xml")
POT = SimpleNamespace(kind="tersoff", id="Si", param_file="Si.tersoff")


def test_written_file_has_the_values_and_the_lammps_commands(tmp_path):
    term, params = Tersoff.from_file(potentials_dir() / "Si.tersoff", ["Si"])
    params = {"SiSiSi": dict(params["SiSiSi"], A=jnp.float64(1234.5))}
    path = str(tmp_path / "Si_fitted.tersoff")
    write_parameter_file(JOB, POT, term, params, path)
    text = (tmp_path / "Si_fitted.tersoff").read_text()
    assert "# LAMMPS: pair_style tersoff; pair_coeff * * Si_fitted.tersoff Si" in text
    again = read_tersoff_file(path)[("Si", "Si", "Si")]
    assert again == {n: float(params["SiSiSi"][n]) for n in TERSOFF_PARAMETERS}


def test_values_lammps_refuses_are_not_written(tmp_path):
    term, params = Tersoff.from_file(potentials_dir() / "Si.tersoff", ["Si"])
    params = {"SiSiSi": dict(params["SiSiSi"], A=jnp.float64(-1.0))}
    path = str(tmp_path / "Si_fitted.tersoff")
    with pytest.raises(CalculationFailed, match=r"Si_fitted.tersoff: illegal Tersoff .*'A'"):
        write_parameter_file(JOB, POT, term, params, path)
    assert list(tmp_path.iterdir()) == []
