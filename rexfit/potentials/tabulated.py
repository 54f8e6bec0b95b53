"""Tabulated EAM functions interpolated exactly as LAMMPS ``pair_style eam`` does.

LAMMPS turns each table f_1..f_n (grid x_k = (k−1)·δ) into per-interval cubics: slopes are
estimated as f_2−f_1 and (f_3−f_1)/2 near the ends and by the 4th-order central difference
[(f_{k−2} − f_{k+2}) + 8(f_{k+1} − f_{k−1})]/12 inside; each interval is then the cubic
Hermite polynomial through its two end values and slopes.  A point x is looked up with
p = x/δ + 1, m = clamp(⌊p⌋, 1, n−1), p ← min(p − m, 1), so beyond the grid the last
interval's end value is used; the embedding function adds the linear term F'(ρ_max)(ρ − ρ_max)
above ρ_max.  LAMMPS's forces use the cubic's derivative at the clamped p; the custom JVP
below reproduces that, so forces equal LAMMPS's even where it differs from the energy's slope.
The tabulated values are the parameters (params = {"values": (n,)}); the grid is static.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from rexfit.potentials.base import Params

#: LAMMPS funcfl conversion of Z_i Z_j (in Hartree·Bohr units) to r·φ (eV·Å): 27.2·0.529.
FUNCFL_ZZ_TO_EV_ANGSTROM = 27.2 * 0.529


def spline_coefficients(values: jax.Array) -> jax.Array:
    """(n, 4) per-interval cubic coefficients [c3, c2, c1, c0] of LAMMPS's interpolation.

    On interval k (0-based), f(p) = ((c3 p + c2) p + c1) p + c0 for p ∈ [0, 1]; needs n ≥ 5.
    """
    f = jnp.asarray(values, dtype=jnp.float64)
    n = f.shape[0]
    if n < 5:
        raise ValueError(f"a LAMMPS EAM table needs at least 5 points, got {n}")
    inner = ((f[:-4] - f[4:]) + 8.0 * (f[3:-1] - f[1:-3])) / 12.0
    slope = jnp.concatenate(
        [
            (f[1] - f[0])[None],
            (0.5 * (f[2] - f[0]))[None],
            inner,
            (0.5 * (f[-1] - f[-3]))[None],
            (f[-1] - f[-2])[None],
        ]
    )
    df = f[1:] - f[:-1]
    c2 = jnp.concatenate([3.0 * df - 2.0 * slope[:-1] - slope[1:], jnp.zeros(1)])
    c3 = jnp.concatenate([slope[:-1] + slope[1:] - 2.0 * df, jnp.zeros(1)])
    return jnp.stack([c3, c2, slope, f], axis=1)


@dataclass(frozen=True)
class _Grid:
    """Static description of a table grid: n points spaced ``delta``; optional ρ_max."""

    n: int
    delta: float
    extrapolate_above: float | None


def _locate(grid: _Grid, x: jax.Array):
    """LAMMPS's lookup: interval index k (0-based) and local coordinate p ∈ (−∞, 1]."""
    p = x * (1.0 / grid.delta) + 1.0
    m = jnp.clip(jnp.floor(p), 1, grid.n - 1)
    p = jnp.minimum(p - m, 1.0)
    return (m - 1).astype(jnp.int32), p


def _value(grid: _Grid, coef: jax.Array, x: jax.Array) -> jax.Array:
    k, p = _locate(grid, x)
    c = coef[k]
    return ((c[..., 0] * p + c[..., 1]) * p + c[..., 2]) * p + c[..., 3]


def _slope(grid: _Grid, coef: jax.Array, x: jax.Array) -> jax.Array:
    """df/dx at the clamped p, with LAMMPS's operation order."""
    k, p = _locate(grid, x)
    c = coef[k]
    d0 = 3.0 * c[..., 0] / grid.delta
    d1 = 2.0 * c[..., 1] / grid.delta
    d2 = c[..., 2] / grid.delta
    return (d0 * p + d1) * p + d2


def _interpolate_plain(grid: _Grid, coef: jax.Array, x: jax.Array) -> jax.Array:
    value = _value(grid, coef, x)
    if grid.extrapolate_above is not None:
        excess = x - grid.extrapolate_above
        value = value + jnp.where(excess > 0.0, _slope(grid, coef, x) * excess, 0.0)
    return value


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def interpolate(grid: _Grid, coef: jax.Array, x: jax.Array) -> jax.Array:
    """Table value at x (any shape) from :func:`spline_coefficients`; d/dx as LAMMPS."""
    return _interpolate_plain(grid, coef, x)


@interpolate.defjvp
def _interpolate_jvp(grid, primals, tangents):
    coef, x = primals
    dcoef, dx = tangents
    value = _interpolate_plain(grid, coef, x)
    return value, _interpolate_plain(grid, dcoef, x) + _slope(grid, coef, x) * dx


@dataclass(frozen=True)
class LammpsTable:
    """f(x) tabulated at x_k = k·delta (k = 0..n−1), LAMMPS eam interpolation.

    params: {"values": (n,)}.  ``extrapolate_above`` (ρ_max, embedding functions only) adds
    LAMMPS's linear continuation above it.
    """

    n: int
    delta: float
    extrapolate_above: float | None = None

    def __call__(self, params: Params, x: jax.Array) -> jax.Array:
        grid = _Grid(self.n, self.delta, self.extrapolate_above)
        return interpolate(grid, spline_coefficients(params["values"]), x)


@dataclass(frozen=True)
class RPhiTable:
    """Pair function V(r) = z(r)/r (eV) from a LAMMPS table of z = r·φ (eV·Å).

    params: {"values": (n,)} of r·φ on the grid of ``table``.
    """

    table: LammpsTable

    def __call__(self, params: Params, r: jax.Array) -> jax.Array:
        return self.table(params, r) / r


@dataclass(frozen=True)
class FuncflPair:
    """funcfl pair V(r) = z(r)/r with z tabulated as 27.2·0.529·Z_a(r_k)·Z_b(r_k) (eV·Å).

    LAMMPS forms the product on the grid, then splines it; so do we.  params: the Z tables,
    {element: {"values": (n,)}} in √(Hartree·Bohr), shared by all funcfl pair functions.
    """

    table: LammpsTable
    element_a: str
    element_b: str

    def __call__(self, params: Params, r: jax.Array) -> jax.Array:
        z = FUNCFL_ZZ_TO_EV_ANGSTROM * params[self.element_a]["values"]
        z = z * params[self.element_b]["values"]
        return self.table({"values": z}, r) / r
