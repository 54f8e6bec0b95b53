"""Crystal-lattice builders, differentiable in their lattice parameters.

Each builder maps lattice parameters (Å; c/a dimensionless) to a :class:`System` using only
JAX operations, so ``jax.grad`` through a builder gives derivatives with respect to lattice
DOFs.  Species arguments are integer indices into the job's atom-type list.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rexfit.structures.system import System, make_system

#: Ideal c/a of hcp, sqrt(8/3).
HCP_IDEAL_CA = float(np.sqrt(8.0 / 3.0))
#: Ideal c/a of the omega phase derived from bcc, sqrt(3/8).
OMEGA_IDEAL_CA = float(np.sqrt(3.0 / 8.0))

_FCC_PRIMITIVE = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
_BCC_PRIMITIVE = np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]])


def _crystal(cell, fractional, species) -> System:
    """Periodic system from a cell (3, 3), fractional coordinates (n, 3) and species (n,)."""
    cell = jnp.asarray(cell, dtype=jnp.float64)
    frac = jnp.asarray(np.asarray(fractional, dtype=np.float64))
    return make_system(frac @ cell, cell, np.asarray(species, dtype=np.int32))


def _hexagonal_cell(a, c):
    """Cell a1=(a,0,0), a2=(−a/2, a√3/2, 0), a3=(0,0,c)."""
    a = jnp.asarray(a, dtype=jnp.float64)
    zero = jnp.zeros_like(a)
    return jnp.stack(
        [
            jnp.stack([a, zero, zero]),
            jnp.stack([-0.5 * a, 0.5 * np.sqrt(3.0) * a, zero]),
            jnp.stack([zero, zero, jnp.asarray(c, dtype=jnp.float64)]),
        ]
    )


def fcc(a, species: int = 0) -> System:
    """fcc primitive 1-atom cell, cubic lattice parameter ``a`` (Å)."""
    return _crystal(a * _FCC_PRIMITIVE, [[0.0, 0.0, 0.0]], [species])


def bcc(a, species: int = 0) -> System:
    """bcc primitive 1-atom cell, cubic lattice parameter ``a`` (Å)."""
    return _crystal(a * _BCC_PRIMITIVE, [[0.0, 0.0, 0.0]], [species])


def sc(a, species: int = 0) -> System:
    """Simple-cubic 1-atom cell, lattice parameter ``a`` (Å)."""
    return _crystal(a * np.eye(3), [[0.0, 0.0, 0.0]], [species])


def diamond(a, species: int = 0) -> System:
    """Diamond: 2 atoms (0 and ¼,¼,¼ of the cube) on the fcc primitive cell, cubic ``a`` (Å)."""
    return _crystal(a * _FCC_PRIMITIVE, [[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]], [species] * 2)


def hcp(a, ca_ratio=HCP_IDEAL_CA, species: int = 0) -> System:
    """hcp 2-atom cell a1=(a,0,0), a2=(−a/2, a√3/2, 0), a3=(0,0,c), c = ca_ratio·a.

    Ideal positions (0, 0, 0) and (⅓, ⅔, ½) (fractional), as ``ase.build.bulk('X', 'hcp')``.
    """
    cell = _hexagonal_cell(a, ca_ratio * a)
    return _crystal(cell, [[0.0, 0.0, 0.0], [1 / 3, 2 / 3, 0.5]], [species] * 2)


def omega(a, ca_ratio=OMEGA_IDEAL_CA, species: int = 0) -> System:
    """Omega phase, 3 atoms on the hexagonal cell of :func:`hcp` (c = ca_ratio·a).

    Positions (0, 0, 0), (⅓, ⅔, ½), (⅔, ⅓, ½) (fractional); ideal c/a = √(3/8).
    """
    cell = _hexagonal_cell(a, ca_ratio * a)
    frac = [[0.0, 0.0, 0.0], [1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]]
    return _crystal(cell, frac, [species] * 3)


def dimer(distance, species=(0, 0), box: float = 30.0) -> System:
    """Two atoms ``distance`` Å apart along x in a non-periodic cubic box of edge ``box`` Å."""
    d = jnp.asarray(distance, dtype=jnp.float64)
    zero = jnp.zeros_like(d)
    positions = jnp.stack([jnp.stack([zero, zero, zero]), jnp.stack([d, zero, zero])])
    return make_system(positions, box * np.eye(3), np.asarray(species), pbc=(False,) * 3)


def l12(a, species=(0, 1)) -> System:
    """L1₂ (Cu₃Au type) A₃B, 4-atom cubic cell ``a`` (Å): B=species[1] at the corner, A on faces."""
    a_, b_ = species
    frac = [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]
    return _crystal(a * np.eye(3), frac, [b_, a_, a_, a_])


def b1(a, species=(0, 1)) -> System:
    """B1 (NaCl type) AB, 2 atoms on the fcc primitive cell, cubic ``a`` (Å); B at (a/2, 0, 0)."""
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]) @ np.linalg.inv(_FCC_PRIMITIVE)
    return _crystal(a * _FCC_PRIMITIVE, frac, list(species))


def b2(a, species=(0, 1)) -> System:
    """B2 (CsCl type) AB, 2-atom cubic cell ``a`` (Å): A at the corner, B at the centre."""
    return _crystal(a * np.eye(3), [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]], list(species))


def l10(a, ca_ratio=1.0, species=(0, 1)) -> System:
    """L1₀ (CuAu type) AB, 2-atom primitive tetragonal cell of the fcc-like cell (a, a, c=ca·a).

    Cell a1=(a/2, a/2, 0), a2=(−a/2, a/2, 0), a3=(0, 0, c); A at 0, B at (a/2, 0, c/2): A and B
    fill alternate (001) planes of the conventional cell.
    """
    a = jnp.asarray(a, dtype=jnp.float64)
    c = ca_ratio * a
    zero = jnp.zeros_like(a)
    cell = jnp.stack(
        [
            jnp.stack([0.5 * a, 0.5 * a, zero]),
            jnp.stack([-0.5 * a, 0.5 * a, zero]),
            jnp.stack([zero, zero, jnp.asarray(c, dtype=jnp.float64)]),
        ]
    )
    return _crystal(cell, [[0.0, 0.0, 0.0], [0.5, -0.5, 0.5]], list(species))


#: Builders by atomicrex/rexfit structure tag.
LATTICE_BUILDERS = {
    "fcc-lattice": fcc,
    "bcc-lattice": bcc,
    "sc-lattice": sc,
    "hcp-lattice": hcp,
    "diamond-lattice": diamond,
    "dimer-structure": dimer,
    "L12-lattice": l12,
    "B1-lattice": b1,
    "B2-lattice": b2,
    "L10-lattice": l10,
    "omega-lattice": omega,
}
