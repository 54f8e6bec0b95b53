"""The function library of ``<functions>``: user functions, splines, polynomials, sums,
products and the predefined analytic kinds, as static JAX function objects.

Each object is frozen and hashable (a static ``jit`` argument) and is called as
``f(params, x)``, where ``params`` is its own dict of float64 scalars (keyed by parameter name;
``"screening"`` holds the screening function's dict, ``"f0"``, ``"f1"`` ... the parts of a sum or
product). A function with a cutoff is exactly zero at and beyond it; a screening function
multiplies. Formulas are documented in docs/job-reference.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from rexfit import expr as ex

Params = Mapping[str, Any]


def _cut(fn: Callable[[jax.Array], jax.Array], x: jax.Array, cutoff: float | None) -> jax.Array:
    """fn(x) below the cutoff, exactly 0 at and beyond it, with finite gradients everywhere.

    fn is only evaluated at safe points (the "double where"), so a function that blows up at
    the cutoff (e.g. exp(1/(r − rc))) has no NaN gradient.
    """
    if cutoff is None:
        return fn(x)
    inside = x < cutoff
    safe = jnp.where(inside, x, 0.5 * cutoff)
    return jnp.where(inside, fn(safe), 0.0)


@dataclass(frozen=True)
class Function:
    """Common part: optional hard cutoff and optional multiplying screening function."""

    cutoff: float | None
    screening: "Function | None"

    def __call__(self, params: Params, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x, dtype=jnp.float64)
        value = _cut(lambda y: self.raw(params, y), x, self.cutoff)
        if self.screening is not None:
            value = value * self.screening(params["screening"], x)
        return value

    def raw(self, params: Params, x: jax.Array) -> jax.Array:
        raise NotImplementedError

    @property
    def reach(self) -> float | None:
        """Distance beyond which the function is zero (own cutoff or the screening's), Å."""
        reaches = [r for r in (self.cutoff, self.screening.reach if self.screening else None)
                   if r is not None]
        return min(reaches) if reaches else None


@dataclass(frozen=True)
class UserFunction(Function):
    """An expression of ``input_var``, the parameters and ``cutoff`` (rexfit.expr AST)."""

    expression: Any = None
    input_var: str = "r"
    param_names: tuple[str, ...] = ()

    @cached_property
    def _compiled(self):
        names = (self.input_var, *self.param_names, "cutoff")
        return ex.compile_expr(self.expression, names)

    def raw(self, params, x):
        cutoff = self.cutoff if self.cutoff is not None else 0.0
        return self._compiled(x, *(params[n] for n in self.param_names), cutoff)


@dataclass(frozen=True)
class Analytic(Function):
    """A predefined function kind (constant, morse-A/B/C, gaussian, exp-A/B, ...)."""

    kind: str = ""

    def raw(self, p, r):
        return _ANALYTIC[self.kind](p, r, self.cutoff)


@dataclass(frozen=True)
class Poly(Function):
    """Σ_n c_n x^n with parameters ``coeff[n]``."""

    powers: tuple[int, ...] = ()

    def raw(self, p, x):
        return sum(p[f"coeff[{n}]"] * x**n for n in self.powers)


@dataclass(frozen=True)
class Spline(Function):
    """Cubic spline through (x_k, y_k) with clamped first derivatives at both ends; linear
    extrapolation outside. Parameters: ``node[<x>].y``, ``derivative-left``, ``derivative-right``.
    """

    knots: tuple[float, ...] = ()

    def raw(self, p, x):
        xs = jnp.asarray(self.knots)
        ys = jnp.stack([p[f"node[{k:g}].y"] for k in self.knots])
        d0, d1 = p["derivative-left"], p["derivative-right"]
        m = _clamped_second_derivatives(xs, ys, d0, d1)
        i = jnp.clip(jnp.searchsorted(xs, x, side="right") - 1, 0, len(self.knots) - 2)
        h = xs[i + 1] - xs[i]
        a = (xs[i + 1] - x) / h
        b = (x - xs[i]) / h
        inner = a * ys[i] + b * ys[i + 1] + ((a**3 - a) * m[i] + (b**3 - b) * m[i + 1]) * h * h / 6
        left = ys[0] + d0 * (x - xs[0])
        right = ys[-1] + d1 * (x - xs[-1])
        return jnp.where(x < xs[0], left, jnp.where(x > xs[-1], right, inner))


def _clamped_second_derivatives(x, y, d0, d1):
    """Second derivatives M_k of the clamped cubic spline (dense solve; splines are small)."""
    n = x.shape[0]
    h = jnp.diff(x)
    rows = []
    rhs = []
    for k in range(n):
        row = [0.0] * n
        if k == 0:
            row[0], row[1] = h[0] / 3, h[0] / 6
            rhs.append((y[1] - y[0]) / h[0] - d0)
        elif k == n - 1:
            row[n - 2], row[n - 1] = h[n - 2] / 6, h[n - 2] / 3
            rhs.append(d1 - (y[n - 1] - y[n - 2]) / h[n - 2])
        else:
            row[k - 1], row[k], row[k + 1] = h[k - 1] / 6, (h[k - 1] + h[k]) / 3, h[k] / 6
            rhs.append((y[k + 1] - y[k]) / h[k] - (y[k] - y[k - 1]) / h[k - 1])
        rows.append(jnp.stack([jnp.asarray(v, dtype=jnp.float64) for v in row]))
    return jnp.linalg.solve(jnp.stack(rows), jnp.stack(rhs))


@dataclass(frozen=True)
class Combination(Function):
    """Sum or product of the parts ``f0``, ``f1``, ..."""

    parts: tuple[Function, ...] = ()
    product: bool = False

    def raw(self, p, x):
        values = [f(p[f"f{k}"], x) for k, f in enumerate(self.parts)]
        out = values[0]
        for v in values[1:]:
            out = out * v if self.product else out + v
        return out

    @property
    def reach(self):
        own = super().reach
        parts = [f.reach for f in self.parts]
        if self.product:
            cands = [r for r in parts + [own] if r is not None]
            return min(cands) if cands else None
        if any(r is None for r in parts):
            return own
        return min(max(parts), own) if own is not None else max(parts)


# ----------------------------------------------------------------------------- analytic kinds


def _sign(v):
    return jnp.where(v < 0, -1.0, 1.0)


def _exp_b(p, r, rc):
    ri, alpha, n = p["rc"], p["alpha"], p["exponent"]
    x = jnp.clip((r - ri) / (rc - ri), 1e-300, 1.0 - 1e-15)
    value = jnp.exp(-_sign(n) * alpha / (1.0 - x**n))
    norm = jnp.where(n > 0, jnp.exp(-alpha), 1.0)  # the value at the inner cutoff
    return jnp.where(r <= ri, 1.0, value / norm)


def _exp_cutoff(r, rc, alpha, n):
    x = r / rc
    return jnp.exp(-_sign(n) * alpha / (1.0 - x**n))


_ANALYTIC: dict[str, Callable] = {
    "constant": lambda p, r, rc: p["const"] + 0.0 * r,
    "morse-A": lambda p, r, rc: p["D0"] * (jnp.exp(-2 * p["alpha"] * (r - p["r0"]))
                                           - 2 * jnp.exp(-p["alpha"] * (r - p["r0"]))),
    "morse-B": lambda p, r, rc: (
        p["D0"] / (p["S"] - 1) * jnp.exp(-p["beta"] * jnp.sqrt(2 * p["S"]) * (r - p["r0"]))
        - p["S"] * p["D0"] / (p["S"] - 1) * jnp.exp(-p["beta"] * jnp.sqrt(2 / p["S"]) * (r - p["r0"]))
        + p["delta"]),
    "morse-C": lambda p, r, rc: (p["A"] * jnp.exp(-p["lambda"] * r)
                                 - p["B"] * jnp.exp(-p["mu"] * r) + p["delta"]),
    "gaussian": lambda p, r, rc: p["prefactor"] * jnp.exp(-p["eta"] * (r - p["mu"]) ** 2),
    "exp-A": lambda p, r, rc: jnp.exp(1.0 / (r - rc) + 1.0 / rc),
    "exp-B": _exp_b,
    "exp-gaussian": lambda p, r, rc: (
        jnp.exp(-r**2 / (2 * p["stddev"] ** 2)) / (p["stddev"] * jnp.sqrt(2 * jnp.pi))
        * _exp_cutoff(r, rc, p["alpha"], p["exponent"])),
    "XpowN-cutoff": lambda p, r, rc: _xpown(p, r, rc),
    "RsMinusRPowN": lambda p, r, rc: jnp.where(
        r < p["rs"], p["S"] * jnp.abs(p["rs"] - jnp.minimum(r, p["rs"])) ** p["N"], 0.0),
}


def _xpown(p, r, rc):
    # |x|^N: the form is meant for even N (atomicrex uses N = 4), where x^N = |x|^N.
    xn = jnp.abs((r - rc) / p["h"]) ** p["N"]
    return xn / (1.0 + xn)


ANALYTIC_KINDS = tuple(_ANALYTIC)
