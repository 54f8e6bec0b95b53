"""EAM formula with analytic function objects: brute-force reference, half/full lists, padding."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.physics.properties import evaluate
from rexfit.potentials.eam import EAM
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system, pad_system
from tests.support.structures import make_cases

CUTOFF = 5.0


@dataclass(frozen=True)
class Exp:
    """A·exp(−b r)·(rc − r)⁴ for r < rc (a smooth radial function); params {"A", "b"}."""

    rc: float

    def __call__(self, params, r):
        return jnp.where(r < self.rc,
                         params["A"] * jnp.exp(-params["b"] * r) * (self.rc - r) ** 4, 0.0)


@dataclass(frozen=True)
class SqrtEmbedding:
    """F(ρ) = −A √ρ (Finnis–Sinclair); infinite slope at ρ = 0."""

    def __call__(self, params, rho):
        return -params["A"] * jnp.sqrt(rho)


PARAMS = {
    "V00": {"A": 2.0, "b": 1.1}, "V01": {"A": 1.5, "b": 1.0}, "V11": {"A": 1.2, "b": 0.9},
    "r00": {"A": 0.3, "b": 0.7}, "r01": {"A": 0.2, "b": 0.6},
    "r10": {"A": 0.5, "b": 0.8}, "r11": {"A": 0.4, "b": 0.5},
    "F0": {"A": 1.0}, "F1": {"A": 0.8},
}


def _fs_potential():
    f = Exp(CUTOFF)
    return EAM.create(
        2, CUTOFF,
        pair={(0, 0): ("V00", f), (1, 0): ("V01", f), (1, 1): ("V11", f)},
        density={(a, b): (f"r{a}{b}", f) for a, b in product(range(2), repeat=2)},
        embedding={0: ("F0", SqrtEmbedding()), 1: ("F1", SqrtEmbedding())},
    )


def _brute_force(positions, species, params):
    """½ΣΣ V + Σ F(Σ ρ_{s_i s_j}) by a double loop over atoms (cluster, no periodicity)."""
    f = Exp(CUTOFF)
    n = len(positions)
    e, rho = 0.0, np.zeros(n)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            r = np.linalg.norm(positions[j] - positions[i])
            a, b = sorted((species[i], species[j]))
            e += 0.5 * float(f(params[f"V{a}{b}"], r))
            rho[i] += float(f(params[f"r{species[i]}{species[j]}"], r))
    return e + sum(-params[f"F{species[i]}"]["A"] * np.sqrt(rho[i]) for i in range(n))


def test_eam_matches_brute_force_double_loop():
    case = {c.name: c for c in make_cases(ntypes=2, seed=8)}["cluster"]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    potential = _fs_potential()
    for half in (True, False):
        nbrs = build_neighbor_list(system, CUTOFF, 0.3, half=half)
        e = float(potential.energy(PARAMS, system, nbrs))
        assert e == pytest.approx(_brute_force(case.positions, case.species, PARAMS), rel=1e-13)


def test_half_and_full_lists_agree_on_periodic_cells():
    case = {c.name: c for c in make_cases(ntypes=2, seed=9)}["one_atom_oblique"]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    potential = _fs_potential()
    half = evaluate(potential, PARAMS, system, build_neighbor_list(system, CUTOFF, 0.0))
    full = evaluate(potential, PARAMS, system,
                    build_neighbor_list(system, CUTOFF, 0.0, half=False))
    np.testing.assert_allclose(half.energy, full.energy, rtol=1e-13)
    np.testing.assert_allclose(half.forces, full.forces, atol=1e-13)
    np.testing.assert_allclose(half.stress, full.stress, atol=1e-13)


def test_padding_is_inert_and_keeps_gradients_finite():
    case = {c.name: c for c in make_cases(ntypes=2, seed=10)}["strained_triclinic"]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    padded = pad_system(system, 40)
    potential = _fs_potential()
    plain = evaluate(potential, PARAMS, system, build_neighbor_list(system, CUTOFF, 0.2))
    nbrs = build_neighbor_list(padded, CUTOFF, 0.2, capacity=4096)
    ours = evaluate(potential, PARAMS, padded, nbrs)
    assert float(ours.energy) == pytest.approx(float(plain.energy), rel=1e-13)
    np.testing.assert_allclose(ours.forces[: case.natoms], plain.forces, atol=1e-12)
    # padding atoms have ρ = 0 where √ρ has infinite slope: no NaN may reach any gradient
    grads = jax.grad(lambda p: potential.energy(p, padded, nbrs))(PARAMS)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    assert bool(jnp.all(jnp.isfinite(ours.forces)))


def test_species_without_functions_contribute_nothing():
    f = Exp(CUTOFF)
    only_0 = EAM.create(2, CUTOFF, {(0, 0): ("V00", f)}, {(0, 0): ("r00", f)},
                        {0: ("F0", SqrtEmbedding())})
    positions = np.array([[0.0, 0, 0], [2.5, 0, 0], [0, 2.6, 0]])
    system = make_system(positions, np.zeros((3, 3)), [0, 1, 0], pbc=(False,) * 3)
    nbrs = build_neighbor_list(system, CUTOFF, 0.0)
    e = float(only_0.energy(PARAMS, system, nbrs))
    reference = _brute_force(positions[[0, 2]], np.array([0, 0]), PARAMS)
    assert e == pytest.approx(reference, rel=1e-13)
