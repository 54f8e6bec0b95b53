"""rexfit energies, forces and stresses agree with LAMMPS to round-off (EAM and LJ)."""

from __future__ import annotations

import numpy as np
import pytest

from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate
from rexfit.potentials.base import SumPotential
from rexfit.potentials.pair import LennardJones
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system, pad_system
from tests.support.lammps_ref import lammps_compute
from tests.support.structures import make_cases

E_TOL = 1e-9  # eV/atom
F_TOL = 1e-8  # eV/Å
S_TOL = 1e-6  # GPa
W_TOL = 1e-8  # eV (virial, non-periodic cases)

PAD_ATOMS = 32  # one padded shape per model → one compilation per model
CAPACITY = 3072

CASE_NAMES = [c.name for c in make_cases()]


def _compare(potential, params, case, style, coeff, ntypes):
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    padded = pad_system(system, PAD_ATOMS)
    nbrs = build_neighbor_list(padded, potential.cutoff, 0.2, capacity=CAPACITY)
    ours = evaluate(potential, params, padded, nbrs)
    ref = lammps_compute(case.positions, case.cell, case.species, case.pbc, style, coeff, ntypes)
    n = case.natoms
    assert abs(float(ours.energy) - ref.energy) / n < E_TOL
    assert np.abs(np.asarray(ours.forces)[:n] - ref.forces).max() < F_TOL
    assert np.all(np.asarray(ours.forces)[n:] == 0.0)
    if all(case.pbc):
        assert np.abs(np.asarray(ours.stress) - ref.stress).max() * EV_PER_A3_TO_GPA < S_TOL
    else:
        assert np.abs(np.asarray(ours.virial) - ref.virial).max() < W_TOL


@pytest.mark.parametrize("case_name", CASE_NAMES)
@pytest.mark.parametrize("model", ["Cu_mishin1", "CuNi", "FeP_fs", "AlFe_fs", "Cu_u3", "CuAg_u3"])
def test_eam_matches_lammps(eam_models, model, case_name):
    potential, params, style, coeff, ntypes = eam_models[model]
    case = {c.name: c for c in make_cases(ntypes=ntypes, seed=1)}[case_name]
    _compare(potential, params, case, style, coeff, ntypes)


LJ_PARAMS = {  # (epsilon eV, sigma Å) per species pair; cutoff 5.0 Å
    (0, 0): (0.40, 2.30),
    (0, 1): (0.25, 2.55),
    (1, 1): (0.15, 2.80),
}


@pytest.mark.parametrize("case_name", CASE_NAMES)
def test_lennard_jones_matches_lammps_lj_cut(case_name):
    case = {c.name: c for c in make_cases(ntypes=2, seed=2)}[case_name]
    terms, params, coeff = [], {}, []
    for (a, b), (eps, sigma) in LJ_PARAMS.items():
        name = f"lj{a}{b}"
        terms.append((name, LennardJones.between(5.0, a, b, 2)))
        params[name] = {"sigma": np.float64(sigma), "epsilon": np.float64(eps)}
        coeff.append(f"{a + 1} {b + 1} {eps!r} {sigma!r}")
    potential = SumPotential(tuple(terms))
    _compare(potential, params, case, "lj/cut 5.0", coeff, 2)
