"""SO(3) power spectrum against an independent NumPy/SciPy implementation (brute-force images,
scipy quadrature, complex scipy harmonics), rotation invariance, and derivatives (forces,
stress, Jacobians, forward-over-reverse) against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import jax
import jax.numpy as jnp
from scipy.integrate import quad
from scipy.linalg import sqrtm
from scipy.spatial.transform import Rotation
from scipy.special import sph_harm_y, spherical_in

from rexfit.descriptors.power_spectrum import (
    PowerSpectrum,
    real_spherical_harmonics,
    scaled_spherical_in,
)
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



def reference_power_spectrum(pos, cell, species, pbc, nmax, lmax, rcut, weights, alpha):
    a = np.arange(1, nmax + 1)

    def phi_raw(r, k):
        return (rcut - r) ** (k + 2)

    norms = np.array([np.sqrt(quad(lambda r: r * r * phi_raw(r, k) ** 2, 0, rcut,
                                   epsabs=0, epsrel=1e-13)[0]) for k in a])
    s = np.array([[quad(lambda r: r * r * phi_raw(r, k) * phi_raw(r, q), 0, rcut,
                        epsabs=0, epsrel=1e-13)[0] / (norms[k - 1] * norms[q - 1])
                   for q in a] for k in a])
    w = np.real(sqrtm(np.linalg.inv(s)))

    def g(r, n):
        return sum(w[n, k - 1] * phi_raw(r, k) / norms[k - 1] for k in a)

    neighbours = brute_force_neighbours(pos, cell, pbc, rcut)
    out = np.zeros((len(pos), nmax * (nmax + 1) // 2 * (lmax + 1)))
    for i, nbs in neighbours.items():
        if species[i] >= len(weights):
            continue
        c = np.zeros((nmax, lmax + 1, 2 * lmax + 1), complex)
        for j, d in nbs:
            if species[j] >= len(weights):
                continue
            rj = np.linalg.norm(d)
            theta, phi = np.arccos(d[2] / rj), np.arctan2(d[1], d[0])
            amp = 4 * np.pi * weights[species[j]] * 0.5 * (np.cos(np.pi * rj / rcut) + 1)
            for n in range(nmax):
                for l in range(lmax + 1):
                    def integrand(r):
                        x = 2 * alpha * r * rj
                        return (r * r * g(r, n) * np.exp(-alpha * (r - rj) ** 2)
                                * spherical_in(l, x) * np.exp(-x))
                    radial = quad(integrand, 0, rcut, points=[rj], epsabs=1e-15, epsrel=1e-13,
                                  limit=200)[0]
                    for m in range(-l, l + 1):
                        c[n, l, m + lmax] += amp * radial * np.conj(sph_harm_y(l, m, theta, phi))
        k = 0
        for n in range(nmax):
            for q in range(n, nmax):
                for l in range(lmax + 1):
                    p = np.sum(c[n, l] * np.conj(c[q, l]))
                    assert abs(p.imag) < 1e-9 * max(abs(p), 1.0)
                    out[i, k] = np.pi * np.sqrt(8.0 / (2 * l + 1)) * p.real
                    k += 1
    return out


# --------------------------------------------------------------------------- helpers

def ours(desc, pos, cell, species, pbc, natoms=None):
    system = make_system(pos, cell, species, pbc=pbc)
    if natoms is not None:
        system = pad_system(system, natoms)
    nbrs = build_neighbor_list(system, desc.cutoff, 0.2, half=False)
    return np.asarray(jax.jit(lambda s, n: desc.features(s, n))(system, nbrs)), system, nbrs


def assert_close(a, b, tol=TOL):
    scale = max(np.abs(b).max(), 1e-300)
    assert np.abs(a - b).max() <= tol * scale, (np.abs(a - b).max(), scale)


SMALL = dict(nmax=3, lmax=3, rcut=4.0)


# --------------------------------------------------------------------------- building blocks

def test_special_functions_match_scipy():
    x = np.concatenate([np.linspace(0.0, 0.5, 11), np.linspace(0.5, 120.0, 400)])
    ours_in = np.asarray(scaled_spherical_in(jnp.asarray(x), 8))
    ref = np.stack([spherical_in(l, x) * np.exp(-x) for l in range(9)], axis=-1)
    np.testing.assert_allclose(ours_in, ref, rtol=1e-12, atol=1e-300)
    rng = np.random.default_rng(0)
    u = rng.normal(size=(20, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    y = np.asarray(real_spherical_harmonics(jnp.asarray(u), 5))
    theta, phi = np.arccos(u[:, 2]), np.arctan2(u[:, 1], u[:, 0])
    for l in range(6):  # Σ_m Y_lm(a) Y_lm(b) is the same for real and complex harmonics
        block = y[:, l * l:(l + 1) ** 2]
        cplx = np.stack([sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)], axis=1)
        np.testing.assert_allclose(block @ block.T, np.real(cplx @ cplx.conj().T), atol=1e-13)


# --------------------------------------------------------------------------- against the reference

@pytest.mark.parametrize("kinds,weights", [(1, (1.0,)), (2, (1.0, 2.5))])
def test_periodic_cells_match_reference(kinds, weights):
    pos, cell, species, pbc = periodic_cell(1 + kinds, kinds)
    desc = PowerSpectrum(**SMALL, weights=weights)
    got, _, _ = ours(desc, pos, cell, species, pbc, natoms=6)
    ref = reference_power_spectrum(pos, cell, species, pbc, **SMALL, weights=weights,
                                   alpha=2.0)
    assert got.shape == (6, desc.n_features) == (6, 24)
    assert_close(got[:4], ref)
    assert not np.any(got[4:])  # padding atoms


def test_cluster_with_unweighted_species_matches_reference():
    pos, cell, species, pbc = cluster(3, species_kinds=3)
    desc = PowerSpectrum(nmax=2, lmax=4, rcut=3.5, weights=(1.0, -0.5), alpha=1.3)
    got, _, _ = ours(desc, pos, cell, species, pbc)
    ref = reference_power_spectrum(pos, cell, species, pbc, 2, 4, 3.5, (1.0, -0.5), 1.3)
    assert_close(got, ref)
    assert not np.any(got[species >= 2]) and np.any(got[species < 2])


def test_rotation_invariance():
    pos, cell, species, pbc = periodic_cell(7, 2)
    desc = PowerSpectrum(**SMALL, weights=(1.0, 2.0))
    rot = Rotation.random(random_state=3).as_matrix()
    a, _, _ = ours(desc, pos, cell, species, pbc)
    b, _, _ = ours(desc, pos @ rot.T, cell @ rot.T, species, pbc)
    assert_close(b, a)


# --------------------------------------------------------------------------- derivatives

def test_forces_stress_and_jacobian_match_finite_differences():
    pos, cell, species, pbc = periodic_cell(8, 2)
    desc = PowerSpectrum(nmax=2, lmax=2, rcut=3.8, weights=(1.0, 1.7))
    system = make_system(pos, cell, species, pbc=pbc)
    nbrs = build_neighbor_list(system, desc.cutoff, 0.3, half=False)
    check_derivatives(desc, system, nbrs, jacobian=True)


def test_settings_and_hashing():
    desc = PowerSpectrum(3, 2, 4, (1, 2))
    assert desc == PowerSpectrum(3, 2, 4.0, (1.0, 2.0)) and hash(desc) == hash(
        PowerSpectrum(3, 2, 4.0, (1.0, 2.0)))
    assert desc.n_features == 18 and desc.cutoff == 4.0
    assert desc.feature_labels()[:4] == [(1, 1, 0), (1, 1, 1), (1, 1, 2), (1, 2, 0)]
    with pytest.raises(ValueError, match="nmax"):
        PowerSpectrum(0, 2, 4.0)
    pos, cell, species, pbc = periodic_cell(9)
    system = make_system(pos, cell, species, pbc=pbc)
    with pytest.raises(ValueError, match="full"):
        desc.features(system, build_neighbor_list(system, 4.0, 0.2, half=True))
