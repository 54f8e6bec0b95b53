"""Atomic neural networks: the energy equals a plain NumPy forward pass of the per-element
networks on the descriptor rows; forces, stress and weight gradients agree with finite
differences; model files round-trip exactly; initial weights are reproducible from the seed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.descriptors.acsf import ACSF
from rexfit.descriptors.lsp import LSP
from rexfit.export.nn import write_model
from rexfit.physics.properties import evaluate
from rexfit.potentials.neural_network import NeuralNetwork, feature_statistics
from rexfit.potentials.nn_files import read_model
from rexfit.structures.system import make_system
from rexfit.potentials.lists import build_lists
from tests.support.fd import check_forces_and_stress
from tests.support.structures import crystal

DESCRIPTORS = {
    "acsf": ACSF(4.2, g2=((0.1, 0.0), (1.0, 2.0)), g4=((0.05, 1.0, 1.0),),
                 g5=((0.1, 2.0, -1.0),), n_elements=2),
    "lsp": LSP((2.3, 3.1, 3.8), 0.6, 4.2, 0.8, (0, 1, 2), weights=(1.0, 0.8)),
}


def _case(kind, activation="tanh"):
    model = NeuralNetwork(DESCRIPTORS[kind], ("Si", "C"), (6, 4), activation)
    params = model.initial_params(seed=3, energy_shift=-4.0)
    rng = np.random.default_rng(5)
    for e in model.elements:  # non-trivial normalisation and biases
        params[e] = dict(params[e], mean=jnp.asarray(rng.normal(0, 0.1, model.descriptor.n_features)),
                         std=jnp.asarray(rng.uniform(0.5, 2.0, model.descriptor.n_features)),
                         b1=jnp.asarray(rng.normal(0, 0.1, 6)))
    pos, cell, _ = crystal("Si", 4.6, seed=11, strain=0.04, rattle=0.15, cubic=False)
    pos = np.vstack([pos, pos[:1] + np.array([0.9, 0.4, 0.3])])
    system = make_system(pos, cell, np.array([0, 1, 1]))
    return model, params, system, build_lists(model, system, 0.3)


def _numpy_energy(model, params, rows, species):
    act = {"tanh": np.tanh, "softplus": lambda x: np.log1p(np.exp(x)),
           "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "linear": lambda x: x}[model.activation]
    widths = (rows.shape[1],) + model.hidden
    total = 0.0
    for row, s in zip(rows, species):
        p = {k: np.asarray(v) for k, v in params[model.elements[s]].items()}
        h = (row - p["mean"]) / p["std"]
        for k in range(1, len(widths)):
            h = act(h @ p[f"w{k}"].reshape(widths[k - 1], widths[k]) + p[f"b{k}"])
        total += h @ p["out"] + float(p["bias"])
    return total


@pytest.mark.parametrize("kind, activation", [("acsf", "tanh"), ("lsp", "softplus"),
                                              ("acsf", "sigmoid")])
def test_energy_equals_numpy_forward_pass(kind, activation):
    model, params, system, nbrs = _case(kind, activation)
    rows = np.asarray(model.descriptor.features(system, nbrs))
    expected = _numpy_energy(model, params, rows, np.asarray(system.species))
    assert float(model.energy(params, system, nbrs)) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("kind", sorted(DESCRIPTORS))
def test_forces_stress_and_weight_gradients_match_finite_differences(kind):
    model, params, system, nbrs = _case(kind)
    check_forces_and_stress(model, params, system, nbrs)

    def loss(p):
        out = evaluate(model, p, system, nbrs)
        return out.energy ** 2 + jnp.sum(out.forces ** 2)

    grad = jax.jit(jax.grad(loss))(params)
    for e in model.elements:
        for leaf in ("w1", "b2", "out", "bias"):
            size = int(np.size(params[e][leaf]))
            for k in sorted({0, size // 2, size - 1}):
                def shifted(d, e=e, leaf=leaf, k=k):
                    q = {el: dict(v) for el, v in params.items()}
                    value = jnp.asarray(q[e][leaf])
                    q[e][leaf] = value + d if value.ndim == 0 else value.at[k].add(d)
                    return float(loss(q))
                fd = (shifted(1e-6) - shifted(-1e-6)) / 2e-6
                g = np.asarray(grad[e][leaf]).reshape(-1)[k]
                assert g == pytest.approx(fd, rel=1e-6, abs=1e-8), (e, leaf, k)


def test_model_file_round_trip_and_seed(tmp_path):
    model, params, system, nbrs = _case("acsf")
    write_model(tmp_path / "nn.json", model, params, "test")
    again, loaded = read_model(tmp_path / "nn.json")
    assert again == model
    assert float(again.energy(loaded, system, nbrs)) == float(model.energy(params, system, nbrs))
    a = model.initial_params(seed=7)
    b = model.initial_params(seed=7)
    c = model.initial_params(seed=8)
    np.testing.assert_array_equal(a["Si"]["w1"], b["Si"]["w1"])
    assert not np.array_equal(a["Si"]["w1"], c["Si"]["w1"])
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="bad.json: not a rexfit neural-network file"):
        read_model(tmp_path / "bad.json")


def test_feature_statistics_guard_constant_columns():
    rows = np.array([[1.0, 5.0], [3.0, 5.0]])
    mean, std = feature_statistics(rows)
    np.testing.assert_allclose(mean, [2.0, 5.0])
    assert std[0] == pytest.approx(1.0) and 0 < std[1] < 1e-6
