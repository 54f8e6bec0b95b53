"""Elastic constants by autodiff against LAMMPS, published values and finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.physics.elastic import (
    bulk_modulus,
    clamped_ion_elastic_constants,
    relaxed_ion_elastic_constants,
    shear_modulus,
    stress_at_strain,
)
from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate, stress
from rexfit.physics.strain import deform, voigt_to_strain
from rexfit.potentials.pair import LennardJones
from rexfit.structures import lattices
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system, pad_system
from tests.support.lammps_ref import lammps_compute
from tests.support.structures import make_cases

GPA = EV_PER_A3_TO_GPA


@pytest.fixture(scope="module")
def mishin(eam_models):
    potential, params, style, coeff, _ = eam_models["Cu_mishin1"]
    system = lattices.fcc(3.615)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.5)
    return potential, params, style, coeff, system, nbrs


def test_cu_mishin_fcc_matches_published_values(mishin):
    potential, params, _, _, system, nbrs = mishin
    c = np.asarray(relaxed_ion_elastic_constants(potential, params, system, nbrs)) * GPA
    # Mishin et al., PRB 63, 224106 (2001), Table: C11 169.9, C12 122.6, C44 76.2, B 138.3 GPa
    assert c[0, 0] == pytest.approx(169.9, abs=0.1)
    assert c[0, 1] == pytest.approx(122.6, abs=0.1)
    assert c[3, 3] == pytest.approx(76.2, abs=0.1)
    assert float(bulk_modulus(c)) == pytest.approx(138.3, abs=0.1)
    assert float(bulk_modulus(c)) == pytest.approx((c[0, 0] + 2 * c[0, 1]) / 3, rel=1e-12)
    np.testing.assert_allclose(c, np.asarray(clamped_ion_elastic_constants(
        potential, params, system, nbrs)) * GPA, atol=1e-9)  # 1-atom cell: no relaxation


@pytest.mark.parametrize("lattice", ["fcc", "bcc"])
def test_cu_mishin_matches_lammps_finite_differences(mishin, lattice):
    potential, params, style, coeff, system, nbrs = mishin
    if lattice == "bcc":  # off-equilibrium bcc Cu: finite stress, ∂σ/∂ε not the energy Hessian
        system = lattices.bcc(2.9)
        nbrs = build_neighbor_list(system, potential.cutoff, 0.5)
    c = np.asarray(clamped_ion_elastic_constants(potential, params, system, nbrs)) * GPA
    # tables are piecewise cubic (V'' jumps at grid nodes): keep the steps inside one interval
    h = 1e-6
    fd = np.zeros((6, 6))
    for j in range(6):
        sig = []
        for sign in (1, -1):
            strained = deform(system, voigt_to_strain(sign * h * jnp.eye(6)[j]))
            ref = lammps_compute(strained.positions, strained.cell, strained.species,
                                 strained.pbc, style, coeff, 1)
            sig.append(ref.stress)
        fd[:, j] = (sig[0] - sig[1]) / (2 * h) * GPA
    np.testing.assert_allclose(c, fd, atol=1e-5)  # GPa


def test_bulk_modulus_matches_energy_volume_curvature(mishin):
    potential, params, _, _, _, _ = mishin

    @jax.jit
    def e(a):
        system = lattices.fcc(a)
        return potential.energy(params, system, build_nbrs), system.volume

    build_nbrs = build_neighbor_list(lattices.fcc(3.615), potential.cutoff, 0.5)
    a0 = 3.615
    # B = V d²E/dV² with V = a³/4 (E minimal at a0 for this potential)
    h = 1e-3
    e0, v0 = map(float, e(a0))
    ep, vp = map(float, e(a0 + h))
    em, vm = map(float, e(a0 - h))
    d2e_da2 = (ep - 2 * e0 + em) / h**2
    dv_da = 3 * a0**2 / 4
    b = v0 * d2e_da2 / dv_da**2 * GPA
    system = lattices.fcc(a0)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.5)
    c = relaxed_ion_elastic_constants(potential, params, system, nbrs)
    assert float(bulk_modulus(c)) * GPA == pytest.approx(b, abs=0.05)


def test_clamped_ion_matches_stress_differences_at_finite_stress(eam_models):
    potential, params, *_ = eam_models["CuNi"]
    case = {c.name: c for c in make_cases(ntypes=2, seed=6)}["two_atom_small"]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.5)
    assert np.abs(np.asarray(stress(potential, params, system, nbrs))).max() * GPA > 1.0
    c = np.asarray(clamped_ion_elastic_constants(potential, params, system, nbrs))
    sigma = jax.jit(lambda v: stress_at_strain(potential, params, system, nbrs, v))
    h = 1e-6  # stay inside one table interval (piecewise-cubic tables)
    fd = np.stack([(sigma(h * jnp.eye(6)[j]) - sigma(-h * jnp.eye(6)[j])) / (2 * h)
                   for j in range(6)], axis=1)
    np.testing.assert_allclose(c * GPA, fd * GPA, atol=1e-4)
    assert np.abs(c - c.T).max() * GPA > 0.1  # ∂σ/∂ε at finite stress is not symmetric


def _relaxed_stress(potential, params, system, nbrs, voigt):
    """Stress (Voigt, eV/Å³) at strain ``voigt`` with atoms relaxed to |F| < 1e-11 eV/Å.

    Newton iterations on F = 0 for atoms 1..N−1 (atom 0 fixed: no translation mode) with a
    Jacobian from central differences of the forces (nothing from rexfit's Hessian code).
    """
    strained = deform(system, voigt_to_strain(jnp.asarray(voigt)))
    x = np.asarray(strained.positions).copy()
    def residual(y):
        ev = evaluate(potential, params, strained.replace(positions=jnp.asarray(y)), nbrs)
        return np.asarray(ev.forces)[1:].ravel()

    h = 1e-6
    for _ in range(10):
        f = residual(x)
        if np.abs(f).max() < 1e-11:
            break
        jac = np.zeros((f.size, f.size))
        for k in range(f.size):
            step = np.zeros_like(x)
            step[1 + k // 3, k % 3] = h
            jac[:, k] = (residual(x + step) - residual(x - step)) / (2 * h)
        x[1:] -= np.linalg.solve(jac, f).reshape(-1, 3)
    ev = evaluate(potential, params, strained.replace(positions=jnp.asarray(x)), nbrs)
    assert np.abs(np.asarray(ev.forces)).max() < 1e-11
    return np.asarray(ev.stress)


@pytest.mark.parametrize("structure", ["hcp", "omega_alloy"])
def test_relaxed_ion_matches_relaxed_finite_differences(eam_models, structure):
    if structure == "hcp":
        potential, params, *_ = eam_models["Cu_mishin1"]
        system = lattices.hcp(2.55, 1.60)
    else:
        potential, params, *_ = eam_models["CuNi"]
        system = lattices.omega(4.3, 0.62).replace(species=jnp.array([0, 1, 1], jnp.int32))
    nbrs = build_neighbor_list(system, potential.cutoff, 0.5)
    c0 = np.asarray(clamped_ion_elastic_constants(potential, params, system, nbrs)) * GPA
    c = np.asarray(relaxed_ion_elastic_constants(potential, params, system, nbrs)) * GPA
    assert np.abs(c - c0).max() > 1.0  # internal relaxation matters here
    h = 1e-6  # tables are piecewise cubic (V'' jumps at grid nodes): stay inside one interval
    fd = np.zeros((6, 6))
    for j in range(6):
        up = _relaxed_stress(potential, params, system, nbrs, h * np.eye(6)[j])
        down = _relaxed_stress(potential, params, system, nbrs, -h * np.eye(6)[j])
        fd[:, j] = (up - down) / (2 * h) * GPA
    np.testing.assert_allclose(c, fd, atol=1e-4)  # GPa (brief: ~0.01)
    if structure == "hcp":  # hexagonal symmetry: C66 = (C11 − C12)/2 only with relaxed ions
        assert c[5, 5] == pytest.approx((c[0, 0] - c[0, 1]) / 2, abs=1e-6)
        assert float(shear_modulus(c)) > 0


def test_relaxed_elastic_constants_are_differentiable_in_parameters():
    potential = LennardJones(6.0)
    system = lattices.hcp(2.9, 1.62)
    nbrs = build_neighbor_list(system, 6.0, 0.5)

    @jax.jit
    def c44(sigma):
        params = {"sigma": sigma, "epsilon": jnp.float64(0.3)}
        return relaxed_ion_elastic_constants(potential, params, system, nbrs)[5, 5]

    g = float(jax.grad(c44)(jnp.float64(2.5)))
    h = 1e-5
    fd = (float(c44(2.5 + h)) - float(c44(2.5 - h))) / (2 * h)
    assert g == pytest.approx(fd, rel=1e-6)


def test_padding_atoms_do_not_change_elastic_constants(eam_models):
    potential, params, *_ = eam_models["Cu_mishin1"]
    system = lattices.hcp(2.55, 1.60)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.5)
    padded = pad_system(system, 5)
    padded_nbrs = build_neighbor_list(padded, potential.cutoff, 0.5, capacity=nbrs.capacity)
    c = relaxed_ion_elastic_constants(potential, params, system, nbrs)
    c_padded = relaxed_ion_elastic_constants(potential, params, padded, padded_nbrs)
    np.testing.assert_allclose(c_padded * GPA, c * GPA, atol=1e-9)


@pytest.mark.parametrize("relaxed_ions", [False, True])
@pytest.mark.parametrize("structure", ["hcp", "omega_alloy", "padded_hcp"])
def test_one_pass_evaluation_with_elastic_constants(eam_models, structure, relaxed_ions):
    """``evaluate_with_elastic_constants`` (one forward-over-reverse pass, used by the
    objective) gives ``evaluate`` and the clamped- or relaxed-ion constants to round-off, and
    its parameter derivative too."""
    from rexfit.physics.elastic import evaluate_with_elastic_constants

    if structure == "omega_alloy":
        potential, params, *_ = eam_models["CuNi"]
        system = lattices.omega(4.3, 0.62).replace(species=jnp.array([0, 1, 1], jnp.int32))
    else:
        potential, params, *_ = eam_models["Cu_mishin1"]
        system = lattices.hcp(2.55, 1.60)
        if structure == "padded_hcp":
            system = pad_system(system, 4)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.5)
    ev, c = evaluate_with_elastic_constants(potential, params, system, nbrs, relaxed_ions)
    want = evaluate(potential, params, system, nbrs)
    fn = relaxed_ion_elastic_constants if relaxed_ions else clamped_ion_elastic_constants
    for got, ref in ((ev.energy, want.energy), (ev.forces, want.forces),
                     (ev.stress, want.stress), (ev.virial, want.virial)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.asarray(c) * GPA,
                               np.asarray(fn(potential, params, system, nbrs)) * GPA,
                               rtol=0, atol=1e-10)


def test_one_pass_elastic_constants_are_differentiable_in_parameters():
    from rexfit.physics.elastic import evaluate_with_elastic_constants

    potential = LennardJones(6.0)
    system = lattices.hcp(2.9, 1.62)
    nbrs = build_neighbor_list(system, 6.0, 0.5)

    def c44(sigma, one_pass):
        params = {"sigma": sigma, "epsilon": jnp.float64(0.3)}
        if one_pass:
            return evaluate_with_elastic_constants(potential, params, system, nbrs, True)[1][5, 5]
        return relaxed_ion_elastic_constants(potential, params, system, nbrs)[5, 5]

    g = float(jax.jit(jax.grad(c44), static_argnums=1)(jnp.float64(2.5), True))
    ref = float(jax.jit(jax.grad(c44), static_argnums=1)(jnp.float64(2.5), False))
    assert g == pytest.approx(ref, rel=1e-12)
