"""The fit vector ↔ parameter tree map with DOFs that are elements of array leaves (as SNAP
coefficients are): values land at their indices, untouched elements keep theirs, gradients flow
through the indexed update, and the named values read them back."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.model.potentials import ParamEntry, PotentialModel, get_path, set_path
from rexfit.objective.parameters import ParameterSpace
from rexfit.potentials.base import SumPotential


def _entry(name, path, value, fit=True):
    return ParamEntry(name, path, value, fit, None, None, False, None)


def _space():
    params = {"m": {"Mo": {"beta0": jnp.float64(-2.0),
                           "beta": jnp.asarray([0.5, 0.0, -1.5, 4.0])}}}
    entries = (_entry("m.beta0", ("m", "Mo", "beta0"), -2.0),
               _entry("m.beta[2]", ("m", "Mo", "beta", 2), -1.5),
               _entry("m.beta[0]", ("m", "Mo", "beta", 0), 0.5),
               _entry("m.beta[1]", ("m", "Mo", "beta", 1), 0.0),
               _entry("m.beta[3]", ("m", "Mo", "beta", 3), 4.0, fit=False))
    return ParameterSpace(PotentialModel(SumPotential(()), params, entries, ("Mo",)))


def test_array_element_dofs_round_trip():
    space = _space()
    np.testing.assert_allclose(space.scale, [2.0, 1.5, 0.5, 1.0])
    tree = space.tree(np.array([1.5, 2.0, -4.0, 0.25]))
    assert float(tree["m"]["Mo"]["beta0"]) == 3.0
    np.testing.assert_allclose(tree["m"]["Mo"]["beta"], [-2.0, 0.25, 3.0, 4.0])
    assert space.named_values(tree)["m.beta[2]"] == 3.0
    assert space.named_values(tree)["m.beta[3]"] == 4.0


def test_gradient_through_array_element_dofs():
    space = _space()
    weights = jnp.asarray([1.0, 10.0, 100.0, 1000.0])

    def f(u):
        tree = space.tree(u)
        return tree["m"]["Mo"]["beta0"] + jnp.sum(weights * tree["m"]["Mo"]["beta"])

    grad = jax.grad(f)(jnp.asarray(space.u0()))
    # d f / d u_k = scale_k · (weight of the element it sets)
    np.testing.assert_allclose(grad, [2.0 * 1.0, 1.5 * 100.0, 0.5 * 1.0, 1.0 * 10.0])


def test_set_path_with_an_index():
    tree = {"a": {"b": np.array([1.0, 2.0])}}
    out = set_path(tree, ("a", "b", 1), 5.0)
    np.testing.assert_allclose(out["a"]["b"], [1.0, 5.0])
    np.testing.assert_allclose(tree["a"]["b"], [1.0, 2.0])  # input unchanged
    assert float(get_path(out, ("a", "b", 1))) == 5.0
