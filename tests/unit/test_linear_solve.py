"""<linear-solve>'s check that the residuals are affine, on residual functions built here."""

from __future__ import annotations

import numpy as np
import pytest

from rexfit.errors import InputErrors, Origin
from rexfit.fit.methods import linear_solve
from rexfit.job.spec import MinimizerSpec

SPEC = MinimizerSpec("linear-solve", (), Origin("job.xml", 3))


def _solve(residuals, u0):
    n = len(u0)
    return linear_solve(SPEC, residuals, u0, np.ones(n), np.full(n, -np.inf),
                        np.full(n, np.inf), lambda u: None)


def _affine(jac, target):
    return lambda u: (jac @ u - target, jac)


def test_a_fit_that_starts_at_its_solution_is_solved():
    """Exact data, start at the solution: the residuals are round-off, which alone is no
    scale for the affinity check (the linear part they are differences of is)."""
    rng = np.random.default_rng(3)
    jac = rng.normal(size=(40, 5)) * 10.0 ** rng.integers(-2, 3, size=5)
    truth = rng.normal(size=5)
    target = jac @ truth
    out = _solve(_affine(jac, target), truth.copy())
    np.testing.assert_allclose(out.u, truth, rtol=1e-12)
    out = _solve(_affine(jac, target), truth + 0.3)  # and from elsewhere
    np.testing.assert_allclose(out.u, truth, rtol=1e-10)


def test_residuals_that_are_not_affine_are_refused():
    jac = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])

    def curved(u):
        return jac @ u + np.array([0.0, 0.0, u[0] ** 2]) - 1.0, jac

    with pytest.raises(InputErrors, match="not affine"):
        _solve(curved, np.array([0.0, 0.0]))
