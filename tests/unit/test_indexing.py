"""rexfit.structures.indexing: the one-hot forms give gather's and segment_sum's numbers,
values and derivatives, and large tables keep the gather and the segment sum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.structures import indexing


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    n, e = 5, 40
    index = jnp.asarray(rng.integers(0, n, e), jnp.int32)
    atoms = jnp.asarray(rng.normal(size=(n, 3)))
    pairs = jnp.asarray(rng.normal(size=(e, 3)))
    return n, index, atoms, pairs


def _primitives(fun, *args):
    return {eqn.primitive.name for eqn in jax.make_jaxpr(fun)(*args).jaxpr.eqns}


def test_take_matches_gather_values_and_derivatives(data):
    n, index, atoms, _ = data
    np.testing.assert_array_equal(indexing.take(atoms, index), atoms[index])
    cot = jnp.asarray(np.random.default_rng(1).normal(size=(index.shape[0], 3)))
    _, pull = jax.vjp(lambda a: indexing.take(a, index), atoms)
    _, pull_ref = jax.vjp(lambda a: a[index], atoms)
    np.testing.assert_allclose(pull(cot)[0], pull_ref(cot)[0], rtol=1e-14, atol=1e-15)
    assert "gather" not in _primitives(lambda a: indexing.take(a, index), atoms)


def test_segment_sum_matches_values_and_derivatives(data):
    n, index, _, pairs = data
    ref = jax.ops.segment_sum(pairs, index, num_segments=n)
    np.testing.assert_allclose(indexing.segment_sum(pairs, index, n), ref, rtol=1e-14,
                               atol=1e-15)
    f = lambda v: jnp.sum(jnp.sin(indexing.segment_sum(v, index, n)) ** 2)  # noqa: E731
    g = lambda v: jnp.sum(jnp.sin(jax.ops.segment_sum(v, index, num_segments=n)) ** 2)  # noqa: E731
    np.testing.assert_allclose(jax.grad(f)(pairs), jax.grad(g)(pairs), rtol=1e-13, atol=1e-15)
    hess = jax.jacfwd(jax.grad(f))(pairs[:, 0].reshape(-1, 1))
    hess_ref = jax.jacfwd(jax.grad(g))(pairs[:, 0].reshape(-1, 1))
    np.testing.assert_allclose(hess, hess_ref, rtol=1e-12, atol=1e-14)
    # no scatter in the program nor in its derivative
    assert not {"scatter-add", "scatter_add"} & _primitives(jax.grad(f), pairs)


def test_products_in_the_program_and_integer_tables_exact():
    """Floating tables move by one-hot matrix products (dot_general, no select of every
    entry against every slot); integer tables by an exact select."""
    atoms = jnp.asarray([[1.0, 2.0], [5.0, 6.0], [3.0, 4.0]])
    index = jnp.asarray([0, 2, 2, 0, 1], jnp.int32)
    assert "dot_general" in _primitives(lambda a: indexing.take(a, index), atoms)
    assert "select_n" not in _primitives(lambda a: indexing.take(a, index), atoms)
    values = jnp.asarray([1.0, 7.0, 2.0, 0.5, 3.0])
    assert "dot_general" in _primitives(lambda v: indexing.segment_sum(v, index, 3), values)
    species = jnp.asarray([3, -2, 7], jnp.int32)
    np.testing.assert_array_equal(indexing.take(species, index), species[index])
    np.testing.assert_array_equal(indexing.segment_sum(species[index], index, 3),
                                  jax.ops.segment_sum(species[index], index, num_segments=3))


def test_a_non_finite_row_taken_stays_non_finite():
    """A relaxation that failed leaves nan in its positions: what is taken from them is not
    finite (the structure is reported as failed), never silently zero."""
    atoms = jnp.asarray([[1.0, 2.0], [jnp.nan, 0.0], [3.0, 4.0]])
    taken = indexing.take(atoms, jnp.asarray([1, 2], jnp.int32))
    assert np.isnan(np.asarray(taken)[0, 0])
    assert not np.all(np.isfinite(indexing.segment_sum(atoms, jnp.asarray([0, 0, 1]), 2)))


def test_large_tables_keep_gather_and_segment_sum(monkeypatch, data):
    n, index, atoms, pairs = data
    monkeypatch.setattr(indexing, "ONE_HOT_LIMIT", 0)
    assert "gather" in _primitives(lambda a: indexing.take(a, index), atoms)
    assert "scatter-add" in _primitives(lambda v: indexing.segment_sum(v, index, n), pairs)


def test_a_larger_limit_takes_products_for_larger_tables(monkeypatch, data):
    """Callers may allow larger tables (Tersoff's triplets): floating values by products,
    with gather's numbers; integer tables keep the gather beyond the default limit."""
    n, index, atoms, pairs = data
    monkeypatch.setattr(indexing, "ONE_HOT_LIMIT", 0)
    big = 1 << 17
    assert "gather" not in _primitives(lambda a: indexing.take(a, index, big), atoms)
    np.testing.assert_array_equal(indexing.take(atoms, index, big), atoms[index])
    np.testing.assert_allclose(indexing.segment_sum(pairs, index, n, big),
                               jax.ops.segment_sum(pairs, index, num_segments=n),
                               rtol=1e-14, atol=1e-15)
    assert "scatter-add" not in _primitives(lambda v: indexing.segment_sum(v, index, n, big),
                                            pairs)
    species = jnp.asarray(np.arange(n), jnp.int32)
    assert "gather" in _primitives(lambda s: indexing.take(s, index, big), species)
