"""Forces, stress and parameter gradients against central finite differences of the energy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.physics.properties import evaluate
from rexfit.physics.strain import deform, voigt_to_strain
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system
from tests.support.structures import make_cases

MODELS = ["Cu_mishin1", "FeP_fs", "CuAg_u3"]  # setfl, eam/fs, multi-file funcfl


def _setup(eam_models, model, case_name="strained_triclinic"):
    potential, params, _, _, ntypes = eam_models[model]
    case = {c.name: c for c in make_cases(ntypes=ntypes, seed=5)}[case_name]
    system = make_system(case.positions, case.cell, case.species, case.pbc)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.5)
    return potential, params, system, nbrs


@pytest.mark.parametrize("model", MODELS)
def test_forces_and_stress_match_finite_differences(eam_models, model):
    potential, params, system, nbrs = _setup(eam_models, model)
    ev = evaluate(potential, params, system, nbrs)

    @jax.jit
    def e_pos(x):
        return potential.energy(params, system.replace(positions=x), nbrs)

    @jax.jit
    def e_strain(voigt):
        return potential.energy(params, deform(system, voigt_to_strain(voigt)), nbrs)

    h = 1e-5
    x0 = np.asarray(system.positions)
    fd = np.zeros_like(x0)
    for a in range(x0.shape[0]):
        for k in range(3):
            step = np.zeros_like(x0)
            step[a, k] = h
            fd[a, k] = -(float(e_pos(x0 + step)) - float(e_pos(x0 - step))) / (2 * h)
    np.testing.assert_allclose(ev.forces, fd, atol=2e-7)

    volume = float(system.volume)
    fd_stress = np.zeros(6)
    for i in range(6):
        step = np.zeros(6)
        step[i] = h
        fd_stress[i] = (float(e_strain(step)) - float(e_strain(-step))) / (2 * h) / volume
    np.testing.assert_allclose(ev.stress, fd_stress, atol=1e-9)  # eV/Å³ (1.6e-7 GPa)


@pytest.mark.parametrize("model", MODELS)
def test_parameter_gradients_match_finite_differences(eam_models, model):
    potential, params, system, nbrs = _setup(eam_models, model, "two_atom_small")
    e = jax.jit(lambda p: potential.energy(p, system, nbrs))
    grad = jax.grad(e)(params)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    grad_leaves = treedef.flatten_up_to(grad)
    checked = 0
    for (path, values), g in zip(leaves, grad_leaves):
        g = np.asarray(g)
        if not np.any(g):
            continue
        for k in np.argsort(-np.abs(g))[:2]:  # the table entries the energy depends on most
            h = 1e-6 * max(1.0, abs(float(values[k])))

            def shifted(delta, path=path, k=k):
                def at(p, leaf):
                    return leaf.at[k].add(delta) if p == path else leaf
                return jax.tree_util.tree_map_with_path(at, params)

            fd = (float(e(shifted(h))) - float(e(shifted(-h)))) / (2 * h)
            assert g[k] == pytest.approx(fd, rel=1e-6, abs=1e-9), jax.tree_util.keystr(path)
            checked += 1
    assert checked >= 6


def test_gradient_is_finite_with_padding_and_at_table_edges(eam_models):
    potential, params, *_ = eam_models["Cu_mishin1"]
    # atoms nearly at the cutoff and a padding pair: no NaN/inf may leak into gradients
    r = potential.cutoff - 1e-7
    system = make_system([[0, 0, 0], [r, 0, 0]], np.zeros((3, 3)), pbc=(False,) * 3)
    nbrs = build_neighbor_list(system, potential.cutoff, 0.0)
    g = jax.jit(jax.grad(lambda p, x: potential.energy(p, system.replace(positions=x), nbrs),
                         argnums=(0, 1)))(params, system.positions)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(g))
