"""PINN and its bond-order potential: the energy equals a plain NumPy implementation (explicit
loops over i, j, k, neighbours by brute force over periodic images, screening atoms up to 2 r_c
away); forces, stress and parameter gradients of a force loss agree with finite differences; a
PINN with zero networks is the BOP; padding and non-interacting species change nothing."""

from __future__ import annotations

import itertools
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk

from rexfit.descriptors.lsp import LSP
from rexfit.physics.properties import energy as jit_energy, evaluate
from rexfit.physics.strain import deform
from rexfit.potentials.lists import build_lists
from rexfit.potentials.pinn import BOP, BOP_PARAMETERS, PINN
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system, pad_system
from rexfit.structures.triplets import build_triplets, with_triplets

RC, D = 4.2, 1.2
#: Si-like base parameters (Tersoff-like exponentials, tetrahedral h) and a second, C-like set
BASE = {
    "Si": dict(zip(BOP_PARAMETERS, (7.5, 6.15, 2.48, 1.73, 0.3, -0.33, 1.5, 1.0))),
    "C": dict(zip(BOP_PARAMETERS, (7.0, 5.9, 2.7, 1.9, 0.5, -0.2, 1.8, 0.8))),
}
LSP_SI_C = LSP((2.3, 3.1, 3.8), 0.6, RC, 0.8, (0, 1, 2, 4), weights=(1.0, 0.8))


# ---------------------------------------------------------------- NumPy reference

def _fc(r):
    if r >= RC:
        return 0.0
    x4 = (r - RC) ** 4
    return x4 / (D ** 4 + x4)


def _neighbours(pos, cell, pbc, i, reach):
    """[(atom, position)] of every atom image within ``reach`` of atom i, itself excluded."""
    pbc = np.asarray(pbc, dtype=bool)
    if pbc.any():
        spacing = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
        m = [math.ceil(reach / s) + 1 if p else 0 for s, p in zip(spacing, pbc)]
    else:
        m = [0, 0, 0]
    out = []
    for n in itertools.product(*[range(-k, k + 1) for k in m]):
        shift = np.asarray(n, dtype=np.float64) @ cell
        for j in range(len(pos)):
            if j == i and not any(n):
                continue
            x = pos[j] + shift
            if np.linalg.norm(x - pos[i]) < reach:
                out.append((j, x))
    return out


def numpy_bop_energy(pos, cell, pbc, species, p, n_elements):
    """E of the BOP with per-atom parameters ``p`` (N, 8), straight from the formulas."""
    total = 0.0
    for i in range(len(pos)):
        if species[i] >= n_elements:
            continue
        big_a, big_b, alpha, beta, a, h, lam, sigma = p[i]
        nb = [(j, x) for j, x in _neighbours(pos, cell, pbc, i, 2.0 * RC)
              if species[j] < n_elements]
        rvec = [x - pos[i] for _, x in nb]
        r = [float(np.linalg.norm(v)) for v in rvec]
        bonds = [jj for jj in range(len(nb)) if r[jj] < RC]
        s = {}
        for jj in bonds:
            prod = 1.0
            for kk in range(len(nb)):
                if kk == jj:
                    continue
                x = r[kk] + float(np.linalg.norm(nb[kk][1] - nb[jj][1])) - r[jj]
                prod *= 1.0 - _fc(x) * math.exp(-lam * x)
            s[jj] = prod
        promotion = 0.0
        for jj in bonds:
            z = 0.0
            for kk in bonds:
                if kk != jj:
                    cos = float(rvec[jj] @ rvec[kk]) / (r[jj] * r[kk])
                    z += a * s[kk] * (cos - h) ** 2 * _fc(r[kk])
            b = (1.0 + z) ** -0.5
            total += 0.5 * (math.exp(big_a - alpha * r[jj])
                            - s[jj] * b * math.exp(big_b - beta * r[jj])) * _fc(r[jj])
            promotion += s[jj] * b * _fc(r[jj])
        total -= sigma * math.sqrt(promotion)
    return total


def numpy_parameters(model, params, g, species):
    """p⁰ + N_e((G − μ)/σ) per atom, NumPy forward pass."""
    act = {"tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x))}[model.activation]
    widths = (g.shape[1],) + model.hidden
    rows = np.zeros((len(g), 8))
    for n, (row, s) in enumerate(zip(g, species)):
        if s >= len(model.elements):
            continue
        q = {k: np.asarray(v) for k, v in params[model.elements[s]].items()}
        x = (row - q["mean"]) / q["std"]
        for k in range(1, len(widths)):
            x = act(x @ q[f"w{k}"].reshape(widths[k - 1], widths[k]) + q[f"b{k}"])
        rows[n] = q["base"] + x @ q["out"].reshape(model.hidden[-1], 8) + q["bias"]
    return rows


# ---------------------------------------------------------------- structures and models

def _structure(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "diamond":
        atoms = bulk("Si", "diamond", 5.43, cubic=True)
        strain = np.eye(3) + rng.normal(0.0, 0.02, (3, 3))
        cell = atoms.cell.array @ strain
        pos = atoms.positions @ strain + rng.normal(0.0, 0.1, (8, 3))
        return pos, cell, (True,) * 3, np.array([0, 1, 0, 0, 1, 0, 0, 0])
    if kind == "primitive":  # small cell: images of i and of one atom as j and k
        cell = bulk("Si", "diamond", 5.43).cell.array @ (np.eye(3) + rng.normal(0, 0.02, (3, 3)))
        pos = np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]]) @ cell + rng.normal(0, 0.08, (2, 3))
        return pos, cell, (True,) * 3, np.array([0, 1])
    # cluster: the 10 atoms of a diamond crystal nearest to a bond centre
    sites = bulk("Si", "diamond", 5.43, cubic=True).repeat((2, 2, 2)).positions
    centre = np.array([5.43 * 1.125] * 3)
    pick = np.argsort(np.linalg.norm(sites - centre, axis=1))[:10]
    pos = sites[pick] + rng.normal(0.0, 0.1, (10, 3))
    return pos, np.zeros((3, 3)), (False,) * 3, np.array([0, 0, 1, 0, 0, 0, 1, 0, 0, 0])


def _system(kind, two_elements=True):
    pos, cell, pbc, species = _structure(kind)
    if not two_elements:
        species = np.zeros_like(species)
    return make_system(pos, cell, species, pbc)


def _pinn(activation="tanh"):
    model = PINN(LSP_SI_C, ("Si", "C"), (5, 4), activation, RC, D)
    params = model.initial_params(seed=3, base=BASE)
    rng = np.random.default_rng(7)
    k = model.descriptor.n_features
    for e in model.elements:  # small random output layer, non-trivial normalisation
        params[e] = dict(params[e], out=jnp.asarray(rng.normal(0.0, 0.05, 4 * 8)),
                         bias=jnp.asarray(rng.normal(0.0, 0.02, 8)),
                         b1=jnp.asarray(rng.normal(0.0, 0.1, 5)),
                         mean=jnp.asarray(rng.normal(1.0, 0.2, k)),
                         std=jnp.asarray(rng.uniform(0.5, 2.0, k)))
    return model, params


def _bop_params():
    return {e: {k: jnp.float64(v) for k, v in BASE[e].items()} for e in ("Si", "C")}


@partial(jax.jit, static_argnums=0)
def _features_and_parameters(model, params, system, nbrs):
    return (model.descriptor.features(system, nbrs),
            model.atom_parameters(params, system, nbrs))


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("kind", ["diamond", "primitive", "cluster"])
def test_bop_energy_equals_numpy(kind):
    bop = BOP(("Si", "C"), RC, D)
    system = _system(kind)
    nbrs = build_lists(bop, system, 0.3)
    species = np.asarray(system.species)
    p = np.array([[BASE[("Si", "C")[s]][k] for k in BOP_PARAMETERS] for s in species])
    expected = numpy_bop_energy(np.asarray(system.positions), np.asarray(system.cell),
                                system.pbc, species, p, 2)
    got = float(jit_energy(bop, _bop_params(), system, nbrs))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("kind, activation", [("diamond", "tanh"), ("primitive", "sigmoid"),
                                              ("cluster", "tanh")])
def test_pinn_energy_equals_numpy(kind, activation):
    model, params = _pinn(activation)
    system = _system(kind)
    nbrs = build_lists(model, system, 0.3)
    species = np.asarray(system.species)
    g, p_jax = _features_and_parameters(model, params, system, nbrs)
    p = numpy_parameters(model, params, np.asarray(g), species)  # the LSP is tested elsewhere
    assert np.abs(p - np.array([[BASE[("Si", "C")[s]][k] for k in BOP_PARAMETERS]
                                for s in species])).max() > 1e-2  # the networks matter
    np.testing.assert_allclose(np.asarray(p_jax), p,
                               rtol=1e-12, atol=1e-13)
    expected = numpy_bop_energy(np.asarray(system.positions), np.asarray(system.cell),
                                system.pbc, species, p, 2)
    got = float(jit_energy(model, params, system, nbrs))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-10)


def test_screening_is_strong_and_both_triplet_layouts_agree():
    """Second neighbours are screened (S_ij ≪ 1 matters); unordered triplets give the same."""
    bop = BOP(("Si", "C"), RC, D)
    system = _system("diamond")
    params = _bop_params()
    nbrs = build_lists(bop, system, 0.3)
    e_ordered = float(jit_energy(bop, params, system, nbrs))
    full = build_neighbor_list(system, bop.cutoff, 0.3, half=False)
    first, second, _ = bop.triplet_cutoffs()
    unordered = with_triplets(full, build_triplets(system, full, first, second, ordered=False))
    assert float(jit_energy(bop, params, system, unordered)) == pytest.approx(e_ordered, rel=1e-13)
    no_screening = {e: dict(v, **{"lambda": jnp.float64(60.0)}) for e, v in params.items()}
    assert abs(float(jit_energy(bop, no_screening, system, nbrs)) - e_ordered) > 0.1


def test_forces_stress_and_parameter_gradients_match_finite_differences():
    model, params = _pinn()
    system = _system("diamond")
    nbrs = build_lists(model, system, 0.3)
    ev = evaluate(model, params, system, nbrs)

    def energy(s):  # the compiled evaluate again: same shapes, no new compilation
        return float(evaluate(model, params, s, nbrs).energy)

    h = 1e-5
    x0 = np.asarray(system.positions)
    for atom in range(len(x0)):
        for axis in range(3):
            dx = np.zeros_like(x0)
            dx[atom, axis] = h
            fd = -(energy(system.replace(positions=x0 + dx))
                   - energy(system.replace(positions=x0 - dx))) / (2 * h)
            assert float(ev.forces[atom, axis]) == pytest.approx(fd, rel=1e-6, abs=1e-8)
    volume = abs(np.linalg.det(np.asarray(system.cell)))
    for v, (a, c) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
        eps = np.zeros((3, 3))
        eps[a, c] = eps[c, a] = h
        fd = (energy(deform(system, eps)) - energy(deform(system, -eps))) / (
            2 * h * (2.0 if a != c else 1.0) * volume)
        assert float(ev.stress[v]) == pytest.approx(fd, rel=1e-6, abs=1e-9)

    target = np.random.default_rng(1).normal(0.0, 0.5, x0.shape)

    def loss(q):
        return jnp.sum((evaluate(model, q, system, nbrs).forces - target) ** 2)

    grad = jax.jit(jax.grad(loss))(params)
    for e in model.elements:
        for leaf in ("base", "w1", "b2", "out", "bias"):
            size = int(np.size(params[e][leaf]))
            for k in sorted({0, size // 2, size - 1}):
                def shifted(dv, e=e, leaf=leaf, k=k):
                    q = {el: dict(v) for el, v in params.items()}
                    q[e][leaf] = jnp.asarray(q[e][leaf]).at[k].add(dv)
                    return float(loss(q))
                fd = (shifted(1e-6) - shifted(-1e-6)) / 2e-6
                g = float(np.asarray(grad[e][leaf])[k])
                assert g == pytest.approx(fd, rel=1e-5, abs=1e-7), (e, leaf, k)


def test_zero_networks_equal_the_bop():
    model, params = _pinn()
    network = ("w", "b", "out")  # every weight and bias ("bias" too), not "base"/"mean"/"std"
    zero = {e: {k: (jnp.zeros_like(v) if k.startswith(network) and k != "base" else v)
                for k, v in q.items()} for e, q in params.items()}
    bop, bop_params = model.bop(), model.base_params(params)
    for kind in ("diamond", "cluster"):
        system = _system(kind)
        nbrs = build_lists(model, system, 0.3)
        expected = float(jit_energy(bop, _bop_params(), system, nbrs))
        for potential, q in ((model, zero), (bop, bop_params)):
            assert float(jit_energy(potential, q, system, nbrs)) == pytest.approx(expected,
                                                                               rel=1e-13)
    started = model.initial_params(seed=11, base=BASE)  # output layer 0: starts as the BOP
    assert float(jit_energy(model, started, system, nbrs)) == pytest.approx(expected, rel=1e-13)


def test_padding_and_foreign_species_change_nothing():
    model, params = _pinn()
    system = _system("diamond")
    reference = evaluate(model, params, system, build_lists(model, system, 0.3))
    pos = np.vstack([np.asarray(system.positions), np.asarray(system.positions[:1]) + 1.1])
    foreign = make_system(pos, system.cell, np.append(np.asarray(system.species), 2))
    padded = pad_system(foreign, 12)
    nbrs = build_lists(model, padded, 0.3, n_species=3, capacity=2048, triplet_capacity=40000)
    got = evaluate(model, params, padded, nbrs)
    assert float(got.energy) == pytest.approx(float(reference.energy), rel=1e-13)
    np.testing.assert_allclose(np.asarray(got.forces[:8]), np.asarray(reference.forces),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(got.forces[8:]), 0.0)
    np.testing.assert_allclose(np.asarray(got.stress), np.asarray(reference.stress),
                               rtol=1e-10, atol=1e-14)


def test_construction_checks_and_reach():
    model, _ = _pinn()
    assert model.cutoff == pytest.approx(1.5 * RC)
    first, second, ordered = model.triplet_cutoffs()
    assert ordered and first.shape == (2, 2) and np.all(second == 1.5 * RC)
    assert hash(model) == hash(PINN(LSP_SI_C, ("Si", "C"), (5, 4), "tanh", RC, D))
    shapes = model.parameter_shapes()
    params = model.initial_params(seed=0, base=BASE)
    assert {k: tuple(np.shape(v)) for k, v in params["Si"].items()} == shapes
    assert shapes["out"] == (4 * 8,) and shapes["base"] == (8,)
    with pytest.raises(ValueError, match="lack"):
        model.initial_params(base={"Si": {"A": 1.0}, "C": BASE["C"]})
    with pytest.raises(ValueError, match="more species"):
        PINN(LSP_SI_C, ("Si",), (3,), rc=RC, d=D)
