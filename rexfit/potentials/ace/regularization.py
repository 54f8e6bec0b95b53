"""pacemaker's radial smoothness regularisation of an ACE potential's radial functions.

pacemaker (its TensorPotential backend, ``ACE.compute_smoothness_reg``) adds
w0·S_0 + w1·S_1 + w2·S_2 to the loss, with, for m = 0, 1, 2,

    S_m = (1/|B|) Σ_{(a, b) ∈ B} (Δd / r_c(ab)²) Σ_j d_j² Σ_{n, l} |∂ᵐR_nl^{ab}(d_j)/∂dᵐ|

B: every ordered pair of elements (A–B and B–A both, sharing their radial coefficients);
d_j: 100 points evenly from 1e-10 Å to r_max − 1e-5 Å (r_max the largest bond cutoff), Δd
their spacing; R_nl^{ab}(d) = Σ_k crad[n, l, k] g_k(d) over the bond's own n, l, k, with g_k
the bond's plain radial basis (zero beyond its cutoff r_c(ab); no inner cutoff and, for
``ChebExpCos``, no outer taper of width d_c: the backend's basis functions).  S_m is a sum of
absolute values of functions linear in crad (not of squares), so its minimizers are
gradient ones.  The derivatives in d are exact (automatic differentiation of the JAX radial
basis), tabulated once on the grid: S_m is then a weighted L1 norm of G_m · crad.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.ace.files import bond_key
from rexfit.potentials.ace.radial import _BASES, Bond, _chebyshev

#: Grid of the smoothness integrals: points, first point (Å), gap below the largest cutoff (Å).
POINTS, START, END_GAP = 100, 1e-10, 1e-5


def plain_basis(r, bond: Bond, k: int):
    """(..., k) the bond's radial basis g_0..g_{k−1} as pacemaker's smoothness term takes it:
    without inner cutoff or ``ChebExpCos`` taper, zero for r ≥ r_c."""
    inside = r < bond.rcut
    rs = jnp.where(inside, r, 0.5 * bond.rcut)
    if bond.basis == "ChebExpCos":  # g_0 = 1, g_k = ½(1 − T_k(x)), times ½(1 + cos πr/r_c)
        y1, y2 = jnp.exp(-bond.lam * rs / bond.rcut), math.exp(-bond.lam)
        t = _chebyshev(1.0 - 2.0 * ((y1 - y2) / (1.0 - y2)), k)
        env = 0.5 * (1.0 + jnp.cos(math.pi * rs / bond.rcut))
        g = [env] + [(0.5 - 0.5 * t[n]) * env for n in range(1, k)]
    else:
        g = _BASES[bond.basis](rs, bond, k)
    return jnp.where(inside[..., None], jnp.stack(g, axis=-1), 0.0)


@partial(jax.jit, static_argnums=(1, 2))
def _derivatives(r, bond: Bond, k: int):
    """(3, P, k): g_k at the points r (P,) and its first and second derivatives in r
    (forward mode: each g_k(r_j) depends on r_j alone)."""
    ones = jnp.ones_like(r)

    def g(x):
        return plain_basis(x, bond, k)

    def d1(x):
        return jax.jvp(g, (x,), (ones,))[1]

    return jnp.stack([g(r), d1(r), jax.jvp(d1, (r,), (ones,))[1]])


def smoothness_tables(potential) -> tuple[np.ndarray, tuple]:
    """(grid weights w_j = Δd d_j², per ordered pair (bond key, 1/r_c², (3, P, K) g_k and its
    first and second derivatives at the grid points)) of ``potential`` (an ACE)."""
    r_max = potential.cutoff
    d = np.linspace(START, r_max - END_GAP, POINTS)
    weights = (d[1] - d[0]) * d * d
    out = []
    shapes = dict(potential.crad_shapes)
    for i, a in enumerate(potential.elements):
        for j, b in enumerate(potential.elements):
            bond = potential.bonds[i][j]
            key = bond_key(a, b)
            k = shapes[key][2]
            tables = np.asarray(_derivatives(jnp.asarray(d), bond, k))
            out.append((key, 1.0 / bond.rcut**2, tables))
    return weights, tuple(out)


def smoothness_terms(potential):
    """fn(params) → (S_0, S_1, S_2) of ``potential`` (an ACE) at its params tree (flat or
    shaped crad arrays)."""
    weights, bonds = smoothness_tables(potential)
    shapes = dict(potential.crad_shapes)
    w = jnp.asarray(weights)

    def terms(params):
        total = jnp.zeros(3)
        for key, inv_rc2, tables in bonds:
            crad = jnp.reshape(jnp.asarray(params["crad"][key], jnp.float64), shapes[key])
            r_nl = jnp.einsum("mpk,nlk->mpnl", jnp.asarray(tables), crad)
            total = total + inv_rc2 * jnp.einsum("p,mp->m", w,
                                                 jnp.sum(jnp.abs(r_nl), axis=(2, 3)))
        return total / len(bonds)

    return terms


def smoothness_penalty(potential, w0: float, w1: float, w2: float):
    """fn(params) → w0·S_0 + w1·S_1 + w2·S_2 (see the module docstring)."""
    terms = smoothness_terms(potential)
    factors = jnp.asarray([w0, w1, w2], jnp.float64)

    def penalty(params):
        return jnp.dot(factors, terms(params))

    return penalty
