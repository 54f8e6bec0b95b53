"""SNAP against LAMMPS ``pair_style snap`` (shipped files), the .snapcoeff/.snapparam writer read
back by LAMMPS, and parameter/position derivatives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate
from rexfit.potentials.lists import build_lists
from rexfit.potentials.snap import SNAP, DescriptorModel
from rexfit.potentials import linear_models
from rexfit.potentials.snap_files import read_snapcoeff, read_snapparam, snapparam_text
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system, pad_system
from tests.support.fd import check_forces_and_stress
from tests.support.lammps_ref import lammps_compute, potentials_dir
from tests.support.structures import crystal

E_TOL = 1e-9  # eV/atom
F_TOL = 1e-8  # eV/Å
S_TOL = 1e-6  # GPa


def compare_with_lammps(potential, params, structure, coeff_line):
    pos, cell, species = structure
    system = make_system(pos, cell, species)
    nbrs = build_lists(potential, system, 0.3)
    ours = evaluate(potential, params, system, nbrs)
    ref = lammps_compute(pos, cell, species, (True,) * 3, "snap", [coeff_line],
                         len(potential.elements))
    n = len(pos)
    return (abs(float(ours.energy) - ref.energy) / n,
            float(np.abs(np.asarray(ours.forces) - ref.forces).max()),
            float(np.abs(np.asarray(ours.stress) - ref.stress).max() * EV_PER_A3_TO_GPA),
            float(ours.energy), ref.energy)


def shipped(stem, elements):
    d = potentials_dir()
    coeff, param = d / f"{stem}.snapcoeff", d / f"{stem}.snapparam"
    potential, params = SNAP.from_files(coeff, param, elements)
    return potential, params, f"* * {coeff} {param} {' '.join(elements)}"


CASES = {
    "Mo_Zuo_JPCA2020": (["Mo"], ("Mo", 3.16), None),
    "Ni_Zuo_JPCA2020.quadratic": (["Ni"], ("Ni", 3.52), None),  # quadraticflag 1
    "WBe_Wood_PRB2019": (["W", "Be"], ("W", 3.165), 2),  # two elements, bzeroflag 1, 2J = 8
    "Ta06A": (["Ta"], ("Ta", 3.30), None),
}


@pytest.mark.parametrize("stem", list(CASES))
def test_shipped_snap_matches_lammps(stem):
    elements, (name, a), alloy = CASES[stem]
    potential, params, line = shipped(stem, elements)
    pos, cell, species = crystal(name, a, 2, seed=3, strain=0.03, rattle=0.12)
    if alloy:
        species = np.random.default_rng(4).integers(0, alloy, len(pos))
    de, df, ds, _, _ = compare_with_lammps(potential, params, (pos, cell, species), line)
    assert de < E_TOL and df < F_TOL and ds < S_TOL, (de, df, ds)


def test_quadratic_coefficients_in_lammps_order():
    """Ni quadratic: 1 + 30 + 465 coefficients; γ is the tail, and the model says so."""
    potential, params, _ = shipped("Ni_Zuo_JPCA2020.quadratic", ["Ni"])
    assert potential.quadratic and potential.n_linear == 30
    assert params["Ni"]["gamma"].shape == (465,)
    raw = read_snapcoeff(potentials_dir() / "Ni_Zuo_JPCA2020.quadratic.snapcoeff")["Ni"]
    assert float(params["Ni"]["gamma"][0]) == raw.coefficients[31]


def test_written_files_are_read_by_lammps(tmp_path):
    """Perturbed two-element quadratic coefficients → files → LAMMPS: same energy."""
    potential, params, _ = shipped("WBe_Wood_PRB2019", ["W", "Be"])
    rng = np.random.default_rng(5)
    k = potential.n_linear
    quadratic = SNAP(potential.descriptor, potential.elements, quadratic=True)
    new = {e: {"beta0": params[e]["beta0"] + rng.normal() * 1e-3,
               "beta": params[e]["beta"] * (1 + 0.1 * rng.normal(size=k)) / 3.0,
               "gamma": jnp.asarray(rng.normal(size=k * (k + 1) // 2) * 1e-5)}
           for e in potential.elements}
    coeff, param = tmp_path / "WBe.snapcoeff", tmp_path / "WBe.snapparam"
    coeff.write_text(linear_models.coefficient_text(quadratic, new, "test"))
    param.write_text(snapparam_text(quadratic.settings(), ["test"]))
    again, params2 = SNAP.from_files(coeff, param, ["W", "Be"])
    assert again == quadratic
    for e in new:
        for name in new[e]:
            assert np.array_equal(np.asarray(params2[e][name]), np.asarray(new[e][name]))
    assert read_snapparam(param)["bzeroflag"] == 1
    pos, cell, _ = crystal("W", 3.165, 2, seed=6, strain=0.03, rattle=0.1)
    species = rng.integers(0, 2, len(pos))
    de, df, ds, e_ours, e_ref = compare_with_lammps(quadratic, new, (pos, cell, species),
                                                    f"* * {coeff} {param} W Be")
    assert abs(e_ours - e_ref) <= 1e-12 * abs(e_ref), (e_ours, e_ref)
    assert df < F_TOL and ds < S_TOL


def test_snap_include_file():
    potential, params = SNAP.from_include(potentials_dir() / "Mo_Zuo_JPCA2020.snap")
    direct, params2, _ = shipped("Mo_Zuo_JPCA2020", ["Mo"])
    assert potential == direct and potential.elements == ("Mo",)
    assert np.array_equal(np.asarray(params["Mo"]["beta"]), np.asarray(params2["Mo"]["beta"]))
    # a hybrid/overlay include file: the SNAP term is found
    potential, _ = SNAP.from_include(potentials_dir() / "WBe_Wood_PRB2019.snap")
    assert potential.elements == ("W", "Be")


def test_unsupported_files_raise():
    d = potentials_dir()
    with pytest.raises(NotImplementedError, match="chemflag"):
        SNAP.from_files(d / "InP_JCPA2020.snapcoeff", d / "InP_JCPA2020.snapparam")
    with pytest.raises(ValueError, match="missing"):
        SNAP.from_files(d / "Mo_Zuo_JPCA2020.snapcoeff", d / "Mo_Zuo_JPCA2020.snapparam",
                        ["Mo", "W"])


def _two_element_model():
    potential, params, _ = shipped("WBe_Wood_PRB2019", ["W", "Be"])
    descriptor = type(potential.descriptor)(4, potential.descriptor.rcutfac,
                                            potential.descriptor.radii,
                                            potential.descriptor.weights)
    model = DescriptorModel(descriptor, ("W", "Be"))
    rng = np.random.default_rng(7)
    k = descriptor.n_features
    params = {e: {"beta0": jnp.float64(rng.normal()), "beta": jnp.asarray(rng.normal(size=k))}
              for e in model.elements}
    pos, cell, _ = crystal("W", 3.165, 1, seed=8, strain=0.03, rattle=0.1)
    pos = np.vstack([pos, pos + 0.5 * cell.sum(axis=0) / 2])  # 4 atoms
    species = np.array([0, 1, 1, 0])
    system = make_system(pos, cell, species)
    return model, params, system, build_neighbor_list(system, model.cutoff, 0.3, half=False)


def test_parameter_gradient_is_bispectrum_sum_and_forces_and_stress_match_fd():
    model, params, system, nbrs = _two_element_model()
    b = np.asarray(model.descriptor.features(system, nbrs))
    species = np.asarray(system.species)
    grad = jax.jit(jax.grad(model.energy))(params, system, nbrs)
    for s, e in enumerate(model.elements):
        np.testing.assert_allclose(grad[e]["beta"], b[species == s].sum(axis=0), rtol=1e-13,
                                   atol=1e-12)
        assert float(grad[e]["beta0"]) == float(np.sum(species == s))
    check_forces_and_stress(model, params, system, nbrs)


def test_force_jacobian_wrt_beta_by_forward_over_reverse():
    """jacfwd(forces)(β) = −∂(Σ_{i∈e} B_i)/∂x, the per-element descriptor gradients."""
    model, params, system, nbrs = _two_element_model()

    def forces(beta_w):
        p = {"W": {**params["W"], "beta": beta_w}, "Be": params["Be"]}
        return evaluate(model, p, system, nbrs).forces

    jac = np.asarray(jax.jit(jax.jacfwd(forces))(params["W"]["beta"]))  # (N, 3, K)
    w_atoms = jnp.asarray(np.asarray(system.species) == 0)

    def summed(x):
        b = model.descriptor.features(system.replace(positions=x), nbrs)
        return jnp.sum(jnp.where(w_atoms[:, None], b, 0.0), axis=0)

    ref = -np.asarray(jax.jit(jax.jacrev(summed))(system.positions))  # (K, N, 3)
    np.testing.assert_allclose(jac, np.moveaxis(ref, 0, -1), rtol=1e-10, atol=1e-10)


def test_padding_and_inert_species():
    from rexfit.descriptors.bispectrum import Bispectrum

    # a small band limit: padding and inert species do not depend on it (2 compilations:
    # the inert-species cell is padded to the padded cell's atom and pair slots)
    potential = SNAP(Bispectrum(4, 4.6, (0.5,), (1.0,)), ("Mo",))
    rng = np.random.default_rng(4)
    params = {"Mo": {"beta0": jnp.float64(-9.0),
                     "beta": jnp.asarray(rng.normal(0.0, 0.1, potential.n_linear))}}
    pos, cell, species = crystal("Mo", 3.16, 1, seed=9)
    system = make_system(pos, cell, species)
    plain = evaluate(potential, params, system, build_lists(potential, system, 0.3))
    # an atom of an unknown species (≥ len(elements)) neither has energy nor is a neighbour
    extra = pad_system(make_system(np.vstack([pos, pos[:1] + 1.2]), cell,
                                   np.append(species, 1)), 6)
    extra_nbrs = build_lists(potential, extra, 0.3)
    padded = pad_system(system, 6)
    capacity = max(extra_nbrs.capacity, build_lists(potential, padded, 0.3).capacity)
    ours = evaluate(potential, params, padded,
                    build_lists(potential, padded, 0.3, capacity=capacity))
    assert float(ours.energy) == pytest.approx(float(plain.energy), rel=1e-14)
    np.testing.assert_allclose(ours.forces[:2], plain.forces, atol=1e-12)
    assert np.all(np.asarray(ours.forces)[2:] == 0.0)
    ev = evaluate(potential, params, extra,
                  build_lists(potential, extra, 0.3, capacity=capacity))
    assert float(ev.energy) == pytest.approx(float(plain.energy), rel=1e-14)
    assert np.all(np.asarray(ev.forces)[2] == 0.0)  # the unknown-species atom
    assert np.all(np.asarray(ev.forces)[3:] == 0.0)  # padding
