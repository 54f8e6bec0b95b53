"""ACE radial functions: the radial basis g_k(r) of a bond, the inner cutoff, the core
repulsion, and their cubic Hermite tabulation as the ACE evaluator (pyace, LAMMPS
``pair_style pace``) uses it.

Bases (r < r_c; zero beyond), K functions k = 0..K−1, λ = ``radparameters[0]``:

- ``ChebExpCos``: x = 1 − 2 (e^{−λr/r_c} − e^{−λ}) / (1 − e^{−λ}); g_0 = 1, g_k = ½(1 − T_k(x));
  times ½(1 + cos πr/r_c), and by ½(1 + cos π(r − r_c + d_c)/d_c) for r > r_c − d_c;
- ``ChebPow``: x = 1 − 2 (1 − r/r_c)^λ; g_k = ½(1 − T_{k+1}(x));
- ``SBessel``: the simplified spherical Bessel functions, orthogonalised by the recursion of
  Kocer et al. (J. Chem. Phys. 150, 154102 (2019)) (λ and d_c unused).

T_n are Chebyshev polynomials of the first kind.  Inner cutoff ``distance``: each g_k is
multiplied by 1 − f_in(r) with f_in the quintic step from 1 at r_in − δ_in to 0 at r_in
(:func:`poly_step`), and is zero for r ≤ r_in − δ_in.  Core repulsion (``core-repulsion:
[pre, λ_hc]``): |pre| e^{−|λ_hc| r²}/r · ½(1 + cos πr/r_c) (zero where |λ_hc| r² ≥ 50), times
f_in(r) for the ``distance`` mode.

Tabulation: the evaluator samples every function and its derivative at r_n = n·h, n = 0..M,
M = int(r_c/Δ) (Δ = ``DeltaSplineBins``), h = r_c/M, and interpolates with cubic Hermite
polynomials on [r_n, r_{n+1}] (zero for r ≥ M·h).  :func:`spline_table` builds the same table
(as coefficients c_0..c_3 of w = r/h − n) and :func:`spline_eval` evaluates it; it is linear in
the tabulated values, so tabulating g and combining with the radial coefficients afterwards
equals tabulating the combined functions, to round-off.  The node values are computed on the
host with NumPy (:func:`radial_basis_nodes`, :func:`core_repulsion_nodes`: the evaluator's
formulas, derivatives in closed form), so building a potential runs no JAX program; they
agree with the JAX functions above and their autodiff derivatives to ~10⁻¹⁵ of each
function's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

#: The B-basis files' inner_cutoff_type values (pacemaker's words, not rexfit elements).
INNER_CUTOFFS = ("distance", "density", "zbl")
ZBL_INNER = INNER_CUTOFFS[2]

#: radial bases the evaluator knows
RADIAL_BASES = ("ChebExpCos", "ChebPow", "SBessel")


@dataclass(frozen=True)
class Bond:
    """The radial setting of one ordered species pair (all floats in Å but λ).

    basis: one of :data:`RADIAL_BASES`.  lam: λ.  rcut, dcut: outer cutoff and its width.
    r_in, delta_in: inner cutoff; inner: ``distance``, ``density`` or ``zbl``.
    prehc, lambdahc: core repulsion (for ``zbl``: prehc scales the ZBL energy).  nradbase: K
    of this bond.  z: atomic numbers of the two elements (``zbl`` only).
    """

    basis: str
    lam: float
    rcut: float
    dcut: float
    r_in: float
    delta_in: float
    inner: str
    prehc: float
    lambdahc: float
    nradbase: int
    z: tuple[int, int] = (0, 0)  # nuclear charges of the pair (the zbl mode)


def poly_step(r, r_in: float, delta: float):
    """The evaluator's quintic step: 1 for r ≤ r_in − δ, 0 for r ≥ r_in, smooth between
    (r_in and δ numbers or arrays like r)."""
    if not isinstance(delta, jax.Array):
        if delta <= 0.0:
            return jnp.where(r <= r_in, 1.0, 0.0)
    else:
        delta = jnp.where(delta > 0.0, delta, 1.0)  # δ = 0: a plain step (below)
    x = 1.0 - 2.0 * (1.0 + (r - r_in) / delta)
    mid = 0.5 + 7.5 / 2.0 * (x / 4.0 - x**3 / 6.0 + x**5 / 20.0)
    return jnp.where(r <= r_in - delta, 1.0, jnp.where(r >= r_in, 0.0, mid))


def _chebyshev(x, count: int):
    """[T_0(x), …, T_{count−1}(x)]."""
    t = [jnp.ones_like(x), x]
    while len(t) < count:
        t.append(2.0 * x * t[-1] - t[-2])
    return t[:count]


def _sinc(x):
    safe = jnp.where(x == 0.0, 1.0, x)
    return jnp.where(x == 0.0, 1.0, jnp.sin(safe) / safe)


def _cheb_exp_cos(r, bond: Bond, k: int):
    y1, y2 = jnp.exp(-bond.lam * r / bond.rcut), math.exp(-bond.lam)
    x = 1.0 - 2.0 * ((y1 - y2) / (1.0 - y2))
    t = _chebyshev(x, k)
    g = [jnp.ones_like(r)] + [0.5 - 0.5 * t[n] for n in range(1, k)]
    env = 0.5 * (1.0 + jnp.cos(math.pi * r / bond.rcut))
    start = bond.rcut - bond.dcut
    fcut = jnp.where(r > start, 0.5 * (1.0 + jnp.cos(math.pi * (r - start) / bond.dcut)), 1.0)
    return [gn * env * fcut for gn in g]


def _cheb_pow(r, bond: Bond, k: int):
    y = jnp.maximum(1.0 - r / bond.rcut, 0.0)
    y = y ** (bond.lam - 1.0) * y  # (1 − r/r_c)^λ as the evaluator forms it
    t = _chebyshev(2.0 * (1.0 - y) - 1.0, k + 1)
    return [0.5 - 0.5 * t[n] for n in range(1, k + 1)]


def _sbessel(r, bond: Bond, k: int):
    rc = bond.rcut

    def f(n):
        pre = ((-1) ** n * math.sqrt(2.0) * math.pi / rc**1.5 * (n + 1) * (n + 2)
               / math.sqrt((n + 1) ** 2 + (n + 2) ** 2))
        return pre * (_sinc(r * (n + 1) * math.pi / rc) + _sinc(r * (n + 2) * math.pi / rc))

    g, d_prev = [f(0)], 1.0
    for n in range(1, k):
        e = n**2 * (n + 2) ** 2 / (4.0 * (n + 1) ** 4 + 1.0)
        d = 1.0 - e / d_prev
        g.append((f(n) + math.sqrt(e / d_prev) * g[-1]) / math.sqrt(d))
        d_prev = d
    return g


_BASES = {"ChebExpCos": _cheb_exp_cos, "ChebPow": _cheb_pow, "SBessel": _sbessel}


def radial_basis(r, bond: Bond, k: int):
    """(..., k) exact g_0..g_{k−1} of ``bond`` at distances ``r`` (...) Å, inner cutoff
    included, zero outside (r_in − δ_in, r_c)."""
    r_in = bond.r_in
    if bond.inner == ZBL_INNER:  # the evaluator's rule: no inner cutoff unless δ_in = 0 (then 1 Å)
        r_in = 1.0 if bond.delta_in == 0.0 else 0.0
    inside = (r < bond.rcut) & (r > r_in - bond.delta_in)
    rs = jnp.where(inside, r, 0.5 * bond.rcut)  # finite values (and gradients) outside
    g = jnp.stack(_BASES[bond.basis](rs, bond, k), axis=-1)
    if bond.inner in (INNER_CUTOFFS[0], ZBL_INNER):
        g = g * (1.0 - poly_step(rs, r_in, bond.delta_in))[..., None]
    return jnp.where(inside[..., None], g, 0.0)


#: e²/(4πε₀) in eV·Å as the ACE evaluator has it
COULOMB = 14.399645351950543
#: the universal ZBL screening function φ(x) = Σ c_k e^{−d_k x}
ZBL_C = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_D = (3.19980, 0.94229, 0.40290, 0.20162)


def _zbl_e(r, a, xp):
    """(e, e', e'') of e(r) = φ(r/a)/r."""
    phi = d1 = d2 = 0.0
    for c, d in zip(ZBL_C, ZBL_D):
        term = c * xp.exp(-d * r / a)
        phi, d1, d2 = phi + term, d1 - d / a * term, d2 + (d / a) ** 2 * term
    return phi / r, d1 / r - phi / r**2, d2 / r - 2.0 * d1 / r**2 + 2.0 * phi / r**3


def zbl_repulsion(r, bond: Bond):
    """(...) the ``zbl`` mode's pair term at ``r`` (...) Å (eV, half of the pair energy: each
    atom of the pair counts it): prehc · k_e/2 · Z_i Z_j [e(r) + S(r)] with the ZBL switch S
    from r_c − d_c to r_c (as LAMMPS ``pair_style zbl``), times the quintic step from 1 at
    r_c − d_c to 0 at r_c."""
    zi, zj = bond.z
    a = 0.46850 / (zi**0.23 + zj**0.23)
    lo, width = bond.rcut - bond.dcut, bond.dcut
    ec, dec, d2ec = _zbl_e(bond.rcut, a, math)
    big_a = (-3.0 * dec + width * d2ec) / width**2
    big_b = (2.0 * dec - width * d2ec) / width**3
    big_c = -ec + 0.5 * width * dec - width**2 * d2ec / 12.0
    inside = r < bond.rcut
    rs = jnp.where(inside, r, lo)
    x = jnp.maximum(rs - lo, 0.0)
    switch = big_a / 3.0 * x**3 + big_b / 4.0 * x**4 + big_c
    e = _zbl_e(rs, a, jnp)[0]
    value = bond.prehc * COULOMB / 2.0 * zi * zj * (e + switch)
    return jnp.where(inside, value * poly_step(rs, bond.rcut, width), 0.0)


def core_repulsion(r, bond: Bond):
    """(...) the exact core-repulsion term of ``bond`` at ``r`` (...) Å (eV); for the ``zbl``
    mode :func:`zbl_repulsion`."""
    if bond.inner == ZBL_INNER:
        return zbl_repulsion(r, bond)
    pre, lam = abs(bond.prehc), abs(bond.lambdahc)
    inside = (r < bond.rcut) & (lam * r * r < 50.0)
    rs = jnp.where(inside, r, 1.0)
    cr = pre * jnp.exp(-lam * rs * rs) / rs * 0.5 * (1.0 + jnp.cos(math.pi * rs / bond.rcut))
    if bond.inner == "distance":
        cr = cr * poly_step(rs, bond.r_in, bond.delta_in)
    return jnp.where(inside, cr, 0.0)


# ---------------------------------------------------------------- host (NumPy) node values
# The spline tables are built on the host in float64 with NumPy, with no JAX program: the
# values and derivatives at the nodes follow the ACE evaluator's own formulas (derivatives in
# closed form, operations in the evaluator's order), so that the tables are the evaluator's
# to round-off; :func:`radial_basis` / :func:`core_repulsion` above (JAX, differentiable) are
# the same functions (tests/potentials/test_ace_radial_tables.py checks both).  exp and pow go
# through the C library (Python's math module) as the evaluator's do: NumPy's vectorised exp
# and pow may differ from it in the last bit.


def _libm(function, x: np.ndarray) -> np.ndarray:
    """``function`` (a math-module function of one float) element by element."""
    return np.fromiter(map(function, x.ravel().tolist()), np.float64, x.size).reshape(x.shape)


def _libm_pow(x: np.ndarray, p: float) -> np.ndarray:
    return _libm(lambda v: math.pow(v, p), x)


def _poly_step_nodes(r: np.ndarray, r_in: float, delta: float):
    """(:func:`poly_step`, its derivative in r) at ``r`` (host)."""
    f = np.where(r <= r_in - delta, 1.0, 0.0)
    df = np.zeros_like(r)
    mid = (r > r_in - delta) & (r < r_in)
    if mid.any():
        x = 1.0 - 2.0 * (1.0 + (r[mid] - r_in) / delta)
        f[mid] = 0.5 + 7.5 / 2.0 * (x / 4.0 - _libm_pow(x, 3.0) / 6.0
                                    + _libm_pow(x, 5.0) / 20.0)
        df[mid] = -7.5 / delta * (0.25 - x * x / 2.0 + _libm_pow(x, 4.0) / 4.0)
    return f, df


def _chebyshev_nodes(x: np.ndarray, count: int):
    """([T_0..T_{count−1}](x), their derivatives in x), T_m' = m U_{m−1}."""
    t, u = [np.ones_like(x), x], [np.ones_like(x), 2.0 * x]
    while len(t) < count:
        t.append(2.0 * x * t[-1] - t[-2])
        u.append(2.0 * x * u[-1] - u[-2])
    dt = [np.zeros_like(x)] + [m * u[m - 1] for m in range(1, count)]
    return t[:count], dt[:count]


def _cheb_exp_cos_nodes(r, bond: Bond, k: int):
    lam, rc = bond.lam, bond.rcut
    y1, y2 = _libm(math.exp, -lam * r / rc), math.exp(-lam)
    x = 1.0 - 2.0 * ((y1 - y2) / (1.0 - y2))
    dx = 2.0 * (lam / rc) * (y1 / (1.0 - y2))
    t, dt = _chebyshev_nodes(x, k)
    g = [t[0]] + [0.5 - 0.5 * t[n] for n in range(1, k)]
    dg = [dt[0] * dx] + [-0.5 * dt[n] * dx for n in range(1, k)]
    env = 0.5 * (1.0 + np.cos(math.pi * r / rc))
    denv = -0.5 * np.sin(math.pi * r / rc) * math.pi / rc
    dg = [gn * denv + dgn * env for gn, dgn in zip(g, dg)]
    g = [gn * env for gn in g]
    start = rc - bond.dcut
    tail = r > start
    fcut = np.where(tail, 0.5 * (1.0 + np.cos(math.pi * (r - start) / bond.dcut)), 1.0)
    dfcut = np.where(tail, -0.5 * np.sin(math.pi * (r - start) / bond.dcut) * math.pi
                     / bond.dcut, 0.0)
    dg = [gn * dfcut + dgn * fcut for gn, dgn in zip(g, dg)]
    return [gn * fcut for gn in g], dg


def _cheb_pow_nodes(r, bond: Bond, k: int):
    y = 1.0 - r / bond.rcut
    dy = _libm_pow(y, bond.lam - 1.0)
    y = dy * y
    dy = -bond.lam / bond.rcut * dy
    x, dx = 2.0 * (1.0 - y) - 1.0, -2.0 * dy
    t, dt = _chebyshev_nodes(x, k + 1)
    return ([0.5 - 0.5 * t[n] for n in range(1, k + 1)],
            [-0.5 * dt[n] * dx for n in range(1, k + 1)])


def _sbessel_nodes(r, bond: Bond, k: int):
    rc = bond.rcut

    def f(n):
        pre = ((-1) ** n * math.sqrt(2.0) * math.pi / rc**1.5 * (n + 1) * (n + 2)
               / math.sqrt((n + 1) ** 2 + (n + 2) ** 2))
        value, slope = 0.0, 0.0
        for m in (n + 1, n + 2):
            x = r * m * math.pi / rc  # r > 0 at every node
            s, c = np.sin(x), np.cos(x)
            value = value + s / x
            slope = slope + (c * x - s) / (x * x) * m * math.pi / rc
        return pre * value, pre * slope

    g0, dg0 = f(0)
    g, dg, d_prev = [g0], [dg0], 1.0
    for n in range(1, k):
        e = n**2 * (n + 2) ** 2 / (4.0 * (n + 1) ** 4 + 1.0)
        d = 1.0 - e / d_prev
        fn, dfn = f(n)
        g.append(1.0 / math.sqrt(d) * (fn + math.sqrt(e / d_prev) * g[-1]))
        dg.append(1.0 / math.sqrt(d) * (dfn + math.sqrt(e / d_prev) * dg[-1]))
        d_prev = d
    return g, dg


_NODES = {"ChebExpCos": _cheb_exp_cos_nodes, "ChebPow": _cheb_pow_nodes,
          "SBessel": _sbessel_nodes}


def radial_basis_nodes(r: np.ndarray, bond: Bond, k: int):
    """(g, dg/dr), each (R, k): :func:`radial_basis` and its derivative at ``r`` (R,) Å > 0,
    computed on the host (NumPy, float64) by the evaluator's formulas."""
    r = np.asarray(r, dtype=np.float64)
    r_in = bond.r_in
    if bond.inner == ZBL_INNER:
        r_in = 1.0 if bond.delta_in == 0.0 else 0.0
    inside = (r < bond.rcut) & (r > r_in - bond.delta_in)
    rs = np.where(inside, r, 0.5 * bond.rcut)
    g, dg = (np.stack(v, axis=-1) for v in _NODES[bond.basis](rs, bond, k))
    if bond.inner in (INNER_CUTOFFS[0], ZBL_INNER):
        fc, dfc = _poly_step_nodes(rs, r_in, bond.delta_in)
        dg = dg * (1.0 - fc)[:, None] + g * (-dfc)[:, None]
        g = g * (1.0 - fc)[:, None]
    return np.where(inside[:, None], g, 0.0), np.where(inside[:, None], dg, 0.0)


def _zbl_nodes(r: np.ndarray, bond: Bond):
    """(:func:`zbl_repulsion`, its derivative) at ``r`` (host)."""
    zi, zj = bond.z
    a = 0.46850 / (zi**0.23 + zj**0.23)
    lo = bond.rcut - bond.dcut
    width = bond.rcut - lo  # the evaluator's width (d_c to round-off)

    def e(x, exp):  # (e, e', e'') of φ(x/a)/x, φ' and φ'' in x/a
        phi = d1 = d2 = 0.0
        for c, d in zip(ZBL_C, ZBL_D):
            term = c * exp(-d * (x / a))
            phi = phi + term
            term = term * -d
            d1 = d1 + term
            d2 = d2 + term * -d
        return (1.0 / x * phi, -1.0 / (x * x) * phi + 1.0 / x * d1 / a,
                2.0 / (x * x * x) * phi + 2.0 * (-1.0 / (x * x)) * d1 / a
                + 1.0 / x * d2 / (a * a))

    ec, dec, d2ec = e(bond.rcut, math.exp)
    big_a = (-3.0 * dec + width * d2ec) / (width * width)
    big_b = (2.0 * dec - width * d2ec) / (width * width * width)
    big_c = -ec + 0.5 * width * dec - 1.0 / 12.0 * (width * width) * d2ec
    inside = r < bond.rcut
    rs = np.where(inside, r, lo)
    er, der, _ = e(rs, lambda x: _libm(math.exp, x))
    x = np.maximum(rs - lo, 0.0)
    switch = np.where(rs > lo, big_a / 3.0 * _libm_pow(x, 3.0) + big_b / 4.0
                      * _libm_pow(x, 4.0) + big_c, big_c)
    dswitch = np.where(rs > lo, big_a * _libm_pow(x, 2.0) + big_b * _libm_pow(x, 3.0), 0.0)
    pre = bond.prehc * COULOMB / 2.0 * zi * zj
    value, slope = pre * (er + switch), pre * (der + dswitch)
    fc, dfc = _poly_step_nodes(rs, bond.rcut, width)
    return (np.where(inside, value * fc, 0.0),
            np.where(inside, slope * fc + value * dfc, 0.0))


def core_repulsion_nodes(r: np.ndarray, bond: Bond):
    """(V, dV/dr), each (R,): :func:`core_repulsion` and its derivative at ``r`` (R,) Å > 0,
    computed on the host (NumPy, float64) by the evaluator's formulas."""
    r = np.asarray(r, dtype=np.float64)
    if bond.inner == ZBL_INNER:
        return _zbl_nodes(r, bond)
    pre, lam = abs(bond.prehc), abs(bond.lambdahc)
    inside = (r < bond.rcut) & (lam * r * r < 50.0)
    rs = np.where(inside, r, 1.0)
    r2 = rs * rs
    lr2 = lam * r2
    y = _libm(math.exp, -lr2)
    cr = pre * y / rs
    dcr = -pre * y * (2.0 * lr2 + 1.0) / r2
    x0 = rs / bond.rcut
    env = 0.5 * (1.0 + np.cos(math.pi * x0))
    denv = -0.5 * np.sin(math.pi * x0) * math.pi / bond.rcut
    dcr = cr * denv + dcr * env
    cr = cr * env
    if bond.inner == "distance":
        fc, dfc = _poly_step_nodes(rs, bond.r_in, bond.delta_in)
        cr, dcr = cr * fc, dcr * fc + cr * dfc
    return np.where(inside, cr, 0.0), np.where(inside, dcr, 0.0)


@dataclass(frozen=True, eq=False)
class SplineTable:
    """Hermite coefficients (M + 1, F, 4) of F functions on the grid n·h; scale = 1/h."""

    coefficients: np.ndarray
    scale: float
    nodes: int


def spline_nodes(rcut: float, delta: float):
    """(r (M + 1,), M, 1/h): the evaluator's nodes n·h up to ``rcut`` for bins of ``delta``
    (r_0 = r_1 · 10⁻³: the first interval is never used; its values stay finite)."""
    nodes = int(rcut / delta)
    scale = nodes / rcut
    r = (1.0 / scale) * np.arange(nodes + 1, dtype=np.float64)
    r[0] = r[1] * 1e-3
    return r, nodes, scale


def spline_table(values_and_slopes, rcut: float, delta: float) -> SplineTable:
    """Tabulate F functions as the evaluator does, up to ``rcut``: ``values_and_slopes`` maps
    the nodes r (R,) to (values (R, F), derivatives in r (R, F)), host arrays (e.g.
    :func:`radial_basis_nodes`); no JAX program runs."""
    r, nodes, scale = spline_nodes(rcut, delta)
    f, df = values_and_slopes(r)
    f0 = np.asarray(f, dtype=np.float64)
    d0 = np.asarray(df, dtype=np.float64) * (1.0 / scale)
    f1 = np.concatenate([f0[1:], np.zeros_like(f0[:1])])
    d1 = np.concatenate([d0[1:], np.zeros_like(d0[:1])])
    c = np.stack([f0, d0, 3.0 * (f1 - f0) - d1 - 2.0 * d0, -2.0 * (f1 - f0) + d1 + d0], axis=-1)
    return SplineTable(c, scale, nodes)


def _locate(t, scale, nodes, r):
    x = r * scale
    n = jnp.clip(jnp.floor(x), 0, nodes).astype(jnp.int32)
    return n, (x - n)[:, None], (x < nodes)[:, None]


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _spline(tables, t, scale, nodes, r):
    n, w, inside = _locate(t, scale, nodes, r)
    c = jnp.asarray(tables)[t, n]
    w2 = w * w
    return jnp.where(inside, c[..., 0] + c[..., 1] * w + c[..., 2] * w2 + c[..., 3] * (w2 * w),
                     0.0)


def _spline_derivative(tables, t, scale, nodes, r):
    """d/dr of :func:`_spline` (plain JAX: differentiable again)."""
    n, w, inside = _locate(t, scale, nodes, r)
    c = jnp.asarray(tables)[t, n]
    d = (c[..., 1] + 2.0 * c[..., 2] * w + 3.0 * c[..., 3] * (w * w)) * scale[:, None]
    return jnp.where(inside, d, 0.0)


@_spline.defjvp
def _spline_jvp(tables, primals, tangents):
    t, scale, nodes, r = primals
    value = _spline(tables, t, scale, nodes, r)
    return value, _spline_derivative(tables, t, scale, nodes, r) * tangents[3][:, None]


def spline_eval(tables, t, scale, nodes, r):
    """(E, F) tabulated values at distances ``r`` (E,) of pair types ``t`` (E,), from stacked
    host tables (T, M + 1, F, 4) with scale 1/h (E,) and node count M (E,) per pair; zero for
    r ≥ M·h.  Its derivative in r is the derivative of the cubic (as the evaluator's), given
    by a custom JVP so that the backward pass keeps only dV/dr per pair, not the gathered
    coefficients; it is differentiable again."""
    return _spline(tables, t, scale, nodes, r)


def spline_value_and_slope(tables, t, scale, nodes, r):
    """(:func:`spline_eval`, its derivative in r) from one lookup of the coefficients: the
    same numbers as the value and the custom JVP's tangent (for kernels that need both)."""
    n, w, inside = _locate(t, scale, nodes, r)
    c = jnp.asarray(tables)[t, n]
    w2 = w * w
    value = c[..., 0] + c[..., 1] * w + c[..., 2] * w2 + c[..., 3] * (w2 * w)
    slope = (c[..., 1] + 2.0 * c[..., 2] * w + 3.0 * c[..., 3] * (w * w)) * scale[:, None]
    return jnp.where(inside, value, 0.0), jnp.where(inside, slope, 0.0)
