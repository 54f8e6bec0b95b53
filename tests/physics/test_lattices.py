"""Lattice builders against ase.build: cells, densities, neighbour shells, LAMMPS energies."""

from __future__ import annotations

from collections import Counter

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.lattice.compounds import L1_0, L1_2
from ase.neighborlist import primitive_neighbor_list
from ase.spacegroup import crystal

from rexfit.physics.properties import energy
from rexfit.structures import lattices
from rexfit.structures.neighbors import build_neighbor_list
from tests.support.lammps_ref import lammps_compute

A, C = 3.61, 3.3  # Å; generic lattice parameters (not equilibrium ones)


def _ase_cases():
    """name → (rexfit system, equivalent ASE Atoms with species array 'sp')."""
    def tag(atoms, species):
        atoms.set_array("sp", np.asarray(species))
        return atoms

    omega = crystal(["X", "X"], basis=[(0, 0, 0), (1 / 3, 2 / 3, 0.5)], spacegroup=191,
                    cellpar=[A * 1.25, A * 1.25, A * 1.25 * 0.62, 90, 90, 120])
    return {
        "fcc": (lattices.fcc(A), tag(bulk("X", "fcc", A), [0])),
        "bcc": (lattices.bcc(A * 0.8), tag(bulk("X", "bcc", A * 0.8), [0])),
        "sc": (lattices.sc(A * 0.7), tag(bulk("X", "sc", A * 0.7), [0])),
        "diamond": (lattices.diamond(A * 1.4), tag(bulk("X", "diamond", A * 1.4), [0, 0])),
        "hcp": (lattices.hcp(A * 0.71, 1.6), tag(bulk("X", "hcp", A * 0.71, A * 0.71 * 1.6),
                                                  [0, 0])),
        "omega": (lattices.omega(A * 1.25, 0.62), tag(omega, [0, 0, 0])),
        "dimer": (lattices.dimer(2.3), tag(Atoms("X2", [[0, 0, 0], [2.3, 0, 0]]), [0, 0])),
        "L12": (lattices.l12(A, (0, 1)),
                tag(L1_2(symbol=("Au", "Cu"), latticeconstant=A, size=(1, 1, 1)),
                    [1, 0, 0, 0])),
        "B1": (lattices.b1(A * 1.3, (0, 1)),
               tag(bulk("NaCl", "rocksalt", A * 1.3), [0, 1])),
        "B2": (lattices.b2(A * 0.85, (0, 1)),
               tag(bulk("CsCl", "cesiumchloride", A * 0.85), [0, 1])),
        "L10": (lattices.l10(A, C / A, (0, 1)),
                tag(L1_0(symbol=("Au", "Cu"), latticeconstant={"a": A, "c": C},
                         size=(1, 1, 1)), [0, 1, 1, 0])),
    }


CASES = _ase_cases()


def _shells(positions, cell, species, pbc, cutoff=6.0):
    """Counter of (distance rounded to 1e-6 Å, species i, species j) per atom."""
    i, j, d = primitive_neighbor_list("ijd", pbc, cell, positions, cutoff)
    n = len(positions)
    counts = Counter(zip(np.round(d, 6), species[i], species[j]))
    return {k: v / n for k, v in counts.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_lattice_matches_ase(name):
    system, atoms = CASES[name]
    pbc = tuple(atoms.pbc) if name != "dimer" else (False,) * 3
    if all(pbc):
        ours = abs(np.linalg.det(np.asarray(system.cell))) / system.natoms
        assert ours == pytest.approx(atoms.get_volume() / len(atoms), rel=1e-12)
    mine = _shells(np.asarray(system.positions), np.asarray(system.cell),
                   np.asarray(system.species), system.pbc)
    ref = _shells(atoms.positions, atoms.cell.array, atoms.get_array("sp"), pbc)
    assert mine.keys() == ref.keys()
    for k in ref:
        assert mine[k] == pytest.approx(ref[k])


@pytest.mark.parametrize("name", list(CASES))
def test_lattice_energy_matches_lammps_on_ase_structure(eam_models, name):
    system, atoms = CASES[name]
    model = "CuNi" if np.asarray(system.species).max() > 0 else "Cu_mishin1"
    potential, params, style, coeff, ntypes = eam_models[model]
    nbrs = build_neighbor_list(system, potential.cutoff, 0.0)
    pbc = tuple(atoms.pbc) if name != "dimer" else (False,) * 3
    ref = lammps_compute(atoms.positions, atoms.cell.array, atoms.get_array("sp"), pbc,
                         style, coeff, ntypes)
    ours = float(energy(potential, params, system, nbrs)) / system.natoms
    assert ours == pytest.approx(ref.energy / len(atoms), abs=1e-10)


def test_exact_cells_of_primitive_builders():
    np.testing.assert_allclose(lattices.fcc(A).cell, bulk("X", "fcc", A).cell.array, atol=1e-14)
    np.testing.assert_allclose(lattices.bcc(A).cell, bulk("X", "bcc", A).cell.array, atol=1e-14)
    hcp = bulk("X", "hcp", A, A * 1.6)
    ours = lattices.hcp(A, 1.6)
    np.testing.assert_allclose(ours.cell, hcp.cell.array, atol=1e-14)
    np.testing.assert_allclose(ours.positions, hcp.positions, atol=1e-14)


def test_builders_are_differentiable_in_lattice_parameters(eam_models):
    potential, params, *_ = eam_models["CuNi"]
    for builder, args in [
        (lattices.fcc, (3.5,)),
        (lambda a, ca: lattices.hcp(a, ca), (2.5, 1.6)),
        (lambda a, ca: lattices.l10(a, ca, (0, 1)), (3.6, 0.95)),
        (lambda a, ca: lattices.omega(a, ca), (4.5, 0.62)),
        (lambda d: lattices.dimer(d, (0, 1)), (2.4,)),
    ]:
        # the list (skin 0.5 Å) stays valid for the small finite-difference steps
        nbrs = build_neighbor_list(builder(*args), potential.cutoff, 0.5)

        @jax.jit
        def e(lattice, builder=builder, nbrs=nbrs):
            system = builder(*lattice)
            return potential.energy(params, system, nbrs) / system.natoms

        x0 = jnp.asarray(args, dtype=jnp.float64)
        grad = np.asarray(jax.grad(e)(x0))
        for k in range(len(args)):
            step = np.zeros(len(args))
            step[k] = 1e-5
            fd = (float(e(x0 + step)) - float(e(x0 - step))) / 2e-5
            assert grad[k] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_volume_derivative_of_builders():
    for builder, n in [(lattices.fcc, 1), (lattices.diamond, 2), (lattices.b2, 2)]:
        dv = jax.grad(lambda a: builder(a).volume)(3.0)
        assert float(dv) == pytest.approx(3 * float(builder(3.0).volume) / 3.0)


#: (builder arguments, the DOFs they are) per kind, for the lattice forms.
_FORM_CASES = {
    "fcc-lattice": ((A,), 0), "bcc-lattice": ((A,), 0), "sc-lattice": ((A,), 0),
    "diamond-lattice": ((A,), 0), "hcp-lattice": ((A, 1.58), 0),
    "omega-lattice": ((A, 0.63), 0), "dimer-structure": ((2.2,), (0, 1)),
    "L12-lattice": ((A,), (0, 1)), "B1-lattice": ((A,), (1, 0)), "B2-lattice": ((A,), (0, 1)),
    "L10-lattice": ((A, 1.1), (0, 1)),
}


@pytest.mark.parametrize("kind", sorted(lattices.LATTICE_BUILDERS))
def test_lattice_form_is_the_builder_to_the_bit(kind):
    """Every lattice as data (``LatticeForm``: cell = c0 + a·a0 + ca·a·a1, positions = p0 +
    frac @ cell + d·p1) gives the builder's cell, positions and species exactly, with the
    builder's default c/a when none is given, and the same derivatives."""
    args, species = _FORM_CASES[kind]
    assert set(_FORM_CASES) == set(lattices.LATTICE_BUILDERS)
    builder = lattices.LATTICE_BUILDERS[kind]
    form = lattices.lattice_form(kind, species)
    names = ("atom-distance",) if kind == "dimer-structure" else ("lattice-parameter", "ca-ratio")
    # bit for bit at XLA's default optimisation level (the builders are eager JAX, the form
    # NumPy); at level 0 (the test session's default, tests/conftest.py) XLA fuses no
    # multiply-adds, which moves a cancelling sum by an ulp of its terms
    exact = "xla_backend_optimization_level=0" not in os.environ.get("XLA_FLAGS", "")
    for given in (args, args[:1]):
        want = builder(*given, species=species)
        got = form.build(*form.values(dict(zip(names, given))))
        for a, b in ((got.positions, want.positions), (got.cell, want.cell)):
            a, b = np.asarray(a), np.asarray(b)
            if exact:
                assert np.array_equal(a, b)
            else:
                np.testing.assert_allclose(a, b, rtol=0, atol=4 * np.finfo(float).eps
                                           * max(np.abs(b).max(), 1.0))
        assert np.array_equal(np.asarray(got.species), np.asarray(want.species))
        assert got.pbc == want.pbc
    # d(positions, cell)/d(first DOF)
    v = form.values(dict(zip(names, args)))
    k = lattices.FORM_DOFS.index(names[0])

    def of_form(t):
        sys = form.build(*[t if i == k else v[i] for i in range(3)])
        return sys.positions, sys.cell

    def of_builder(t):
        sys = builder(t, *args[1:], species=species)
        return sys.positions, sys.cell

    for g, w in zip(jax.jacfwd(of_form)(args[0]), jax.jacfwd(of_builder)(args[0])):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=1e-15)
