"""ACE embedding functions F(ρ) of one density (eV per unit prefactor), as the evaluator
defines them; an element's energy is Σ_p w_p F(ρ_p; m_p) over its densities p
(``fs_parameters: [w_1, m_1, w_2, m_2, …]``).

- ``FinnisSinclairShiftedScaled``: ρ for m = 1 (the linear embedding), else
  sign(ρ) [(x_0 e^{−|ρ|} + |ρ|)^m − y_0 e^{−|ρ|}] with x_0 = (1/m)^{(1/m)/(1 − 1/m)},
  y_0 = (1/m)^{1/(1 − 1/m)}: smooth at ρ = 0, where F = 0.
- ``FinnisSinclair``: sign(ρ) [(1 − g)|ρ|^m + w^{1−m} g |ρ|], g = exp(−(w|ρ|)³), w = 10⁶
  (F = w^{1−m} ρ for |ρ| ≤ 10⁻¹⁰).
"""

from __future__ import annotations

import jax.numpy as jnp

#: embedding names the evaluator knows
EMBEDDINGS = ("FinnisSinclairShiftedScaled", "FinnisSinclair")


def embedding(kind: str, rho, m: float):
    """F(ρ) of one density for exponent ``m`` (a Python float: it selects the branch)."""
    sign = jnp.where(rho < 0.0, -1.0, 1.0)
    a = jnp.abs(rho)
    if kind == "FinnisSinclairShiftedScaled":
        if abs(m - 1.0) < 1e-10:
            return rho
        nx = 1.0 / m
        e = jnp.exp(-a)
        xoff, yoff = nx ** (nx / (1.0 - nx)) * e, nx ** (1.0 / (1.0 - nx)) * e
        return sign * ((xoff + a) ** m - yoff)
    if kind == "FinnisSinclair":
        w = 1.0e6
        lam = (1.0 / w) ** (m - 1.0)
        small = a <= 1e-10
        safe = jnp.where(small, 1.0, a)
        w3x3 = (w * safe) ** 3
        g = jnp.where(w3x3 > 30.0, 0.0, jnp.exp(-jnp.minimum(w3x3, 30.0)))
        big = sign * ((1.0 - g) * safe**m + lam * g * safe)
        return jnp.where(small, lam * rho, big)
    raise ValueError(f"unknown ACE embedding {kind!r}: known are {', '.join(EMBEDDINGS)}")
