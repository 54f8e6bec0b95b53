"""Potentials as a job file describes them, against LAMMPS: a Morse pair potential written as
an <eam> with only a pair function (morse-A with a cutoff), and Al_zhou.eam.alloy as a
<tabulated-eam>, on the shared parity structures (strained triclinic, cells smaller than
twice the cutoff, several species)."""

from __future__ import annotations

import numpy as np
import pytest

from rexfit.job import load_job
from rexfit.model.potentials import build_potentials
from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system
from tests.support.lammps_ref import lammps_compute, potentials_dir
from tests.support.structures import make_cases

MORSE = """<?xml version="1.0"?>
<job><atom-types><species>Cu</species></atom-types>
<potentials>
  <eam id="M">
    <mapping><pair-interaction function="V"/></mapping>
    <functions>
      <morse-A id="V"><D0>0.3429</D0><r0>2.866</r0><alpha>1.3588</alpha><cutoff>6.0</cutoff></morse-A>
    </functions>
  </eam>
</potentials>
<structures/></job>
"""

ZHOU = """<?xml version="1.0"?>
<job><atom-types><species>Al</species></atom-types>
<potentials>
  <tabulated-eam id="Al" style="eam/alloy"><param-file>{file}</param-file></tabulated-eam>
</potentials>
<structures/></job>
"""


def model_of(tmp_path, text):
    (tmp_path / "job.xml").write_text(text)
    job, _ = load_job(str(tmp_path / "job.xml"))
    return build_potentials(job)


CASES = [c for c in make_cases(a=3.8, ntypes=1) if all(c.pbc)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("which", ["morse", "zhou"])
def test_parity(tmp_path, case, which):
    if which == "morse":
        pm = model_of(tmp_path, MORSE)
        style, coeff = "morse 6.0", ["* * 0.3429 1.3588 2.866"]
    else:
        path = potentials_dir() / "Al_zhou.eam.alloy"
        pm = model_of(tmp_path, ZHOU.format(file=path))
        style, coeff = "eam/alloy", [f"* * {path} Al"]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    ev = evaluate(pm.potential, pm.params, system, build_neighbor_list(system, pm.cutoff))
    ref = lammps_compute(case.positions, case.cell, case.species, case.pbc, style, coeff)
    n = case.natoms
    assert abs(float(ev.energy) - ref.energy) / n < 1e-9
    assert np.max(np.abs(np.asarray(ev.forces) - ref.forces)) < 1e-8
    assert np.max(np.abs(np.asarray(ev.stress) - ref.stress)) * EV_PER_A3_TO_GPA < 1e-6
