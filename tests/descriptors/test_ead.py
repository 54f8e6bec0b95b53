"""EAD descriptor against an independent NumPy implementation (brute-force images, explicit
loops over (lx, ly, lz)), rotation invariance, and derivatives (forces, stress, Jacobians,
forward-over-reverse) against finite differences."""

from __future__ import annotations

from math import factorial

import jax
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from rexfit.descriptors.ead import EAD, cartesian_powers
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system, pad_system

from tests.support.descriptor_checks import (
    brute_force_neighbours,
    check_derivatives,
    periodic_cell,
)

TOL = 1e-10


# --------------------------------------------------------------------------- structures



def cluster(seed, species_kinds=2):
    rng = np.random.default_rng(seed)
    pos = np.array([[0, 0, 0], [2.2, 0.1, 0], [0.2, 2.3, 0.1], [0.1, -0.2, 2.4],
                    [2.1, 2.0, 0.3], [-1.9, 0.4, 1.2]]) + rng.normal(0.0, 0.1, (6, 3))
    species = rng.integers(0, species_kinds, 6)
    return pos, np.zeros((3, 3)), species, (False, False, False)


# --------------------------------------------------------------------------- reference



def reference_ead(pos, cell, species, pbc, lmax, eta, rs, rcut, weights):
    """Zhang et al.'s ρ^L_{η,Rs} by explicit loops (feature order L, η, Rs)."""
    neighbours = brute_force_neighbours(pos, cell, pbc, rcut)
    out = np.zeros((len(pos), (lmax + 1) * len(eta) * len(rs)))
    for i, nbs in neighbours.items():
        if species[i] >= len(weights):
            continue
        k = 0
        for big_l in range(lmax + 1):
            for e in eta:
                for r0 in rs:
                    total = 0.0
                    for lx in range(big_l + 1):
                        for ly in range(big_l + 1 - lx):
                            lz = big_l - lx - ly
                            s = 0.0
                            for j, d in nbs:
                                if species[j] >= len(weights):
                                    continue
                                r = np.linalg.norm(d)
                                fc = 0.5 * (np.cos(np.pi * r / rcut) + 1.0)
                                s += (weights[species[j]] * fc * d[0] ** lx * d[1] ** ly
                                      * d[2] ** lz * np.exp(-e * (r - r0) ** 2))
                            total += factorial(big_l) / (factorial(lx) * factorial(ly)
                                                         * factorial(lz)) * s * s
                    out[i, k] = total
                    k += 1
    return out


def ours(desc, pos, cell, species, pbc, natoms=None):
    system = make_system(pos, cell, species, pbc=pbc)
    if natoms is not None:
        system = pad_system(system, natoms)
    nbrs = build_neighbor_list(system, desc.cutoff, 0.2, half=False)
    return np.asarray(jax.jit(lambda s, n: desc.features(s, n))(system, nbrs)), system, nbrs


def assert_close(a, b, tol=TOL):
    scale = max(np.abs(b).max(), 1e-300)
    assert np.abs(a - b).max() <= tol * scale, (np.abs(a - b).max(), scale)


SETTINGS = dict(lmax=3, eta=(0.3, 1.1, 4.0), rs=(0.0, 1.5, 2.6), rcut=4.0)


@pytest.mark.parametrize("kinds,weights", [(1, (1.0,)), (2, (1.0, 2.5))])
def test_periodic_cells_match_reference(kinds, weights):
    pos, cell, species, pbc = periodic_cell(1 + kinds, kinds)
    desc = EAD(**SETTINGS, weights=weights)
    got, _, _ = ours(desc, pos, cell, species, pbc, natoms=6)
    ref = reference_ead(pos, cell, species, pbc, **SETTINGS, weights=weights)
    assert got.shape == (6, desc.n_features) == (6, 36)
    assert_close(got[:4], ref)
    assert not np.any(got[4:])  # padding atoms


def test_cluster_with_unweighted_species_matches_reference():
    pos, cell, species, pbc = cluster(3, species_kinds=3)
    desc = EAD(2, (0.7, 2.0), (0.0, 2.2), 3.5, (1.0, -0.5))
    got, _, _ = ours(desc, pos, cell, species, pbc)
    ref = reference_ead(pos, cell, species, pbc, 2, (0.7, 2.0), (0.0, 2.2), 3.5, (1.0, -0.5))
    assert_close(got, ref)
    assert not np.any(got[species >= 2]) and np.any(got[species < 2])


def test_rotation_invariance():
    pos, cell, species, pbc = periodic_cell(7, 2)
    desc = EAD(**SETTINGS, weights=(1.0, 2.0))
    rot = Rotation.random(random_state=3).as_matrix()
    a, _, _ = ours(desc, pos, cell, species, pbc)
    b, _, _ = ours(desc, pos @ rot.T, cell @ rot.T, species, pbc)
    assert_close(b, a)


# --------------------------------------------------------------------------- derivatives

def test_forces_stress_and_jacobian_match_finite_differences():
    pos, cell, species, pbc = periodic_cell(8, 2)
    desc = EAD(2, (0.5, 1.3), (0.0, 2.4), 3.8, (1.0, 1.7))
    system = make_system(pos, cell, species, pbc=pbc)
    nbrs = build_neighbor_list(system, desc.cutoff, 0.3, half=False)
    check_derivatives(desc, system, nbrs, jacobian=True)


def test_settings_and_hashing():
    desc = EAD(2, (1, 2), (0, 1.5, 3), 4, (1, 2))
    assert desc == EAD(2, (1.0, 2.0), (0.0, 1.5, 3.0), 4.0, (1.0, 2.0))
    assert hash(desc) == hash(EAD(2, (1.0, 2.0), (0.0, 1.5, 3.0), 4.0, (1.0, 2.0)))
    assert desc.n_features == 18 and desc.cutoff == 4.0
    assert desc.feature_labels()[:4] == [(0, 1.0, 0.0), (0, 1.0, 1.5), (0, 1.0, 3.0),
                                         (0, 2.0, 0.0)]
    assert len(cartesian_powers(3)) == 20
    with pytest.raises(ValueError, match="lmax"):
        EAD(-1, (1.0,), (0.0,), 4.0)
    pos, cell, species, pbc = periodic_cell(9)
    system = make_system(pos, cell, species, pbc=pbc)
    with pytest.raises(ValueError, match="full"):
        desc.features(system, build_neighbor_list(system, 4.0, 0.2, half=True))
