"""Function library against independent NumPy/SciPy evaluations of the documented formulas,
cutoff and screening behaviour, and exact derivatives against finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from rexfit import expr as ex
from rexfit.potentials.functions import Analytic, Combination, Poly, Spline, UserFunction

R = np.linspace(0.8, 7.0, 57)


def inside(r, rc, fn):
    """fn(r) where r < rc, else 0, evaluating fn only inside (NumPy reference)."""
    out = np.zeros_like(r)
    m = r < rc
    out[m] = fn(r[m])
    return out


def p(**kw):
    return {k: jnp.float64(v) for k, v in kw.items()}


ANALYTIC_CASES = {
    "constant": (p(const=1.7), None, lambda r: 1.7 + 0 * r),
    "morse-A": (p(D0=0.5, r0=2.5, alpha=1.3), None,
                lambda r: 0.5 * (np.exp(-2 * 1.3 * (r - 2.5)) - 2 * np.exp(-1.3 * (r - 2.5)))),
    "morse-B": (p(D0=3.0, r0=2.2, beta=1.4, S=1.8, delta=0.1), None,
                lambda r: 3.0 / 0.8 * np.exp(-1.4 * np.sqrt(3.6) * (r - 2.2))
                - 1.8 * 3.0 / 0.8 * np.exp(-1.4 * np.sqrt(2 / 1.8) * (r - 2.2)) + 0.1),
    "morse-C": (p(A=50.0, B=3.0, mu=0.9, **{"lambda": 2.1}, delta=-0.2), None,
                lambda r: 50 * np.exp(-2.1 * r) - 3 * np.exp(-0.9 * r) - 0.2),
    "gaussian": (p(prefactor=0.7, eta=1.5, mu=2.0), None,
                 lambda r: 0.7 * np.exp(-1.5 * (r - 2.0) ** 2)),
    "exp-A": (p(), 6.0, lambda r: inside(r, 6.0, lambda x: np.exp(1 / (x - 6) + 1 / 6))),
    "XpowN-cutoff": (p(h=3.0, N=4.0), 6.5,
                     lambda r: inside(r, 6.5, lambda x: 1 - 1 / (1 + ((x - 6.5) / 3) ** 4))),
    "RsMinusRPowN": (p(S=2.0, rs=4.0, N=3.0), None,
                     lambda r: np.where(r < 4, 2 * np.clip(4 - r, 0, None) ** 3, 0)),
    "exp-gaussian": (p(stddev=1.2, alpha=0.8, exponent=4.0), 5.0,
                     lambda r: inside(r, 5.0, lambda x: np.exp(-x**2 / (2 * 1.44))
                                      / (1.2 * np.sqrt(2 * np.pi)) * np.exp(-0.8 / (1 - (x / 5) ** 4)))),
}


@pytest.mark.parametrize("kind", sorted(ANALYTIC_CASES))
def test_analytic_values(kind):
    params, cutoff, ref = ANALYTIC_CASES[kind]
    f = Analytic(cutoff=cutoff, screening=None, kind=kind)
    np.testing.assert_allclose(np.asarray(f(params, R)), ref(R), rtol=1e-12, atol=1e-15)


def test_exp_b_is_one_inside_and_zero_beyond():
    f = Analytic(cutoff=5.0, screening=None, kind="exp-B")
    prm = p(rc=3.0, alpha=1.0, exponent=-3.0)
    ref = inside(R, 5.0, lambda r: np.where(
        r <= 3, 1.0, np.exp(1.0 / (1 - np.maximum((r - 3.0) / 2.0, 1e-3) ** -3.0))))
    np.testing.assert_allclose(np.asarray(f(prm, R)), ref, rtol=1e-12)


def test_user_function_with_screening_matches_formula():
    scr = UserFunction(cutoff=6.5, screening=None,
                       expression=ex.parse("1 - 1/(1 + ((r - cutoff) / h)^4)"), param_names=("h",))
    f = UserFunction(cutoff=None, screening=scr, expression=ex.parse("A * exp(-lambda * r)"),
                     param_names=("A", "lambda"))
    prm = {"A": 500.0, "lambda": 2.73, "screening": {"h": 3.0}}
    ref = 500 * np.exp(-2.73 * R) * np.where(R < 6.5, 1 - 1 / (1 + ((R - 6.5) / 3) ** 4), 0)
    np.testing.assert_allclose(np.asarray(f(prm, R)), ref, rtol=1e-13)
    assert f.reach == 6.5


def test_spline_matches_scipy_clamped_spline():
    knots = (1.0, 2.0, 3.5, 4.0, 5.5)
    ys = [2.0, 0.5, -0.3, -0.2, 0.0]
    f = Spline(cutoff=None, screening=None, knots=knots)
    prm = {f"node[{k:g}].y": y for k, y in zip(knots, ys)}
    prm.update({"derivative-left": -3.0, "derivative-right": 0.0})
    ref = CubicSpline(knots, ys, bc_type=((1, -3.0), (1, 0.0)))
    x = np.linspace(1.0, 5.5, 41)
    np.testing.assert_allclose(np.asarray(f(prm, x)), ref(x), rtol=1e-12, atol=1e-14)
    # Linear extrapolation with the end derivatives.
    np.testing.assert_allclose(np.asarray(f(prm, np.array([0.5, 6.0]))), [2.0 + 1.5, 0.0])


def test_poly_sum_product():
    poly = Poly(cutoff=None, screening=None, powers=(0, 2))
    g = Analytic(cutoff=None, screening=None, kind="gaussian")
    pp = {"coeff[0]": 1.5, "coeff[2]": -0.25}
    gp = p(prefactor=2.0, eta=0.5, mu=1.0)
    s = Combination(cutoff=None, screening=None, parts=(poly, g))
    m = Combination(cutoff=None, screening=None, parts=(poly, g), product=True)
    ref_poly = 1.5 - 0.25 * R**2
    ref_g = 2.0 * np.exp(-0.5 * (R - 1) ** 2)
    np.testing.assert_allclose(np.asarray(s({"f0": pp, "f1": gp}, R)), ref_poly + ref_g, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(m({"f0": pp, "f1": gp}, R)), ref_poly * ref_g, rtol=1e-13)


@pytest.mark.parametrize("kind", sorted(ANALYTIC_CASES))
def test_derivatives_finite_and_match_finite_differences(kind):
    params, cutoff, _ = ANALYTIC_CASES[kind]
    f = Analytic(cutoff=cutoff, screening=None, kind=kind)
    grad = jax.vmap(jax.grad(lambda r: f(params, r)))
    x = R[(R > 1.0) & (R < 6.9)]
    x = x[np.all(np.abs(x[:, None] - np.array([4.0, 5.0, 6.0, 6.5])) > 1e-3, axis=1)]
    g = np.asarray(grad(x))
    assert np.all(np.isfinite(g))
    h = 1e-6
    fd = (np.asarray(f(params, x + h)) - np.asarray(f(params, x - h))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    # The gradient at and beyond the cutoff is finite (zero), never NaN.
    if cutoff is not None:
        gc = np.asarray(grad(np.array([cutoff, cutoff + 0.5])))
        assert np.all(gc == 0.0)


def test_parameter_gradients_match_finite_differences():
    f = Analytic(cutoff=None, screening=None, kind="morse-B")
    params = p(D0=3.0, r0=2.2, beta=1.4, S=1.8, delta=0.1)
    total = lambda prm: jnp.sum(f(prm, jnp.asarray(R)))
    g = jax.grad(total)(params)
    for name in params:
        h = 1e-6
        up = dict(params, **{name: params[name] + h})
        dn = dict(params, **{name: params[name] - h})
        fd = (total(up) - total(dn)) / (2 * h)
        np.testing.assert_allclose(float(g[name]), float(fd), rtol=1e-6)
