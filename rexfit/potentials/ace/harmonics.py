"""Complex spherical harmonics Y_lm(r̂) as the ACE evaluator uses them: with the
Condon–Shortley phase and normalised to 4π (Y_00 = 1; √(4π) times the orthonormal ones), for
unit vectors, differentiable everywhere (no angles are formed).

Y_lm = N_lm Q_lm(z) (x + i y)^m for m ≥ 0, Q_lm(z) = P_l^m(z) / (1 − z²)^{m/2} a polynomial,
N_lm = √[(2l + 1) (l − m)!/(l + m)!]; Y_{l,−m} = (−1)^m conj(Y_lm).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np


def lm_index(l: int, m: int) -> int:
    """Position of (l, m), −l ≤ m ≤ l, in the flat layout l², …, l² + 2l."""
    return l * l + l + m


def _legendre(z, lmax: int) -> dict:
    """{(l, m): P_l^m(z) without the (1 − z²)^(m/2) factor} for 0 ≤ m ≤ l ≤ lmax, by the
    upward recursion in l (the factor is carried by (x + i y)^m)."""
    q = {}
    for m in range(lmax + 1):
        q[m, m] = jnp.full_like(z, (-1.0) ** m * float(np.prod(np.arange(1, 2 * m, 2))))
        if m + 1 <= lmax:
            q[m + 1, m] = (2 * m + 1) * z * q[m, m]
        for l in range(m + 2, lmax + 1):
            q[l, m] = ((2 * l - 1) * z * q[l - 1, m] - (l + m - 1) * q[l - 2, m]) / (l - m)
    return q


def _norm(l: int, m: int) -> float:
    """sqrt((2l + 1) (l − m)! / (l + m)!): the 4π normalisation."""
    return math.sqrt((2 * l + 1) * math.factorial(l - m) / math.factorial(l + m))


def spherical_harmonics(u, lmax: int):
    """(..., (lmax + 1)²) complex Y_lm (4π-normalised) of the unit vectors ``u`` (..., 3),
    flat (l, m) layout (:func:`lm_index`)."""
    x, y, z = u[..., 0], u[..., 1], u[..., 2]
    phase = [jnp.ones_like(x) + 0j]
    for _ in range(lmax):
        phase.append(phase[-1] * (x + 1j * y))
    q = _legendre(z, lmax)
    out = [None] * (lmax + 1) ** 2
    for l in range(lmax + 1):
        for m in range(l + 1):
            norm = _norm(l, m)
            ylm = norm * q[l, m] * phase[m]
            out[lm_index(l, m)] = ylm
            if m:
                out[lm_index(l, -m)] = (-1) ** m * jnp.conj(ylm)
    return jnp.stack(out, axis=-1)


def spherical_harmonics_parts(u, lmax: int):
    """(Re, Im) of :func:`spherical_harmonics` ((..., (lmax + 1)²) each), computed in real
    arithmetic (the same operations: (x + i y)^m by its real and imaginary parts)."""
    x, y, z = u[..., 0], u[..., 1], u[..., 2]
    phase = [(jnp.ones_like(x), jnp.zeros_like(x))]
    for _ in range(lmax):
        c, s = phase[-1]
        phase.append((c * x - s * y, c * y + s * x))
    q = _legendre(z, lmax)
    re, im = [None] * (lmax + 1) ** 2, [None] * (lmax + 1) ** 2
    for l in range(lmax + 1):
        for m in range(l + 1):
            norm = _norm(l, m)
            a = norm * q[l, m]
            re[lm_index(l, m)], im[lm_index(l, m)] = a * phase[m][0], a * phase[m][1]
            if m:
                sign = (-1) ** m
                re[lm_index(l, -m)] = sign * re[lm_index(l, m)]
                im[lm_index(l, -m)] = -sign * im[lm_index(l, m)]
    return jnp.stack(re, axis=-1), jnp.stack(im, axis=-1)
