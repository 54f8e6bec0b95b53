"""Bispectrum components against LAMMPS ``compute sna/atom``, and their derivatives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.descriptors.bispectrum import Bispectrum, bispectrum_indices, clebsch_gordan
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system, pad_system
from tests.support.lammps_sna import lammps_sna
from tests.support.structures import crystal

RTOL = 1e-10


def two_element_cell(seed=1, repeat=2):
    """A strained, rattled triclinic bcc cell with a random two-element occupation."""
    pos, cell, _ = crystal("Mo", 3.15, repeat, seed=seed, strain=0.04, rattle=0.15)
    species = np.random.default_rng(seed).integers(0, 2, len(pos))
    species[:2] = (0, 1)
    return pos, cell, species


def features(descriptor, pos, cell, species, skin=0.3):
    system = make_system(pos, cell, species)
    nbrs = build_neighbor_list(system, descriptor.cutoff, skin, half=False)
    return np.asarray(jax.jit(descriptor.features)(system, nbrs))


def assert_matches(ours, ref):
    """Relative 1e-10, per column (components near zero judged on their column's scale)."""
    assert ours.shape == ref.shape
    scale = np.maximum(np.abs(ref), 1e-3 * np.abs(ref).max(axis=0, keepdims=True))
    rel = np.abs(ours - ref) / np.maximum(scale, 1e-300)
    assert rel.max() < RTOL, rel.max()


CASES = [  # twojmax, switchflag, bzeroflag, quadratic, rmin0, bnormflag
    (2, 1, 0, True, 0.0, 0),
    (3, 0, 1, False, 0.2, 0),
    (4, 1, 1, True, 0.0, 0),
    (5, 0, 0, False, 0.0, 1),
    (6, 1, 0, False, 0.3, 0),
    (7, 1, 1, False, 0.0, 0),
]


@pytest.mark.parametrize("case", CASES, ids=[f"2J{c[0]}" for c in CASES])
def test_two_element_bispectrum_matches_lammps(case):
    twojmax, switch, bzero, quadratic, rmin0, bnorm = case
    radii, weights, rcutfac, rfac0 = (0.9, 1.15), (1.0, 0.55), 2.3, 0.97
    descriptor = Bispectrum(twojmax, rcutfac, radii, weights, rfac0=rfac0, rmin0=rmin0,
                            switchflag=switch, bzeroflag=bzero, quadratic=quadratic,
                            bnormflag=bnorm)
    pos, cell, species = two_element_cell(seed=twojmax)
    ours = features(descriptor, pos, cell, species)
    args = (f"{rcutfac} {rfac0} {twojmax} {radii[0]} {radii[1]} {weights[0]} {weights[1]} "
            f"rmin0 {rmin0} switchflag {switch} bzeroflag {bzero} "
            f"quadraticflag {int(quadratic)} bnormflag {bnorm}")
    ref = lammps_sna(pos, cell, species, args, descriptor.cutoff)
    assert ours.shape[1] == descriptor.n_features
    assert_matches(ours, ref)


def test_small_cell_many_images_matches_lammps():
    """A 1-atom primitive cell: every neighbour is an image of the atom itself."""
    pos, cell, _ = crystal("W", 3.165, 1, seed=4, cubic=False, strain=0.03, rattle=0.0)
    descriptor = Bispectrum(6, 4.73442, (0.5,), (1.0,), bzeroflag=False)
    ours = features(descriptor, pos, cell, np.zeros(1, int))
    ref = lammps_sna(pos, cell, np.zeros(1, int), "4.73442 0.99363 6 0.5 1.0 bzeroflag 0",
                     descriptor.cutoff)
    assert_matches(ours, ref)


def test_indices_and_clebsch_gordan():
    assert bispectrum_indices(2) == [(0, 0, 0), (1, 0, 1), (1, 1, 2), (2, 0, 2), (2, 2, 2)]
    assert len(bispectrum_indices(6)) == 30 and len(bispectrum_indices(8)) == 55
    assert bispectrum_indices(6)[:3] == [(0, 0, 0), (1, 0, 1), (1, 1, 2)]
    # <½ ½, ½ −½ | 0 0> = 1/√2, <1 1, 1 −1 | 1 0> = 1/√2, <1 0, 1 0 | 1 0> = 0
    assert clebsch_gordan(1, 1, 1, -1, 0, 0) == pytest.approx(2 ** -0.5, rel=1e-15)
    assert clebsch_gordan(2, 2, 2, -2, 2, 0) == pytest.approx(2 ** -0.5, rel=1e-15)
    assert clebsch_gordan(2, 0, 2, 0, 2, 0) == 0.0


def test_inert_species_padding_and_derivatives():
    descriptor = Bispectrum(4, 2.3, (0.9, 1.15), (1.0, 0.55))
    pos, cell, species = two_element_cell(seed=9)
    system = make_system(pos, cell, species)
    nbrs = build_neighbor_list(system, descriptor.cutoff, 0.3, half=False)
    features = jax.jit(descriptor.features)  # one program per shape (two shapes here)
    base = np.asarray(features(system, nbrs))
    # padding atoms and padding pair slots
    padded = pad_system(system, len(pos) + 5)
    nb2 = build_neighbor_list(padded, descriptor.cutoff, 0.3, half=False,
                              capacity=nbrs.capacity * 2)
    got = np.asarray(features(padded, nb2))
    np.testing.assert_allclose(got[:len(pos)], base, rtol=1e-13, atol=1e-13)
    assert np.all(got[len(pos):] == 0.0)
    # an atom of species 2 (≥ number of elements): zero row, invisible to the others (in the
    # padded cell's shape: the same program)
    extra = make_system(np.vstack([pos, pos[:1] + 1.1]), cell, np.append(species, 2))
    extra = pad_system(extra, len(pos) + 5)
    got = np.asarray(features(
        extra, build_neighbor_list(extra, descriptor.cutoff, 0.3, half=False,
                                   capacity=nbrs.capacity * 2)))
    assert np.all(got[len(pos)] == 0.0)
    np.testing.assert_allclose(got[:len(pos)], base, rtol=1e-13, atol=1e-13)
    assert np.all(got[len(pos) + 1:] == 0.0)
    # derivative of a weighted sum of components against central differences
    weights = jnp.asarray(np.random.default_rng(0).normal(size=descriptor.n_features))

    def total(x):
        return jnp.sum(descriptor.features(system.replace(positions=x), nbrs) @ weights)

    grad = np.asarray(jax.jit(jax.grad(total))(system.positions))
    f = jax.jit(total)
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (7, 2), (11, 0)]:
        dx = np.zeros_like(pos)
        dx[atom, axis] = h
        fd = (float(f(system.positions + dx)) - float(f(system.positions - dx))) / (2 * h)
        assert grad[atom, axis] == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_unsupported_settings_raise():
    with pytest.raises(NotImplementedError, match="chemflag"):
        Bispectrum(6, 4.0, (0.5,), (1.0,), chemflag=True)
    with pytest.raises(NotImplementedError, match="wselfallflag"):
        Bispectrum(6, 4.0, (0.5,), (1.0,), wselfallflag=True)
    with pytest.raises(ValueError, match="radius"):
        Bispectrum(6, 4.0, (0.5, 0.6), (1.0,))
    assert hash(Bispectrum(6, 4.0, (0.5,), (1.0,))) == hash(Bispectrum(6, 4.0, [0.5], [1.0]))


@pytest.mark.parametrize("quadratic", [False, True], ids=["linear", "quadratic"])
def test_atom_major_gradients_equal_reverse_passes(quadratic):
    """``features_and_neighbor_gradients`` (atoms with their neighbour slots, one matrix
    product per atom) gives the rows and per-pair derivatives of one reverse pass per
    component, to round-off: two elements, an inert species, a padding atom, empty slots,
    and slot counts that give one atom per chunk and chunks that do not divide the atoms;
    the linear case with bnormflag."""
    from rexfit.datasets.descriptor_kernel import _slots, Geometry, feature_rows

    descriptor = Bispectrum(4, 4.6, (0.5, 0.42), (1.0, 0.7), rfac0=0.97, rmin0=0.1,
                            quadratic=quadratic, bnormflag=not quadratic)
    pos, cell, species = two_element_cell(seed=5)
    species[2] = 7  # inert
    system = make_system(pos, cell, species)
    nbrs = build_neighbor_list(system, descriptor.cutoff, 0.0, half=False)
    live = np.asarray(nbrs.mask)
    i, j = np.asarray(nbrs.i)[live], np.asarray(nbrs.j)[live]
    d = pos[j] - pos[i] + np.asarray(nbrs.shifts)[live].astype(np.float64) @ cell
    ref_rows, ref_grads = (np.asarray(v) for v in jax.jit(
        lambda *a: feature_rows(descriptor, *a, descriptor.cutoff))(
            species, np.ones(len(pos), bool), i, j, d, np.ones(len(i), bool)))
    slot = _slots(Geometry(species, i, j, d))
    n = len(pos) + 1  # one padding atom
    most = int(slot.max()) + 1
    for m in (most + 3, 600):  # 600 slots: one atom per chunk
        nbr_species = np.zeros((n, m), np.int32)
        vectors = np.full((n, m, 3), 1.0e4)
        slot_mask = np.zeros((n, m), bool)
        nbr_species[i, slot], vectors[i, slot], slot_mask[i, slot] = species[j], d, True
        atoms = np.concatenate([species, [0]]).astype(np.int32)
        mask = np.arange(n) < len(pos)
        rows, grads = (np.asarray(v) for v in jax.jit(
            descriptor.features_and_neighbor_gradients)(atoms, mask, nbr_species, vectors,
                                                          slot_mask))
        assert grads.shape == (n, m, descriptor.n_features, 3)
        np.testing.assert_allclose(rows[:-1], ref_rows, rtol=0,
                                   atol=1e-12 * np.abs(ref_rows).max())
        assert not np.any(rows[-1]) and not np.any(grads[~slot_mask])
        np.testing.assert_allclose(grads[i, slot], ref_grads, rtol=0,
                                   atol=1e-12 * np.abs(ref_grads).max())
    assert np.abs(ref_grads).max() > 0 and not np.any(ref_rows[2])

def test_term_list_z_values_equal_shifted_slices():
    """The cubic form's term-list Z (small program) equals the shifted-slice Z."""
    from rexfit.descriptors.bispectrum import (_cubic_tables, _sparse_z_values, _z_values,
                                               u_offsets)

    rng = np.random.default_rng(2)
    for twojmax in (3, 6):
        tab = _cubic_tables(twojmax)
        ur, ui = rng.normal(size=(2, int(u_offsets(twojmax)[-1]), 5))
        count = len(tab.triples)
        for (ar, ai), (br, bi) in zip(_z_values(tab, ur, ui, count),
                                      _sparse_z_values(tab, twojmax, ur, ui, count)):
            np.testing.assert_allclose(br, ar, rtol=0, atol=1e-13)
            np.testing.assert_allclose(bi, ai, rtol=0, atol=1e-13)


@pytest.mark.parametrize("twojmax", [1, 2, 5, 8])
def test_wigner_derivatives_by_rotation_generators_equal_forward_mode(twojmax):
    """dU = U·ρ(g† dg) (the derivative the design rows use, per row of the half U) equals
    forward mode through the recursion, for random pairs and directions, to round-off."""
    from rexfit.descriptors import bispectrum as bs
    from rexfit.descriptors.bispectrum_rows import (generator_coordinates, generator_rows,
                                                    generator_tables)

    rng = np.random.default_rng(twojmax)
    d = rng.normal(size=(3, 7)) * 1.2
    rcut, wj = np.full(7, 4.0), np.ones(7)
    tangent = rng.normal(size=(3, 7))

    def geometry(x):
        return bs._pair_geometry(x, rcut, wj, 0.97, 0.2, True)[:4]

    def half_u(x):
        return bs._compact(bs._levels(*geometry(x), twojmax, True), twojmax)

    (ur, ui), (dur, dui) = jax.jvp(half_u, (jnp.asarray(d),), (jnp.asarray(tangent),))
    a, da = jax.jvp(geometry, (jnp.asarray(d),), (jnp.asarray(tangent),))
    alpha, p, q = generator_coordinates(*a, *da)
    hoff = bs.half_offsets(twojmax)
    for level, coefs in enumerate(generator_tables(twojmax)):
        part = slice(int(hoff[level]), int(hoff[level + 1]))
        u = np.concatenate([ur[part], ui[part]])  # (2 n_l, pairs)
        expected = np.concatenate([dur[part], dui[part]])
        # generator_rows of the identity are the real matrices R_n of T_n (J R_n with J = I)
        eye = np.eye(u.shape[0])[None]
        rows = np.asarray(generator_rows(jnp.asarray(eye), *(jnp.asarray(c) for c in coefs)))
        images = np.einsum("nhk,kp->nhp", rows[0], u)  # (4, 2 n_l, pairs): (R_n u)
        got = (np.asarray(alpha)[None] * images[1] + np.asarray(p)[None] * images[2]
               + np.asarray(q)[None] * images[3])
        scale = max(np.abs(expected).max(), 1e-300)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13 * scale)
        np.testing.assert_allclose(images[0], u, rtol=0, atol=0)
