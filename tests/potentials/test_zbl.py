"""ZBL repulsion against LAMMPS ``pair_style zbl`` (alone and in ``hybrid/overlay`` with SW and
Tersoff), its switching function, half vs full lists, and forces vs finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.physics.properties import evaluate
from rexfit.potentials.base import SumPotential
from rexfit.potentials.lists import build_lists
from rexfit.potentials.sw import StillingerWeber
from rexfit.potentials.tersoff import Tersoff
from rexfit.potentials.zbl import ZBL, _screened_coulomb
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system
from tests.support.lammps_ref import lammps_compute, potentials_dir
from tests.support.structures import crystal, make_cases

REL = 1e-10  # relative agreement with LAMMPS (of the largest |value| of each quantity)
INNER, OUTER = 3.0, 4.0
STYLE = f"zbl {INNER} {OUTER}"


def zbl_coeffs(z, offset=0):
    """``pair_coeff`` lines ``i j zbl? z_i z_j`` for every i ≤ j (types 1-based)."""
    return [f"{i + 1} {j + 1} {z[i]} {z[j]}" for i in range(len(z)) for j in range(i, len(z))]


def assert_matches(ours, ref, periodic=True, rel=REL, e_floor=1e-12, f_floor=1e-12):
    """Energy, forces and (if periodic) stress agree relative to their largest magnitude
    (at least the floors: the size of terms that cancel near ``outer``)."""
    e_scale = max(abs(ref.energy), e_floor)
    assert abs(float(ours.energy) - ref.energy) <= rel * e_scale, (float(ours.energy), ref.energy)
    f_scale = max(np.abs(ref.forces).max(), f_floor)
    df = np.abs(np.asarray(ours.forces) - ref.forces).max()
    assert df <= rel * f_scale, (df, f_scale)
    if periodic:
        s_scale = max(np.abs(ref.stress).max(), 1e-12)
        ds = np.abs(np.asarray(ours.stress) - ref.stress).max()
        assert ds <= rel * s_scale, (ds, s_scale)


def ours_for(potential, params, pos, cell, species, pbc, half=True, skin=0.3):
    system = make_system(pos, cell, species, pbc=pbc)
    nbrs = build_neighbor_list(system, potential.cutoff, skin, half=half)
    return evaluate(potential, params, system, nbrs)


# --------------------------------------------------------------------------- dimers

@pytest.mark.parametrize("r", [0.3, 1.1, 2.9, 3.0, 3.2, 3.7, 3.999, 4.3])
@pytest.mark.parametrize("z", [(14.0,), (14.0, 6.0)])
def test_dimer_matches_lammps(r, z):
    """Inside ``inner``, in the switching region and beyond ``outer``; the unlike pair for two
    elements."""
    potential = ZBL(INNER, OUTER, z)
    species = np.array([0, len(z) - 1])
    pos = np.array([[0.1, 0.2, 0.3], [0.1 + 0.48 * r, 0.2 + 0.6 * r, 0.3 + 0.64 * r]])
    ours = ours_for(potential, {}, pos, np.zeros((3, 3)), species, (False,) * 3)
    ref = lammps_compute(pos, np.zeros((3, 3)), species, (False,) * 3, STYLE, zbl_coeffs(z),
                         len(z))
    if r >= OUTER:
        assert float(ours.energy) == ref.energy == 0.0
        assert not np.any(np.asarray(ours.forces)) and not np.any(ref.forces)
    else:  # near outer E is a small difference of e(r) and the switch: compare to e, e'
        e, e1, _ = _screened_coulomb(z[0], z[-1], r)
        assert_matches(ours, ref, periodic=False, e_floor=abs(e), f_floor=abs(e1))


# --------------------------------------------------------------------------- crystals

def test_single_element_crystal_matches_lammps():
    """Diamond Si: first neighbours inside ``inner``, second ones between inner and outer."""
    pos, cell, species = crystal("Si", 5.431, seed=21, strain=0.03, rattle=0.15)
    potential = ZBL(INNER, OUTER, (14.0,))
    ref = lammps_compute(pos, cell, species, (True,) * 3, STYLE, zbl_coeffs((14.0,)))
    assert_matches(ours_for(potential, {}, pos, cell, species, (True,) * 3), ref)


@pytest.mark.parametrize("case", ["strained_triclinic", "two_atom_small", "left_handed",
                                  "slab", "cluster"])
def test_two_element_cases_match_lammps(case):
    (c,) = [c for c in make_cases(a=3.3, ntypes=2, seed=5) if c.name == case]
    z = (29.0, 13.0)
    potential = ZBL(INNER, OUTER, z)
    ref = lammps_compute(c.positions, c.cell, c.species, c.pbc, STYLE, zbl_coeffs(z), 2)
    ours = ours_for(potential, {}, c.positions, c.cell, c.species, c.pbc)
    assert_matches(ours, ref, periodic=all(c.pbc))


def test_species_beyond_the_table_do_not_interact():
    """Species 1 has no Z: LAMMPS gets the same numbers with zbl acting on type 1 only
    (``hybrid/overlay`` of zbl and a zero LJ, so that type 2 has a pair style)."""
    c = [c for c in make_cases(a=3.3, ntypes=2, seed=6) if c.name == "strained_triclinic"][0]
    potential = ZBL(INNER, OUTER, (26.0,))
    ref = lammps_compute(c.positions, c.cell, c.species, c.pbc,
                         f"hybrid/overlay {STYLE} lj/cut 1.0",
                         ["1 1 zbl 26.0 26.0", "* * lj/cut 0.0 1.0"], 2)
    assert_matches(ours_for(potential, {}, c.positions, c.cell, c.species, c.pbc), ref)


# --------------------------------------------------------------------------- lists, derivatives

def test_half_and_full_lists_agree():
    pos, cell, species = crystal("NaCl", 4.2, 1, "rocksalt", seed=22, strain=0.04, rattle=0.2)
    potential = ZBL(2.5, 3.5, (11.0, 17.0))
    half = ours_for(potential, {}, pos, cell, species, (True,) * 3, half=True)
    full = ours_for(potential, {}, pos, cell, species, (True,) * 3, half=False)
    assert float(full.energy) == pytest.approx(float(half.energy), rel=1e-13)
    np.testing.assert_allclose(np.asarray(full.forces), np.asarray(half.forces), rtol=0,
                               atol=1e-12 * float(np.abs(half.forces).max()))
    np.testing.assert_allclose(np.asarray(full.stress), np.asarray(half.stress), rtol=0,
                               atol=1e-12 * float(np.abs(half.stress).max()))


def test_forces_match_finite_differences():
    pos, cell, species = crystal("NaCl", 4.2, 1, "rocksalt", seed=23, strain=0.04, rattle=0.2)
    potential = ZBL(2.5, 3.5, (11.0, 17.0))
    system = make_system(pos, cell, species)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.3, half=False)
    energy = jax.jit(lambda x: potential.energy({}, system.replace(positions=x), nbrs))
    forces = -np.asarray(jax.grad(energy)(system.positions))
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (5, 2), (7, 0)]:
        step = np.zeros_like(pos)
        step[atom, axis] = h
        fd = -(float(energy(jnp.asarray(pos + step))) - float(energy(jnp.asarray(pos - step))))
        fd /= 2 * h
        assert forces[atom, axis] == pytest.approx(fd, rel=1e-7, abs=1e-8)


def test_switching_makes_energy_and_two_derivatives_vanish_at_outer():
    potential = ZBL(1.5, 2.5, (6.0, 8.0))
    si, sj = jnp.asarray(0), jnp.asarray(1)
    e = lambda r: potential.pair_energy(r, si, sj)  # noqa: E731
    outer = jnp.asarray(2.5)
    for f in (e, jax.grad(e), jax.grad(jax.grad(e))):
        assert abs(float(f(outer))) < 1e-12
    # continuous value, slope and curvature at inner; constant shift inside
    for f in (e, jax.grad(e), jax.grad(jax.grad(e))):
        below, above = float(f(jnp.asarray(1.5 - 1e-9))), float(f(jnp.asarray(1.5 + 1e-9)))
        assert below == pytest.approx(above, rel=1e-6)
    tab = potential.tables()
    assert tab["C"][0, 1] < 0.0 and tab["C"][0, 1] == tab["C"][1, 0]


def test_construction_checks_and_hashing():
    assert ZBL(1, 2, (14,)) == ZBL(1.0, 2.0, (14.0,))
    assert hash(ZBL(1, 2, (14,))) == hash(ZBL(1.0, 2.0, (14.0,)))
    assert ZBL(1.0, 2.0, (14.0,)).cutoff == 2.0
    with pytest.raises(ValueError, match="inner < outer"):
        ZBL(2.0, 2.0, (14.0,))
    with pytest.raises(ValueError, match="positive"):
        ZBL(1.0, 2.0, (14.0, 0.0))


# --------------------------------------------------------------------------- sums

def _sum_vs_hybrid(term_name, term, term_params, pos, cell, species, z, term_coeff):
    potential = SumPotential((("zbl", ZBL(INNER, OUTER, z)), (term_name, term)))
    params = {"zbl": {}, term_name: term_params}
    system = make_system(pos, cell, species)
    nbrs = build_lists(potential, system, 0.3, n_species=len(z))
    ours = evaluate(potential, params, system, nbrs)
    coeffs = [f"* * {term_name} {term_coeff}"]
    coeffs += [f"{line.split()[0]} {line.split()[1]} zbl {' '.join(line.split()[2:])}"
               for line in zbl_coeffs(z)]
    ref = lammps_compute(pos, cell, species, (True,) * 3,
                         f"hybrid/overlay {STYLE} {term_name}", coeffs, len(z))
    assert_matches(ours, ref)


def test_zbl_plus_sw_matches_hybrid_overlay():
    path = potentials_dir() / "Si.sw"
    sw, params = StillingerWeber.from_file(path, ["Si"])
    pos, cell, species = crystal("Si", 5.431, seed=24, strain=0.03, rattle=0.3)
    _sum_vs_hybrid("sw", sw, params, pos, cell, species, (14.0,), f"{path} Si")


def test_zbl_plus_tersoff_matches_hybrid_overlay():
    path = potentials_dir() / "SiC.tersoff"
    tersoff, params = Tersoff.from_file(path, ["Si", "C"])
    pos, cell, species = crystal("SiC", 4.36, 1, "zincblende", seed=25, strain=0.03,
                                 rattle=0.25)
    _sum_vs_hybrid("tersoff", tersoff, params, pos, cell, species, (14.0, 6.0), f"{path} Si C")
