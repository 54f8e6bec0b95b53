"""ACSF and wACSF against an independent NumPy implementation (brute-force periodic images,
explicit loops over neighbour pairs j < k), rotation invariance, triplet layouts, and
derivatives (forces, stress, forward-over-reverse) against finite differences."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from rexfit.descriptors.acsf import ACSF, WACSF, legendre_coefficients
from rexfit.potentials.lists import build_lists
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system, pad_system
from rexfit.structures.triplets import build_triplets, with_triplets

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
    species = np.array([0, 1, 0, 2, 1, 0])[:6] % species_kinds
    return pos, np.zeros((3, 3)), species, (False, False, False)


# --------------------------------------------------------------------------- reference



def ref_cutoff(r, rc, kind):
    if r >= rc:
        return 0.0
    if kind == "cosine":
        return 0.5 * (np.cos(np.pi * r / rc) + 1.0)
    x = r / rc
    return 1.0 - 10.0 * x ** 3 + 15.0 * x ** 4 - 6.0 * x ** 5


def reference_acsf(pos, cell, species, pbc, rcut, g2, g4, g5, kind, weights=None,
                   n_elements=1):
    """Behler's G2/G4/G5 by explicit loops; weights=None → ACSF element channels (feature
    order: kind, channel, setting), else wACSF with those species weights."""
    g4 = [tuple(e) + (0.0,) * (4 - len(e)) for e in g4]
    g5 = [tuple(e) + (0.0,) * (4 - len(e)) for e in g5]
    n_species = n_elements if weights is None else len(weights)
    if weights is None:
        singles = [(a,) for a in range(n_elements)]
        pairs = [(a, b) for a in range(n_elements) for b in range(a, n_elements)]
    else:
        singles, pairs = [()], [()]
    neighbours = brute_force_neighbours(pos, cell, pbc, rcut)
    rows = []
    for i in range(len(pos)):
        if species[i] >= n_species:
            rows.append(np.zeros(len(singles) * len(g2) + len(pairs) * (len(g4) + len(g5))))
            continue
        nbs = [(j, d) for j, d in neighbours[i] if species[j] < n_species]

        def c1(j, chan):
            return weights[species[j]] if weights is not None else float(species[j] == chan[0])

        def c2(j, k, chan):
            if weights is not None:
                return weights[species[j]] * weights[species[k]]
            return float(sorted((species[j], species[k])) == list(chan))

        row = []
        for chan in singles:
            for eta, rs in g2:
                row.append(sum(c1(j, chan) * np.exp(-eta * (np.linalg.norm(d) - rs) ** 2)
                               * ref_cutoff(np.linalg.norm(d), rcut, kind) for j, d in nbs))
        for entries, with_jk in ((g4, True), (g5, False)):
            for chan in pairs:
                for eta, zeta, lam, rs in entries:
                    total = 0.0
                    for p in range(len(nbs)):
                        for q in range(p + 1, len(nbs)):
                            (j, dj), (k, dk) = nbs[p], nbs[q]
                            rij, rik = np.linalg.norm(dj), np.linalg.norm(dk)
                            rjk = np.linalg.norm(dk - dj)
                            cos = dj @ dk / (rij * rik)
                            term = (c2(j, k, chan) * max(1.0 + lam * cos, 0.0) ** zeta
                                    * np.exp(-eta * ((rij - rs) ** 2 + (rik - rs) ** 2))
                                    * ref_cutoff(rij, rcut, kind) * ref_cutoff(rik, rcut, kind))
                            if with_jk:
                                term *= (np.exp(-eta * (rjk - rs) ** 2)
                                         * ref_cutoff(rjk, rcut, kind))
                            total += term
                    row.append(2.0 ** (1.0 - zeta) * total)
        rows.append(np.array(row))
    return np.array(rows)


features = jax.jit(lambda desc, s, n: desc.features(s, n), static_argnums=0)


def ours(desc, pos, cell, species, pbc, natoms=None):
    system = make_system(pos, cell, species, pbc=pbc)
    if natoms is not None:
        system = pad_system(system, natoms)
    nbrs = desc.neighbor_list(system, 0.2)
    return np.asarray(features(desc, system, nbrs)), system, nbrs


def assert_close(a, b, tol=TOL):
    scale = max(np.abs(b).max(), 1e-300)
    assert np.abs(a - b).max() <= tol * scale, (np.abs(a - b).max(), scale)


G2 = ((0.4, 0.0), (1.2, 2.5), (3.0, 3.3))
G4 = ((0.05, 1, 1), (0.2, 2, -1), (0.1, 1.5, 1, 0.5))
G5 = ((0.05, 1, -1), (0.3, 4, 1), (0.1, 2, 0.5, 1.0))
SETTINGS = dict(g2=G2, g4=G4, g5=G5)


# --------------------------------------------------------------------------- values

@pytest.mark.parametrize("kinds,kind", [(1, "cosine"), (2, "polynomial"), (2, "cosine")])
def test_acsf_periodic_cells_match_reference(kinds, kind):
    pos, cell, species, pbc = periodic_cell(1 + kinds, kinds)
    desc = ACSF(4.2, **SETTINGS, cutoff_function=kind, n_elements=kinds)
    got, _, _ = ours(desc, pos, cell, species, pbc, natoms=6)
    ref = reference_acsf(pos, cell, species, pbc, 4.2, G2, G4, G5, kind, n_elements=kinds)
    pairs = kinds * (kinds + 1) // 2
    assert got.shape == (6, desc.n_features) == (6, kinds * 3 + pairs * 6)
    assert_close(got[:4], ref)
    assert not np.any(got[4:])  # padding atoms
    assert np.all(np.abs(ref).max(axis=0) > 0)  # every column is exercised


def test_high_zeta_g5_matches_reference():
    """G5 through the Legendre expansion of (1 ± cos θ)^ζ up to l = ζ = 16."""
    pos, cell, species, pbc = periodic_cell(12, 2)
    g5 = ((0.02, 16, -1, 1.0), (0.05, 16, 1), (0.1, 7, -1))
    got, _, _ = ours(ACSF(4.2, g5=g5, n_elements=2), pos, cell, species, pbc)
    ref = reference_acsf(pos, cell, species, pbc, 4.2, (), (), g5, "cosine", n_elements=2)
    assert_close(got, ref)


def test_wacsf_periodic_cell_matches_reference():
    pos, cell, species, pbc = periodic_cell(5, 2)
    desc = WACSF(4.2, **SETTINGS, weights=(1.0, 2.5))
    got, _, _ = ours(desc, pos, cell, species, pbc)
    ref = reference_acsf(pos, cell, species, pbc, 4.2, G2, G4, G5, "cosine",
                         weights=(1.0, 2.5))
    assert got.shape == (4, 9)
    assert_close(got, ref)


def test_cluster_with_invisible_species_matches_reference():
    pos, cell, species, pbc = cluster(3, species_kinds=3)
    for desc, kwargs in [(ACSF(3.6, **SETTINGS, n_elements=2), dict(n_elements=2)),
                         (WACSF(3.6, **SETTINGS, weights=(6.0, 8.0)),
                          dict(weights=(6.0, 8.0)))]:
        got, _, _ = ours(desc, pos, cell, species, pbc)
        ref = reference_acsf(pos, cell, species, pbc, 3.6, G2, G4, G5, "cosine", **kwargs)
        assert_close(got, ref)
        assert not np.any(got[species >= 2]) and np.any(got[species < 2])


def test_wacsf_is_the_weighted_sum_of_acsf_channels():
    pos, cell, species, pbc = periodic_cell(6, 2)
    w = (1.3, -0.7)
    acsf, _, _ = ours(ACSF(4.0, **SETTINGS, n_elements=2), pos, cell, species, pbc)
    wacsf, _, _ = ours(WACSF(4.0, **SETTINGS, weights=w), pos, cell, species, pbc)
    g2 = acsf[:, :6].reshape(4, 2, 3)
    pair_w = np.array([w[0] * w[0], w[0] * w[1], w[1] * w[1]])
    g4 = acsf[:, 6:15].reshape(4, 3, 3)  # (N, pair, setting)
    g5 = acsf[:, 15:].reshape(4, 3, 3)
    expected = np.concatenate([np.einsum("iat,a->it", g2, np.array(w)),
                               np.einsum("ipt,p->it", g4, pair_w),
                               np.einsum("ipt,p->it", g5, pair_w)], 1)
    assert_close(wacsf, expected)


def test_rotation_invariance_and_triplet_layouts():
    pos, cell, species, pbc = periodic_cell(7, 2)
    desc = ACSF(4.0, **SETTINGS, n_elements=2)
    rot = Rotation.random(random_state=3).as_matrix()
    a, system, nbrs = ours(desc, pos, cell, species, pbc)
    b, _, _ = ours(desc, pos @ rot.T, cell @ rot.T, species, pbc)
    assert_close(b, a)
    # ordered triplets (both orders of every pair of legs) and the lists of build_lists
    plain = build_neighbor_list(system, desc.cutoff, 0.2, half=False)
    first, second, ordered = desc.triplet_cutoffs()
    assert not ordered and first.shape == (2, 2) and np.all(first == 4.0)
    both = with_triplets(plain, build_triplets(system, plain, first, second, ordered=True))
    assert_close(np.asarray(features(desc, system, both)), a)
    assert_close(np.asarray(features(desc, system, build_lists(desc, system, 0.2))), a)


# --------------------------------------------------------------------------- derivatives

@pytest.mark.parametrize("cls", [ACSF, WACSF])
def test_forces_stress_and_forward_over_reverse_match_finite_differences(cls):
    pos, cell, species, pbc = periodic_cell(8, 2)
    extra = dict(n_elements=2) if cls is ACSF else dict(weights=(1.0, 1.7))
    desc = cls(3.9, g2=G2[:2], g4=G4, g5=G5, **extra)
    system = make_system(pos, cell, species, pbc=pbc)
    nbrs = desc.neighbor_list(system, 0.3)
    check_derivatives(desc, system, nbrs)


# --------------------------------------------------------------------------- settings

def test_settings_labels_and_errors():
    desc = ACSF(4, g2=[(1, 0)], g4=[(0.1, 1, -1)], n_elements=2)
    same = ACSF(4.0, g2=((1.0, 0.0),), g4=((0.1, 1.0, -1.0, 0.0),), n_elements=2)
    assert desc == same and hash(desc) == hash(same)
    assert desc.cutoff == 4.0 and desc.n_features == 2 + 3
    assert desc.feature_labels() == [("G2", (0,), (1.0, 0.0)), ("G2", (1,), (1.0, 0.0)),
                                     ("G4", (0, 0), (0.1, 1.0, -1.0, 0.0)),
                                     ("G4", (0, 1), (0.1, 1.0, -1.0, 0.0)),
                                     ("G4", (1, 1), (0.1, 1.0, -1.0, 0.0))]
    wdesc = WACSF(4.0, g2=[(1, 0)], g5=[(0.1, 2, 1)], weights=(1, 6))
    assert wdesc.n_features == 2 and wdesc.triplet_cutoffs() is None
    assert wdesc.feature_labels() == [("G2", (), (1.0, 0.0)), ("G5", (), (0.1, 2.0, 1.0, 0.0))]
    c = np.linspace(-1, 1, 7)
    np.testing.assert_allclose(np.polynomial.legendre.legval(c, legendre_coefficients(5, -0.5, 7)),
                               (1 - 0.5 * c) ** 5, rtol=1e-13)
    with pytest.raises(ValueError, match="integer"):
        ACSF(4.0, g5=[(0.1, 1.5, 1)])
    with pytest.raises(ValueError, match="at least one"):
        ACSF(4.0)
    with pytest.raises(ValueError, match="cutoff_function"):
        ACSF(4.0, g2=[(1, 0)], cutoff_function="tanh")
    pos, cell, species, pbc = periodic_cell(9)
    system = make_system(pos, cell, species, pbc=pbc)
    with pytest.raises(ValueError, match="full"):
        desc.features(system, build_neighbor_list(system, 4.0, 0.2, half=True))
    with pytest.raises(TypeError, match="triplets"):
        desc.features(system, build_neighbor_list(system, 4.0, 0.2, half=False))
