"""One structure's contribution to the objective: Σ_P w_abs · r(P(x*(θ), θ)) over its fitted
properties, with P computed at the relaxed DOFs x*(θ) (implicitly differentiated), jitted
once per structure. Residual styles and vector averaging follow SPEC §4.
"""

from __future__ import annotations

from dataclasses import dataclass
import jax
import jax.numpy as jnp
import numpy as np

from rexfit.physics.named import property_values
from rexfit.physics.relax import relaxed_coordinates


@dataclass(frozen=True)
class FittedProperty:
    """A property entering the objective: absolute weight, tolerance δ, style, target."""

    name: str
    weight: float
    tolerance: float
    style: str
    target: np.ndarray


def residual(style: str, value, target, tol):
    """Unweighted residual (jnp); vectors average their per-component residuals."""
    a = jnp.asarray(value)
    t = jnp.asarray(target, dtype=a.dtype)
    if style == "squared":
        r = ((a - t) / tol) ** 2
    elif style == "squared-relative":
        r = ((a - t) / t) ** 2
    elif style == "absolute-diff":
        r = jnp.abs(a - t) / tol
    else:
        raise ValueError(f"unknown residual style {style!r}")
    return jnp.sum(r) / r.size


class StructureTerm:
    """A structure ready for the objective. Hashable by identity (a static jit argument)."""

    def __init__(self, spec, problem, potential, wanted: frozenset, fitted: tuple):
        self.spec = spec
        self.problem = problem
        self.potential = potential
        self.wanted = frozenset(wanted)
        self.fitted: tuple[FittedProperty, ...] = tuple(fitted)

    @property
    def id(self) -> str:
        return self.spec.id


def _term(term: StructureTerm, params, x_star, free, nbrs):
    x = relaxed_coordinates(term.problem, term.potential, params, x_star, free, nbrs)
    props = property_values(term.problem, term.potential, params, x, nbrs, term.wanted)
    total = jnp.zeros(())
    for fp in term.fitted:
        total = total + fp.weight * residual(fp.style, props[fp.name], fp.target, fp.tolerance)
    return total, props


#: (value, property values) of one structure at a relaxed state.
term_value = jax.jit(_term, static_argnums=0)
#: ((value, property values), ∂value/∂params) of one structure at a relaxed state.
term_value_and_grad = jax.jit(jax.value_and_grad(_term, argnums=1, has_aux=True),
                              static_argnums=0)



#: Residual styles whose residual is a square, so a structure's term is Σ r² of a vector.
SQUARED_STYLES = ("squared", "squared-relative")


def residual_vector(style: str, value, target, tol, weight):
    """r (flattened) with Σ r² = weight · residual(style, value, target, tol)."""
    a = jnp.ravel(jnp.asarray(value))
    t = jnp.ravel(jnp.asarray(target, dtype=a.dtype))
    if style == "squared":
        d = (a - t) / tol
    elif style == "squared-relative":
        d = (a - t) / t
    else:
        raise ValueError(f"residual style {style!r} is not a square")
    return jnp.sqrt(weight / d.size) * d


def _term_residuals(term: StructureTerm, params, x_star, free, nbrs):
    x = relaxed_coordinates(term.problem, term.potential, params, x_star, free, nbrs)
    props = property_values(term.problem, term.potential, params, x, nbrs, term.wanted)
    return jnp.concatenate([residual_vector(fp.style, props[fp.name], fp.target,
                                            fp.tolerance, fp.weight) for fp in term.fitted])


def _residuals_and_jacobian(term: StructureTerm, params, x_star, free, nbrs):
    r = _term_residuals(term, params, x_star, free, nbrs)
    jac = jax.jacrev(_term_residuals, argnums=1)(term, params, x_star, free, nbrs)
    return r, jac


#: (residual vector r, ∂r/∂params as a pytree with a leading row axis) of one structure.
term_residuals_and_jacobian = jax.jit(_residuals_and_jacobian, static_argnums=0)
