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
equals tabulating the combined functions, to round-off.
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
    y = jnp.maximum(1.0 - r / bond.rcut, 0.0) ** bond.lam
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


@dataclass(frozen=True, eq=False)
class SplineTable:
    """Hermite coefficients (M + 1, F, 4) of F functions on the grid n·h; scale = 1/h."""

    coefficients: np.ndarray
    scale: float
    nodes: int


def spline_table(functions, rcut: float, delta: float) -> SplineTable:
    """Tabulate ``functions`` (r (R,) → (R, F)) as the evaluator does, up to ``rcut``."""
    nodes = int(rcut / delta)
    scale = nodes / rcut
    r = (1.0 / scale) * np.arange(nodes + 1, dtype=np.float64)
    r[0] = r[1] * 1e-3  # the first interval is never used; keep its values finite
    f, df = jax.jvp(functions, (jnp.asarray(r),), (jnp.ones(nodes + 1),))
    f0 = np.asarray(f)
    d0 = np.asarray(df) * (1.0 / scale)
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
