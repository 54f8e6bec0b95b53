"""Neighbour lists against ASE's, half/full consistency, padding, buckets, rebuild check."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from ase.neighborlist import primitive_neighbor_list

from rexfit.physics.properties import energy
from rexfit.physics.strain import deform
from rexfit.structures.neighbors import (
    bucket_size,
    build_neighbor_list,
    needs_rebuild,
    pair_displacements,
)
from rexfit.structures.system import make_system, pad_system
from tests.support.structures import make_cases

CASES = {c.name: c for c in make_cases(ntypes=2, seed=3)}


def _pairs(nbrs):
    m = np.asarray(nbrs.mask)
    i, j, n = np.asarray(nbrs.i)[m], np.asarray(nbrs.j)[m], np.asarray(nbrs.shifts)[m]
    return set(zip(i.tolist(), j.tolist(), map(tuple, n.tolist())))


def _ase_pairs(case, cutoff):
    cell = case.cell if all(case.pbc) or np.linalg.det(case.cell) != 0 else np.eye(3)
    i, j, s = primitive_neighbor_list("ijS", case.pbc, cell, case.positions, cutoff,
                                      self_interaction=False)
    return set(zip(i.tolist(), j.tolist(), map(tuple, s.tolist())))


@pytest.mark.parametrize("name", list(CASES))
def test_full_list_matches_ase(name):
    case = CASES[name]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    nbrs = build_neighbor_list(system, 5.5, 0.0, half=False)
    assert _pairs(nbrs) == _ase_pairs(case, 5.5)


@pytest.mark.parametrize("name", list(CASES))
def test_half_list_holds_each_bond_once(name):
    case = CASES[name]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    full = _pairs(build_neighbor_list(system, 5.0, 0.3, half=False))
    half = _pairs(build_neighbor_list(system, 5.0, 0.3, half=True))
    mirrored = {(j, i, tuple(-k for k in n)) for i, j, n in half}
    assert half.isdisjoint(mirrored) or all(
        i == j and n == tuple(-k for k in n) for i, j, n in half & mirrored
    )
    assert half | mirrored == full
    assert 2 * len(half) == len(full)


def test_displacements_are_minimum_image_free_and_padded():
    case = CASES["one_atom_oblique"]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    nbrs = build_neighbor_list(system, 6.0, 0.0)
    d = np.asarray(pair_displacements(system, nbrs))
    m = np.asarray(nbrs.mask)
    r = np.linalg.norm(d[m], axis=1)
    assert r.max() <= 6.0 and r.min() > 0.5
    assert np.all(np.linalg.norm(d[~m], axis=1) > 1e3)  # padding rows: far, never zero
    assert m.sum() > 20  # a 1-atom cell much smaller than the cutoff: many images


def test_padding_atoms_are_never_neighbours():
    case = CASES["strained_triclinic"]
    system = pad_system(make_system(case.positions, case.cell, case.species, case.pbc), 48)
    nbrs = build_neighbor_list(system, 5.0, 0.5)
    m = np.asarray(nbrs.mask)
    n = case.natoms
    assert np.asarray(nbrs.i)[m].max() < n and np.asarray(nbrs.j)[m].max() < n
    plain = build_neighbor_list(system.replace(mask=jnp.arange(48) < n), 5.0, 0.5)
    assert _pairs(plain) == _pairs(nbrs)


def test_bucket_sizes_reuse_shapes_and_capacity_is_checked():
    sizes = {bucket_size(n) for n in range(1, 5000)}
    assert len(sizes) <= 20
    for n in [1, 33, 100, 1000, 4097]:
        assert n <= bucket_size(n) <= max(32, 1.5 * n)
    case = CASES["strained_triclinic"]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    with pytest.raises(ValueError, match="capacity"):
        build_neighbor_list(system, 5.0, 0.0, capacity=10)
    assert build_neighbor_list(system, 5.0, 0.0, capacity=4096).capacity == 4096


def test_needs_rebuild_detects_displacement_and_strain(eam_models):
    potential, params, *_ = eam_models["CuNi"]
    case = CASES["strained_triclinic"]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    skin = 0.4
    nbrs = build_neighbor_list(system, potential.cutoff, skin)
    assert not bool(needs_rebuild(nbrs, system))

    rng = np.random.default_rng(7)
    step = rng.normal(size=system.positions.shape)
    step *= 0.09 / np.linalg.norm(step, axis=1).max()  # max move 0.09 < skin/2
    strain = jnp.asarray(np.diag([2e-3, -1e-3, 1e-3]))
    moved = deform(system.replace(positions=system.positions + step), strain)
    assert not bool(needs_rebuild(nbrs, moved))
    fresh = build_neighbor_list(moved, potential.cutoff, skin)
    assert float(energy(potential, params, moved, nbrs)) == pytest.approx(
        float(energy(potential, params, moved, fresh)), abs=1e-11)

    far = system.replace(positions=system.positions.at[3, 0].add(0.21))
    assert bool(needs_rebuild(nbrs, far))
    assert bool(needs_rebuild(nbrs, deform(system, 0.05 * jnp.eye(3))))


def test_needs_rebuild_with_nonperiodic_cell():
    case = CASES["cluster"]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    nbrs = build_neighbor_list(system, 5.0, 0.4)
    assert not bool(needs_rebuild(nbrs, system))
    assert bool(needs_rebuild(nbrs, system.replace(positions=system.positions.at[0].add(0.3))))
