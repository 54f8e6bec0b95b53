"""Homogeneous strain: deforming a system and Voigt ↔ tensor conversions."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rexfit.structures.system import System


def deform(system: System, strain: jax.Array) -> System:
    """Apply the homogeneous deformation F = I + strain to positions and cell.

    strain: (3, 3), dimensionless; row-vector convention x' = x (I + strain), so a symmetric
    strain is the small-strain tensor.  Differentiable in ``strain`` and in the system.
    """
    f = jnp.eye(3) + strain
    return system.replace(positions=system.positions @ f, cell=system.cell @ f)


def voigt_to_strain(voigt: jax.Array, xp=jnp) -> jax.Array:
    """(6,) Voigt strain (xx yy zz yz xz xy, engineering shear) → symmetric (3, 3) tensor
    (``xp=numpy`` for host values)."""
    e1, e2, e3, e4, e5, e6 = voigt
    return xp.array(
        [[e1, 0.5 * e6, 0.5 * e5], [0.5 * e6, e2, 0.5 * e4], [0.5 * e5, 0.5 * e4, e3]]
    )


def tensor_to_voigt(tensor: jax.Array) -> jax.Array:
    """Symmetric (3, 3) stress-like tensor → (6,) Voigt vector (xx yy zz yz xz xy)."""
    t = tensor
    return jnp.array([t[0, 0], t[1, 1], t[2, 2], t[1, 2], t[0, 2], t[0, 1]])
