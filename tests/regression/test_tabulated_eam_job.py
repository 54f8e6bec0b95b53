"""A job that uses a LAMMPS EAM table (<tabulated-eam>): Mishin et al.'s Cu potential
(Cu_mishin1.eam.alloy, shipped with LAMMPS). The relaxed fcc properties are compared with the
values published for this potential (Mishin et al., Phys. Rev. B 63, 224106 (2001), Table I:
a = 3.615 Å, E_c = −3.54 eV, C11 = 169.9, C12 = 122.6, C44 = 76.2 GPa) and the energy with
LAMMPS at the same lattice parameter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rexfit.cli import main
from tests.support.lammps_ref import lammps_compute, potentials_dir

JOB = """<?xml version="1.0"?>
<job>
  <name>Cu Mishin</name>
  <atom-types><species>Cu</species></atom-types>
  <potentials>
    <tabulated-eam id="Cu" style="eam/alloy">
      <param-file>{file}</param-file>
    </tabulated-eam>
  </potentials>
  <structures>
    <fcc-lattice id="fcc">
      <atom-type>Cu</atom-type>
      <lattice-parameter>3.6</lattice-parameter>
      <relax><lattice-parameter/></relax>
      <properties>
        <lattice-parameter min="3.4" max="3.8"/>
        <atomic-energy/> <C11/> <C12/> <C44/> <bulk-modulus/>
      </properties>
    </fcc-lattice>
  </structures>
</job>
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("cu")
    job = d / "job.xml"
    job.write_text(JOB.format(file=potentials_dir() / "Cu_mishin1.eam.alloy"))
    assert main([str(job), "-q", "--output-dir", str(d / "out")]) == 0
    return json.loads((d / "out" / "results.json").read_text())["structures"]["fcc"]["properties"]


@pytest.mark.parametrize("name,published,tol", [
    ("lattice-parameter", 3.615, 0.0005), ("atomic-energy", -3.54, 0.005),
    ("C11", 169.9, 0.5), ("C12", 122.6, 0.5), ("C44", 76.2, 0.5)])
def test_published_properties(results, name, published, tol):
    assert results[name]["value"] == pytest.approx(published, abs=tol)


def test_energy_equals_lammps(results):
    a = results["lattice-parameter"]["value"]
    cell = a * np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
    ref = lammps_compute(np.zeros((1, 3)), cell, [0], (True, True, True),
                         "eam/alloy", [f"* * {potentials_dir() / 'Cu_mishin1.eam.alloy'} Cu"])
    assert results["atomic-energy"]["value"] == pytest.approx(ref.energy, rel=1e-12)
    # rexfit's relaxed a0 is LAMMPS's equilibrium too: LAMMPS sees zero stress there.
    assert np.max(np.abs(ref.stress)) * 160.21766208 < 1e-6


def test_species_missing_from_the_table_is_named(tmp_path, capsys):
    """A species the table acts on but does not hold: exit 2, naming the file and its
    elements."""
    job = tmp_path / "job.xml"
    job.write_text(JOB.format(file=potentials_dir() / "Cu_mishin1.eam.alloy")
                   .replace("<species>Cu</species>", "<species>Cu</species><species>Ag</species>"))
    assert main([str(job), "-q", "--no-fit", "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "<tabulated-eam id='Cu'>: species Ag not in" in err and "(it has Cu)" in err, err
