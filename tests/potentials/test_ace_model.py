"""ACE internals: the coupling coefficients against pyace's, the spherical harmonics against
SciPy, forces/stress and parameter gradients against finite differences of rexfit's own
energy, the isolated atom, exact against tabulated radial functions, and file checks."""

from __future__ import annotations

import math
from dataclasses import replace

import jax
import numpy as np
import pytest

from rexfit.physics.properties import EV_PER_A3_TO_GPA, evaluate
from rexfit.potentials.ace.coupling import coupling_tree, ms_combinations
from rexfit.potentials.ace.files import (BBasis, BFunction, SpeciesBlock, bbasis_text,
                                         read_bbasis, write_bbasis)
from rexfit.potentials.ace.harmonics import lm_index, spherical_harmonics
from rexfit.potentials.ace.model import ACE
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system
from tests.support.fd import check_forces_and_stress


def _functions(element, nrad, lmax, ndensity):
    """Rank 1-4 functions of one element (every (ls, LS) allowed up to lmax, n ≤ nrad)."""
    out = [BFunction((element,) * 2, (n,), (0,), (), (0.0,) * ndensity) for n in range(1, nrad + 2)]
    for l in range(lmax + 1):
        out.append(BFunction((element,) * 3, (1, 2), (l, l), (), (0.0,) * ndensity))
        out.append(BFunction((element,) * 4, (1, 1, 2), (l, l, 0), (0,), (0.0,) * ndensity))
        for l3 in range(lmax + 1):
            if (2 * l + l3) % 2 == 0 and l3 <= 2 * l:
                out.append(BFunction((element,) * 4, (1, 2, 1), (l, l3, l), (l,),
                                     (0.0,) * ndensity))
    out.append(BFunction((element,) * 5, (1, 1, 2, 2), (1, 1, 1, 1), (0, 0), (0.0,) * ndensity))
    out.append(BFunction((element,) * 5, (1, 2, 1, 2), (1, 1, 1, 1), (2, 2), (0.0,) * ndensity))
    return tuple(out)


def handmade_basis(radbase="ChebExpCos", npot="FinnisSinclairShiftedScaled",
                   fs=(1.0, 1.0, 1.0, 0.5), core=(0.0, 1.0), inner="distance"):
    """A one-element basis written without pyace (rexfit's own dataclasses)."""
    nrad, lmax, nbase = 2, 2, 3
    block = SpeciesBlock(
        ("Al",), _functions("Al", nrad, lmax, len(fs) // 2), ndensity=len(fs) // 2, npot=npot,
        fs_parameters=fs, rho_core_cut=3.0, drho_core_cut=2.0, nradmax=nrad, lmax=lmax,
        rcut=4.2, dcut=0.3, cutoff_function="cos", r_in=1.0, delta_in=0.3,
        inner_cutoff_type=inner, nradbase=nbase, radbase=radbase, radparameters=(3.0,),
        radcoefficients=tuple(tuple(tuple(1.0 if k == n else 0.0 for k in range(nbase))
                                    for _ in range(lmax + 1)) for n in range(nrad)),
        core_repulsion=core)
    return BBasis(0.001, (block,))


def random_params(params, seed, scale=0.3):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda v: scale * rng.normal(size=np.shape(v)), params)


def small_cell(seed=0):
    rng = np.random.default_rng(seed)
    cell = 3.4 * (np.eye(3) + rng.normal(0, 0.05, (3, 3)))
    pos = rng.uniform(0, 1, (3, 3)) @ cell
    return make_system(pos, cell, np.zeros(3, int))


# ---------------------------------------------------------------- coupling and harmonics

def test_coupling_tree_shapes():
    assert coupling_tree(2) == ((0, 1, -1),)
    assert coupling_tree(3) == ((0, 1, 3), (3, 2, -1))
    assert coupling_tree(4) == ((0, 1, 4), (2, 3, 5), (4, 5, -1))
    assert coupling_tree(5) == ((0, 1, 5), (2, 3, 6), (5, 6, 7), (7, 4, -1))


@pytest.mark.parametrize("ls,LS", [((2, 2), ()), ((1, 2, 1), (1,)), ((2, 1, 2, 1), (1, 1)),
                                   ((1, 1, 2, 2), (2, 2)), ((1, 1, 1, 2, 1), (2, 1, 1)),
                                   ((1, 1, 1, 1, 1, 1), (0, 2, 2, 2))])
def test_generalised_clebsch_gordan_matches_pyace(ls, LS):
    pyace = pytest.importorskip("pyace")
    ref = {tuple(p.ms): p.gen_cg for p in pyace.generate_ms_cg_list(list(ls), list(LS),
                                                                   half_basis=False)}
    ms, cg = ms_combinations(ls, LS)
    ours = dict(zip(map(tuple, ms.tolist()), cg))
    keys = {k for k, v in ref.items() if abs(v) > 1e-14} | set(ours)
    assert keys and max(abs(ours.get(k, 0.0) - ref.get(k, 0.0)) for k in keys) < 1e-14


def test_spherical_harmonics_are_scipy_times_sqrt_4pi():
    sph_harm_y = pytest.importorskip("scipy.special").sph_harm_y
    rng = np.random.default_rng(0)
    u = rng.normal(size=(7, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    y = np.asarray(spherical_harmonics(u, 4))
    theta, phi = np.arccos(u[:, 2]), np.arctan2(u[:, 1], u[:, 0])
    for l in range(5):
        for m in range(-l, l + 1):
            ref = math.sqrt(4 * math.pi) * sph_harm_y(l, m, theta, phi)
            assert np.abs(y[:, lm_index(l, m)] - ref).max() < 1e-13


# ---------------------------------------------------------------- derivatives

@pytest.mark.parametrize("spline,inner", [(False, "distance"), (True, "distance"),
                                          (False, "zbl")])
def test_forces_and_stress_match_finite_differences(spline, inner):
    core = (2.0, 1.0) if inner == "distance" else (1.0, 0.0)
    potential, params = ACE.from_bbasis(handmade_basis(core=core, inner=inner), spline=spline)
    params = random_params(params, 1)
    system = small_cell() if inner == "distance" else small_cell(4).replace(
        positions=small_cell(4).positions * 1.3, cell=small_cell(4).cell * 1.3)  # ZBL switching
    nbrs = build_neighbor_list(system, potential.cutoff, 0.3, half=False)
    check_forces_and_stress(potential, params, system, nbrs)


def test_parameter_gradient_matches_finite_differences():
    potential, params = ACE.from_bbasis(handmade_basis(npot="FinnisSinclair"))
    params = random_params(params, 2)
    system = small_cell(1)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.3, half=False)
    energy = jax.jit(lambda p: potential.energy(p, system, nbrs))
    grad = jax.grad(energy)(params)
    h = 1e-6
    for group, key, index in (("crad", "Al-Al", (0, 1, 2)), ("crad", "Al-Al", (1, 2, 0)),
                              ("c", "Al", (0, 1)), ("c", "Al", (-1, 0)), ("c", "Al", (8, 1))):
        def shifted(step):
            p = jax.tree_util.tree_map(np.array, params)
            p[group][key][index] += step
            return float(energy(p))
        fd = (shifted(h) - shifted(-h)) / (2 * h)
        assert float(grad[group][key][index]) == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_half_list_is_refused():
    potential, params = ACE.from_bbasis(handmade_basis())
    system = small_cell()
    with pytest.raises(ValueError, match="full neighbour list"):
        potential.energy(params, system, build_neighbor_list(system, potential.cutoff, 0.3))


def test_isolated_atom_has_zero_energy():
    potential, params = ACE.from_bbasis(handmade_basis(core=(2.0, 1.0)))
    params = random_params(params, 3)
    system = make_system([[1.0, 2.0, 3.0]], np.eye(3) * 20.0, [0], pbc=(False,) * 3)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.3, half=False)
    assert float(jax.jit(potential.energy)(params, system, nbrs)) == 0.0


def test_exact_radial_functions_stay_close_to_the_tabulation():
    """The exact functions against the evaluator's Δ = 0.001 Å tabulation: measured 1e-12
    eV/atom and a few 1e-10 of the largest force."""
    potential, params = ACE.from_bbasis(handmade_basis("SBessel"))
    params = random_params(params, 4)
    system = small_cell(2)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.3, half=False)
    tab = evaluate(potential, params, system, nbrs)
    exact = evaluate(potential.with_spline(False), params, system, nbrs)
    fmax = max(1.0, float(np.abs(tab.forces).max()))
    assert abs(float(tab.energy - exact.energy)) / 3 < 1e-10
    assert float(np.abs(tab.forces - exact.forces).max()) < 3e-7 * fmax
    smax = max(1.0, float(np.abs(tab.stress).max()) * EV_PER_A3_TO_GPA)
    assert float(np.abs(tab.stress - exact.stress).max()) * EV_PER_A3_TO_GPA < 3e-7 * smax
    assert float(np.abs(tab.forces - exact.forces).max()) > 0.0  # they do differ


# ---------------------------------------------------------------- files

def test_written_file_reads_back_identically(tmp_path):
    basis = handmade_basis()
    write_bbasis(tmp_path / "p.yaml", basis)
    assert read_bbasis(tmp_path / "p.yaml") == basis
    assert "speciesblock: Al" in bbasis_text(basis)


def test_coefficients_round_trip_through_the_file(tmp_path):
    basis = handmade_basis()
    potential, params = ACE.from_bbasis(basis)
    params = random_params(params, 5)
    write_bbasis(tmp_path / "p.yaml", potential.to_bbasis(basis, params))
    again, params2 = ACE.from_bbasis(read_bbasis(tmp_path / "p.yaml"))
    assert again == potential
    for group in params:
        for key in params[group]:
            assert np.array_equal(np.asarray(params2[group][key]), params[group][key])


def test_inconsistent_symmetric_bonds_are_rejected():
    block = handmade_basis().blocks[0]
    ab = SpeciesBlock(("Al", "Cu"), (), **{k: getattr(block, k) for k in (
        "nradmax", "lmax", "rcut", "dcut", "cutoff_function", "r_in", "delta_in",
        "inner_cutoff_type", "nradbase", "radbase", "radparameters", "radcoefficients",
        "core_repulsion")})
    cu = SpeciesBlock(("Cu",) + block.elements[1:], (), **{
        k: getattr(block, k) for k in SpeciesBlock.__dataclass_fields__
        if k not in ("elements", "functions")})
    ba = SpeciesBlock(("Cu", "Al"), (), **{**{k: getattr(ab, k) for k in (
        "nradmax", "lmax", "rcut", "dcut", "cutoff_function", "r_in", "delta_in",
        "inner_cutoff_type", "nradbase", "radbase", "radparameters", "core_repulsion")},
        "radcoefficients": tuple(tuple(tuple(2.0 * x for x in row) for row in n)
                                 for n in block.radcoefficients)})
    with pytest.raises(ValueError, match="differ"):
        ACE.from_bbasis(BBasis(0.001, (block, cu, ab, ba)))


def test_second_derivatives_match_finite_differences():
    """Force constants and the parameter gradient of a force (what relaxations and force
    fitting need) through the tabulated radial functions, against differences of forces."""
    potential, params = ACE.from_bbasis(handmade_basis(core=(2.0, 1.0)))
    params = random_params(params, 6)
    system = small_cell(3)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.3, half=False)

    def force(p, x):
        return -jax.grad(lambda y: potential.energy(p, system.replace(positions=y), nbrs))(x)

    force = jax.jit(force)
    x0 = np.asarray(system.positions)
    h = 1e-5
    column = jax.jit(jax.jacfwd(lambda x: force(params, x)[1, 2]))(x0)  # ∂F_1z/∂x
    for atom, axis in ((0, 0), (1, 2), (2, 1)):
        dx = np.zeros_like(x0)
        dx[atom, axis] = h
        fd = (float(force(params, x0 + dx)[1, 2]) - float(force(params, x0 - dx)[1, 2])) / (2 * h)
        assert float(column[atom, axis]) == pytest.approx(fd, rel=1e-6, abs=1e-7)
    grad = jax.jit(jax.grad(lambda p: force(p, x0)[0, 0]))(params)
    for group, key, index in (("crad", "Al-Al", (1, 1, 1)), ("c", "Al", (4, 0))):
        def shifted(step):
            p = jax.tree_util.tree_map(np.array, params)
            p[group][key][index] += step
            return float(force(p, x0)[0, 0])
        fd = (shifted(1e-6) - shifted(-1e-6)) / 2e-6
        assert float(grad[group][key][index]) == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_species_order_of_a_job():
    """for_species: a job listing Cu, Ar, Al (Ar unknown to the potential) gives the energy of
    the same structure in the potential's own order, with the Ar atom absent."""
    al = handmade_basis().blocks[0]
    cu = SpeciesBlock(("Cu",), tuple(BFunction(("Cu",) + f.elements[1:], f.ns, f.ls, f.LS, f.c)
                                     for f in al.functions[:6]),
                      **{k: getattr(al, k) for k in SpeciesBlock.__dataclass_fields__
                         if k not in ("elements", "functions")})
    bond = SpeciesBlock(("Al", "Cu"), (), **{k: getattr(al, k) for k in (
        "nradmax", "lmax", "rcut", "dcut", "cutoff_function", "r_in", "delta_in",
        "inner_cutoff_type", "nradbase", "radbase", "radparameters", "radcoefficients",
        "core_repulsion")})
    potential, params = ACE.from_bbasis(BBasis(0.001, (cu, al, bond)))
    assert potential.elements == ("Al", "Cu")
    params = random_params(params, 8)
    rng = np.random.default_rng(9)
    cell = 4.5 * np.eye(3)
    pos = rng.uniform(0, 4.5, (5, 3))
    own = make_system(pos[:4], cell, [1, 0, 0, 1])  # Cu Al Al Cu in (Al, Cu) order
    job = make_system(pos, cell, [0, 2, 2, 0, 1])  # the same in (Cu, Ar, Al) order, + Ar
    e_own = jax.jit(potential.energy)(params, own,
                                      build_neighbor_list(own, potential.cutoff, 0.3, half=False))
    mapped = potential.for_species(("Cu", "Ar", "Al"))
    e_job = jax.jit(mapped.energy)(params, job,
                                   build_neighbor_list(job, potential.cutoff, 0.3, half=False))
    assert float(e_job) == pytest.approx(float(e_own), rel=1e-12, abs=1e-12)
    assert abs(float(e_own)) > 1e-3


def test_linear_embedding_energy_is_features_times_coefficients():
    """One density with F(ρ) = ρ: E = Σ_i features_i · c (the design matrix of linear ACE),
    skipped functions contributing nothing."""
    basis = handmade_basis(fs=(1.0, 1.0), core=(0.0, 0.0))
    block = basis.blocks[0]
    skipped = tuple(replace(f, skip=(k == 3)) for k, f in enumerate(block.functions))
    basis = replace(basis, blocks=(replace(block, functions=skipped),))
    potential, params = ACE.from_bbasis(basis)
    params = random_params(params, 10)
    system = small_cell(5)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.3, half=False)
    features = np.asarray(jax.jit(potential.features)(params, system, nbrs))
    assert features.shape == (3, len(block.functions)) and not features[:, 3].any()
    energy = float(jax.jit(potential.energy)(params, system, nbrs))
    assert energy == pytest.approx(float(np.sum(features @ params["c"]["Al"][:, 0])),
                                   rel=1e-12, abs=1e-12)
