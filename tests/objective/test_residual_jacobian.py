"""The residual Jacobian of ``<least-squares>`` (issue 16): structures whose parameter tree is
small get ∂r/∂params in forward mode (one batched tangent per parameter) instead of one reverse
pass per residual row. Both must give the same pytree, and it must match central differences
of the residual vector (every structure re-relaxed at each displaced parameter set).

The job (tests/objective/test_gradient.py) fits lattice parameters, energies and clamped- and
relaxed-ion elastic constants through relaxed lattice parameters, c/a, atom coordinates and
cell shapes; every property has a squared residual style.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from rexfit.job import load_job
from rexfit.model.potentials import build_potentials
from rexfit.objective import terms
from rexfit.objective.objective import Objective
from rexfit.objective.parameters import ParameterSpace
from rexfit.physics.relax import relax
from tests.objective.test_gradient import make_job


@pytest.fixture(scope="module")
def objective(tmp_path_factory):
    path = make_job(tmp_path_factory.mktemp("lsq"))
    text = path.read_text().replace(
        '<pressure fit="true" target="0.5" residual-style="absolute-diff" tolerance="0.1"/>',
        '<pressure fit="true" target="0.5" tolerance="0.1"/>')
    text = text.replace('<BFGS max-iter="1"/>', '<least-squares max-iter="1"/>')
    path.write_text(text)
    job, _ = load_job(str(path))
    pm = build_potentials(job)
    obj = Objective(job, ParameterSpace(pm, job.constraints))
    assert obj.least_squares_ready() is None
    return obj


def _reverse(key, data, params, x_star, free, nbrs):
    """The former implementation: one reverse pass per residual row."""
    r = terms._term_residuals(key, data, params, x_star, free, nbrs)
    return r, jax.jacrev(terms._term_residuals, argnums=2)(key, data, params, x_star, free,
                                                           nbrs)


def test_forward_jacobian_is_the_reverse_one(objective):
    assert objective.space.size <= terms.FORWARD_JACOBIAN_LIMIT
    u = objective.space.u0() * np.array([1.01, 0.99, 1.02, 0.98])
    tree = objective.space.tree(u)
    forward = jax.jit(terms._residuals_and_jacobian, static_argnums=0)
    reverse = jax.jit(_reverse, static_argnums=0)
    # two structures whose residuals nest the most (relaxed c/a and atoms with C33; relaxed
    # cell shape): each reverse-mode program takes 5-10 s to compile; every structure's
    # forward Jacobian is checked against central differences below
    for sid, term in objective.terms.items():
        if sid not in ("hcp", "sheared"):
            continue
        r = relax(term.problem, term.potential, tree)
        assert r.converged, (sid, r.message)
        args = (term.key, term.data, tree, r.x, r.free, r.nbrs)
        rf, jf = forward(*args)
        rr, jr = reverse(*args)
        np.testing.assert_allclose(rf, rr, rtol=1e-13, atol=1e-13)
        assert jax.tree.structure(jf) == jax.tree.structure(jr)
        for a, b in zip(jax.tree.leaves(jf), jax.tree.leaves(jr)):
            assert a.shape == b.shape
            scale = np.abs(np.asarray(b)).max() + 1e-300
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11 * scale, err_msg=sid)


def test_residual_jacobian_matches_central_differences(objective):
    u = objective.space.u0() * np.array([1.01, 0.99, 1.02, 0.98])
    objective._state.clear()
    r, jac = objective.residuals(u)
    assert jac.shape == (r.size, objective.space.size)
    assert np.abs(jac).max() > 0
    h = 1e-5
    for k in range(objective.space.size):
        up, um = u.copy(), u.copy()
        up[k] += h
        um[k] -= h
        objective._state.clear()
        rp = objective.residuals(up)[0]
        objective._state.clear()
        rm = objective.residuals(um)[0]
        fd = (rp - rm) / (2 * h)
        np.testing.assert_allclose(jac[:, k], fd, rtol=1e-5, atol=1e-6 * np.abs(jac).max(),
                                   err_msg=f"column {k}")
