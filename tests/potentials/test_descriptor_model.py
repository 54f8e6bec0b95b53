"""Quadratic descriptor models on the power spectrum and the embedded-atom density: forces,
stress and parameter gradients against central finite differences, and the quadratic term
against a plain NumPy evaluation of ½ BᵀΓB from the descriptor rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.descriptors.ead import EAD
from rexfit.descriptors.power_spectrum import PowerSpectrum
from rexfit.physics.properties import evaluate
from rexfit.potentials.snap import DescriptorModel
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system
from tests.support.fd import check_forces_and_stress
from tests.support.structures import crystal

DESCRIPTORS = {
    "power-spectrum": PowerSpectrum(3, 2, 4.2, weights=(1.0, 0.7), alpha=1.5),
    "ead": EAD(2, (0.4, 1.1), (0.0, 1.5), 4.2, weights=(1.0, 0.7)),
}


def _case(kind):
    model = DescriptorModel(DESCRIPTORS[kind], ("Si", "C"), quadratic=True)
    shapes = model.parameter_shapes()
    rng = np.random.default_rng(3)
    params = {e: {"beta0": jnp.float64(rng.normal()),
                  "beta": jnp.asarray(rng.normal(0, 0.1, shapes["beta"])),
                  "gamma": jnp.asarray(rng.normal(0, 0.01, shapes["gamma"]))}
              for e in model.elements}
    pos, cell, _ = crystal("Si", 4.4, seed=11, strain=0.04, rattle=0.15, cubic=False)
    species = np.array([0, 1])
    system = make_system(pos, cell, species)
    nbrs = build_neighbor_list(system, model.cutoff, 0.3, half=False)
    return model, params, system, nbrs


@pytest.mark.parametrize("kind", sorted(DESCRIPTORS))
def test_quadratic_term_equals_numpy(kind):
    model, params, system, nbrs = _case(kind)
    b = np.asarray(model.descriptor.features(system, nbrs))
    k = b.shape[1]
    expected = 0.0
    for atom, s in enumerate(np.asarray(system.species)):
        p = params[model.elements[s]]
        gamma = np.zeros((k, k))
        gamma[np.triu_indices(k)] = np.asarray(p["gamma"])
        full = gamma + gamma.T - np.diag(np.diag(gamma))  # ½ Bᵀ full B = Σ_{k≤l} γ_kl q_kl
        expected += (float(p["beta0"]) + b[atom] @ np.asarray(p["beta"])
                     + 0.5 * b[atom] @ full @ b[atom])
    assert float(model.energy(params, system, nbrs)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kind", sorted(DESCRIPTORS))
def test_forces_stress_and_parameter_gradients_match_finite_differences(kind):
    model, params, system, nbrs = _case(kind)
    check_forces_and_stress(model, params, system, nbrs)

    # gradient of a force loss with respect to the coefficients (reverse over reverse)
    def loss(p):
        return jnp.sum(evaluate(model, p, system, nbrs).forces ** 2)

    grad = jax.jit(jax.grad(loss))(params)
    for e in model.elements:
        for name in ("beta", "gamma"):
            for k in (0, len(params[e][name]) // 2, len(params[e][name]) - 1):
                def shifted(d, e=e, name=name, k=k):
                    q = {el: dict(v) for el, v in params.items()}
                    q[e][name] = q[e][name].at[k].add(d)
                    return float(loss(q))
                step = 1e-6
                fd = (shifted(step) - shifted(-step)) / (2 * step)
                assert float(grad[e][name][k]) == pytest.approx(fd, rel=1e-6, abs=1e-9), \
                    (e, name, k)
