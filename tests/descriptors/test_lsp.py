"""LSP descriptor against an independent NumPy implementation (brute-force periodic images,
explicit double loop over neighbours j, k with j = k included, Legendre polynomials from
SciPy), rotation invariance, and derivatives (forces, stress, forward-over-reverse) against
finite differences."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from scipy.special import eval_legendre

from rexfit.descriptors.lsp import LSP
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system, pad_system

from tests.support.descriptor_checks import (
    brute_force_neighbours,
    check_derivatives,
    periodic_cell,
)

TOL = 1e-10


# --------------------------------------------------------------------------- structures



def cluster(seed):
    rng = np.random.default_rng(seed)
    pos = np.array([[0, 0, 0], [2.2, 0.1, 0], [0.2, 2.3, 0.1], [0.1, -0.2, 2.4],
                    [2.1, 2.0, 0.3], [-1.9, 0.4, 1.2]]) + rng.normal(0.0, 0.1, (6, 3))
    return pos, np.zeros((3, 3)), np.array([0, 1, 0, 2, 1, 0]), (False, False, False)


# --------------------------------------------------------------------------- reference



def reference_lsp(pos, cell, species, pbc, rn, sigma, rcut, d, ls, weights):
    """g^{(l,n)} by an explicit double loop over neighbours (j = k included)."""
    neighbours = brute_force_neighbours(pos, cell, pbc, rcut)
    out = np.zeros((len(pos), len(ls) * len(rn)))
    for i, nbs in neighbours.items():
        if species[i] >= len(weights):
            continue
        nbs = [(j, v) for j, v in nbs if species[j] < len(weights)]
        r = np.array([np.linalg.norm(v) for _, v in nbs])
        unit = np.array([v for _, v in nbs]) / r[:, None]
        w = np.array([weights[species[j]] for j, _ in nbs])
        fc = (r - rcut) ** 4 / (d ** 4 + (r - rcut) ** 4)
        for a, l in enumerate(ls):
            for b, r0 in enumerate(rn):
                f = w * np.exp(-((r - r0) / sigma) ** 2) * fc / r0
                total = 0.0
                for p in range(len(nbs)):
                    for q in range(len(nbs)):
                        total += eval_legendre(l, unit[p] @ unit[q]) * f[p] * f[q]
                out[i, a * len(rn) + b] = np.arcsinh(total)
    return out


features = jax.jit(lambda desc, s, n: desc.features(s, n), static_argnums=0)


def ours(desc, pos, cell, species, pbc, natoms=None):
    system = make_system(pos, cell, species, pbc=pbc)
    if natoms is not None:
        system = pad_system(system, natoms)
    nbrs = build_neighbor_list(system, desc.cutoff, 0.2, half=False)
    return np.asarray(features(desc, system, nbrs)), system, nbrs


def assert_close(a, b, tol=TOL):
    scale = max(np.abs(b).max(), 1e-300)
    assert np.abs(a - b).max() <= tol * scale, (np.abs(a - b).max(), scale)


SETTINGS = dict(rn=(1.6, 2.3, 3.0, 3.7), sigma=0.6, rcut=4.5, d=1.5, ls=(0, 1, 2, 4, 6))


# --------------------------------------------------------------------------- values

@pytest.mark.parametrize("kinds,weights", [(1, (1.0,)), (2, (1.0, 2.5))])
def test_periodic_cells_match_reference(kinds, weights):
    pos, cell, species, pbc = periodic_cell(1 + kinds, kinds)
    desc = LSP(**SETTINGS, weights=weights)
    got, _, _ = ours(desc, pos, cell, species, pbc, natoms=6)
    ref = reference_lsp(pos, cell, species, pbc, **SETTINGS, weights=weights)
    assert got.shape == (6, desc.n_features) == (6, 20)
    assert_close(got[:4], ref)
    assert not np.any(got[4:])  # padding atoms
    assert np.all(np.abs(ref).min(axis=0) > 1e-6)  # every column is exercised


def test_cluster_with_invisible_species_matches_reference():
    pos, cell, species, pbc = cluster(3)
    settings = dict(rn=(2.0, 2.8), sigma=0.9, rcut=3.8, d=0.8, ls=(3, 0, 5))
    desc = LSP(**settings, weights=(1.0, -0.5))
    got, _, _ = ours(desc, pos, cell, species, pbc)
    ref = reference_lsp(pos, cell, species, pbc, **settings, weights=(1.0, -0.5))
    assert_close(got, ref)
    assert not np.any(got[species >= 2]) and np.any(got[species < 2])


def test_rotation_invariance():
    pos, cell, species, pbc = periodic_cell(7, 2)
    desc = LSP(**SETTINGS, weights=(1.0, 2.0))
    rot = Rotation.random(random_state=3).as_matrix()
    a, _, _ = ours(desc, pos, cell, species, pbc)
    b, _, _ = ours(desc, pos @ rot.T, cell @ rot.T, species, pbc)
    assert_close(b, a)


# --------------------------------------------------------------------------- derivatives

def test_forces_stress_and_forward_over_reverse_match_finite_differences():
    pos, cell, species, pbc = periodic_cell(8, 2)
    desc = LSP(**SETTINGS, weights=(1.0, 1.7))
    system = make_system(pos, cell, species, pbc=pbc)
    nbrs = build_neighbor_list(system, desc.cutoff, 0.3, half=False)
    check_derivatives(desc, system, nbrs)


# --------------------------------------------------------------------------- settings

def test_settings_and_hashing():
    desc = LSP((2, 3), 1, 4, 1.5, (0, 2))
    same = LSP((2.0, 3.0), 1.0, 4.0, 1.5, (0, 2), (1.0,))
    assert desc == same and hash(desc) == hash(same)
    assert desc.n_features == 4 and desc.cutoff == 4.0
    assert desc.feature_labels() == [(0, 2.0), (0, 3.0), (2, 2.0), (2, 3.0)]
    with pytest.raises(ValueError, match="distinct"):
        LSP((2.0,), 1.0, 4.0, 1.0, (0, 0))
    with pytest.raises(ValueError, match="rn"):
        LSP((0.0,), 1.0, 4.0, 1.0)
    pos, cell, species, pbc = periodic_cell(9)
    system = make_system(pos, cell, species, pbc=pbc)
    with pytest.raises(ValueError, match="full"):
        desc.features(system, build_neighbor_list(system, 4.0, 0.2, half=True))
