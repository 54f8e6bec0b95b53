"""Lennard-Jones against ase.calculators.lj, and its parameter gradients."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones as AseLJ

from rexfit.physics.properties import evaluate
from rexfit.potentials.pair import LennardJones
from rexfit.structures.neighbors import build_neighbor_list, pair_displacements
from rexfit.structures.system import make_system
from tests.support.structures import make_cases

SIGMA, EPS, RC = 2.3, 0.4, 5.0
CASES = {c.name: c for c in make_cases(seed=4)}


@pytest.mark.parametrize("name", ["strained_triclinic", "one_atom_oblique", "two_atom_small",
                                  "left_handed", "cluster"])
def test_lj_matches_ase_calculator(name):
    case = CASES[name]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    nbrs = build_neighbor_list(system, RC, 0.0)
    potential = LennardJones(RC)
    params = {"sigma": np.float64(SIGMA), "epsilon": np.float64(EPS)}
    ours = evaluate(potential, params, system, nbrs)

    cell = case.cell if all(case.pbc) else 30.0 * np.eye(3)
    atoms = Atoms(f"X{case.natoms}", case.positions, cell=cell, pbc=case.pbc)
    atoms.calc = AseLJ(sigma=SIGMA, epsilon=EPS, rc=RC, smooth=False)
    # ASE shifts every pair by −V(rc); lj/cut (and rexfit) does not
    r = np.linalg.norm(np.asarray(pair_displacements(system, nbrs)), axis=1)
    npairs = np.sum(np.asarray(nbrs.mask) & (r < RC))
    shift = 4 * EPS * ((SIGMA / RC) ** 12 - (SIGMA / RC) ** 6)
    assert float(ours.energy) == pytest.approx(atoms.get_potential_energy() + npairs * shift,
                                               abs=1e-11 * case.natoms)
    np.testing.assert_allclose(ours.forces, atoms.get_forces(), atol=1e-11)
    if all(case.pbc):
        np.testing.assert_allclose(ours.stress, atoms.get_stress(), atol=1e-12)


def test_lj_dimer_closed_form():
    r = 2.6
    system = make_system([[0, 0, 0], [r, 0, 0]], np.zeros((3, 3)), pbc=(False,) * 3)
    nbrs = build_neighbor_list(system, RC, 0.0)
    ours = evaluate(LennardJones(RC), {"sigma": SIGMA, "epsilon": EPS}, system, nbrs)
    s6 = (SIGMA / r) ** 6
    assert float(ours.energy) == pytest.approx(4 * EPS * (s6 * s6 - s6), rel=1e-14)
    dvdr = 4 * EPS * (-12 * s6 * s6 + 6 * s6) / r
    np.testing.assert_allclose(ours.forces[1], [-dvdr, 0, 0], rtol=1e-13)
    far = make_system([[0, 0, 0], [RC + 1e-9, 0, 0]], np.zeros((3, 3)), pbc=(False,) * 3)
    e = evaluate(LennardJones(RC), {"sigma": SIGMA, "epsilon": EPS}, far,
                 build_neighbor_list(far, RC, 0.1)).energy
    assert float(e) == 0.0  # hard cutoff, no shift


def test_lj_parameter_gradients_match_finite_differences():
    case = CASES["strained_triclinic"]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    nbrs = build_neighbor_list(system, RC, 0.0)
    potential = LennardJones(RC)
    e = jax.jit(lambda p: potential.energy(p, system, nbrs))
    params = {"sigma": np.float64(SIGMA), "epsilon": np.float64(EPS)}
    grad = jax.grad(e)(params)
    for key in params:
        h = 1e-6
        up, down = dict(params), dict(params)
        up[key] = params[key] + h
        down[key] = params[key] - h
        fd = (float(e(up)) - float(e(down))) / (2 * h)
        assert float(grad[key]) == pytest.approx(fd, rel=1e-7)
