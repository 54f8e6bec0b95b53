"""The ACE product basis as :meth:`ACE.basis_from_sums` evaluates it (each pair of m
combinations ±M folded into one term, :func:`folded_ms_combinations`; one row per A-basis
entry) against the plain sum over every m combination of
:func:`ms_combinations` in complex NumPy arithmetic: the folded terms on their own, the B
values of a two-element model, and their derivatives (forces of Σ c·B) in JAX."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.potentials.ace.basis import generate_basis
from rexfit.potentials.ace.coupling import folded_ms_combinations, ms_combinations
from rexfit.potentials.ace.harmonics import lm_index
from rexfit.potentials.ace.model import ACE
from rexfit.structures.neighbors import build_neighbor_list, pair_displacements
from rexfit.structures.system import make_system

jax.config.update("jax_enable_x64", True)

COUPLINGS = [((2, 2), ()), ((1, 1), ()), ((1, 2, 1), (1,)), ((2, 2, 2), (2,)),
             ((2, 1, 2, 1), (1, 1)), ((1, 1, 2, 2), (2, 2)), ((2, 2, 2, 2), (2, 2)),
             ((1, 1, 1, 2, 1), (2, 1, 1)), ((1, 1, 1, 1, 1, 1), (0, 2, 2, 2))]


def _symmetric_a(ls, rng, symmetric=True):
    """One complex A_{l m} per factor t (a dict (t, m) → value) with
    A_{l,−m} = (−1)^m conj(A_{l m}) (the A-basis' symmetry), or without it."""
    a = {}
    for t, l in enumerate(ls):
        for m in range(0, l + 1):
            a[t, m] = complex(rng.normal(), rng.normal() if m else 0.0)
            if m:
                a[t, -m] = ((-1) ** m * np.conj(a[t, m]) if symmetric
                            else complex(rng.normal(), rng.normal()))
    return a


def _b(ms, c, a):
    return float(np.real(sum(ci * np.prod([a[t, m] for t, m in enumerate(row)])
                             for row, ci in zip(ms.tolist(), c))))


@pytest.mark.parametrize("ls,LS", COUPLINGS)
def test_folded_terms_give_the_full_sum(ls, LS):
    rng = np.random.default_rng(sum(ls) + len(ls))
    full, folded = ms_combinations(ls, LS), folded_ms_combinations(ls, LS)
    assert len(folded[1]) <= (len(full[1]) + 1) // 2
    for _ in range(3):
        a = _symmetric_a(ls, rng)
        ref = _b(*full, a)
        assert abs(_b(*folded, a) - ref) <= 1e-13 * max(1.0, abs(ref))


@pytest.mark.parametrize("ls,LS", [((2, 2), ()), ((1, 2, 1), (1,)), ((2, 1, 2, 1), (1, 1))])
def test_folding_rests_on_the_symmetry_of_a(ls, LS):
    """Without A_{l,−m} = (−1)^m conj(A_{l m}) the folded sum is another one: the comparison
    above sees a wrong folding."""
    a = _symmetric_a(ls, np.random.default_rng(3), symmetric=False)
    assert abs(_b(*folded_ms_combinations(ls, LS), a) - _b(*ms_combinations(ls, LS), a)) > 1e-6


def _model():
    basis = generate_basis({
        "deltaSplineBins": 0.001, "elements": ["Al", "Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
        "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 4.2,
                          "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": [2, 2, 1, 1],
                              "lmax_by_orders": [0, 2, 2, 1]}}})
    potential, params = ACE.from_bbasis(basis)
    rng = np.random.default_rng(5)
    params = jax.tree_util.tree_map(lambda v: np.asarray(v) + 0.3 * rng.normal(size=v.shape),
                                    params)
    rng = np.random.default_rng(6)
    cell = 5.2 * (np.eye(3) + rng.normal(0, 0.04, (3, 3)))
    positions = rng.uniform(0, 1, (9, 3)) @ cell
    system = make_system(positions, cell, rng.integers(0, 2, 9))
    return potential, params, system, build_neighbor_list(system, potential.cutoff, 0.0,
                                                          half=False)


def _sums(potential, params, system, nbrs):
    """(N, S, P) the sums over each atom's neighbours of each element, as
    :meth:`ACE.descriptors` forms them."""
    S = len(potential.elements)
    element, known = potential._elements_of(system.species)
    parts = potential.pair_terms(params, pair_displacements(system, nbrs),
                                 element[nbrs.i] * S + element[nbrs.j],
                                 nbrs.mask & known[nbrs.i] & known[nbrs.j])
    return jax.ops.segment_sum(parts, nbrs.i * S + element[nbrs.j],
                               num_segments=system.natoms * S).reshape(system.natoms, S, -1)


def _reference_columns(potential, summed):
    """(N, F) the B values in the tables' column order from the plain sums over every m
    combination (complex arithmetic, jnp: differentiable)."""
    K, S = potential.nradbase, len(potential.elements)
    nlm = (summed.shape[2] - K - 1) // 2
    a = (summed[:, :, K + 1:K + 1 + nlm] + 1j * summed[:, :, K + 1 + nlm:]).reshape(
        summed.shape[0], S, potential.nradmax, -1)
    functions = [f for _, funcs in potential.functions for f in funcs]
    columns = []
    for row in potential.tables.order:
        elements, ns, ls, LS, _ = functions[row]
        mus = [potential.elements.index(e) for e in elements[1:]]
        if len(ns) == 1:
            columns.append(summed[:, mus[0], ns[0] - 1])
            continue
        ms, cg = ms_combinations(tuple(ls), tuple(LS))
        lm = np.array([[lm_index(l, m) for l, m in zip(ls, row)] for row in ms.tolist()])
        factors = a[:, np.array(mus), np.array(ns) - 1, lm]  # (N, P, r)
        columns.append(jnp.real(jnp.prod(factors, axis=2) @ cg))
    return jnp.stack(columns, axis=1)


def test_basis_from_sums_equals_the_full_sum_and_its_derivatives():
    potential, params, system, nbrs = _model()
    ranks = [idx.shape[1] for idx, *_ in potential.tables.products]
    assert ranks == [2, 3, 4]
    summed = jax.jit(_sums, static_argnums=0)(potential, params, system, nbrs)
    ours, rho_core = jax.jit(potential.basis_from_sums)(summed)
    ref = jax.jit(partial(_reference_columns, potential))(summed)
    assert ours.shape == ref.shape and np.abs(ref).max() > 1.0
    assert np.abs(np.asarray(ours) - np.asarray(ref)).max() <= 1e-12 * np.abs(ref).max()
    np.testing.assert_allclose(rho_core, summed[:, :, potential.nradbase].sum(axis=1))
    # derivatives: the folded form differentiates only one of each pair ±m, the chain rule
    # through the symmetric sums gives the same forces and radial-coefficient gradient
    weights = jnp.asarray(np.random.default_rng(7).normal(size=ref.shape[1]))

    def energy(fn, positions, crad):
        p = dict(params, crad=crad)
        s = _sums(potential, p, system.replace(positions=positions), nbrs)
        b = fn(s)
        return jnp.sum(b @ weights)

    def ours_fn(s):
        return potential.basis_from_sums(s)[0]

    def ref_fn(s):
        return _reference_columns(potential, s)

    g, g_ref = (jax.jit(jax.grad(partial(energy, fn), argnums=(0, 1)))(system.positions,
                                                                        params["crad"])
                for fn in (ours_fn, ref_fn))
    for x, y in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref)):
        assert np.abs(y).max() > 0.0
        assert np.abs(np.asarray(x) - np.asarray(y)).max() <= 1e-11 * np.abs(y).max()
