"""The atomic system that crosses ``jit``: positions, cell, species, periodicity."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
import numpy as np


@jax.tree_util.register_dataclass
@dataclass(frozen=True, eq=False)
class System:
    """Atoms in a cell; a pytree whose ``pbc`` is static.

    positions: (N, 3) float64, Cartesian, Å (not wrapped into the cell).
    cell: (3, 3) float64, Å; rows are the lattice vectors a1, a2, a3.
    species: (N,) int, indices into the job's atom-type list.
    mask: (N,) bool, False for padding atoms (they carry no energy).
    pbc: tuple of 3 bools, periodicity along a1, a2, a3 (static).
    """

    positions: jax.Array
    cell: jax.Array
    species: jax.Array
    mask: jax.Array
    pbc: tuple[bool, bool, bool] = field(default=(True, True, True), metadata=dict(static=True))

    @property
    def natoms(self) -> int:
        """Number of atom slots N, padding included (static)."""
        return self.positions.shape[0]

    @property
    def volume(self) -> jax.Array:
        """Cell volume |det(cell)| in Å³ (meaningful for periodic cells)."""
        return jnp.abs(jnp.linalg.det(self.cell))

    def replace(self, **changes) -> System:
        """A copy with some fields replaced."""
        return replace(self, **changes)


def make_system(positions, cell, species=None, pbc=(True, True, True), mask=None, *,
                host: bool = False) -> System:
    """Build a :class:`System` from array-likes (float64 positions/cell, int32 species).

    ``species`` defaults to all zeros and ``mask`` to all True.  JAX tracers are kept as they
    are, so lattice builders stay differentiable in their parameters.  ``host=True``: NumPy
    arrays (for host-side work such as neighbour lists: no device transfers).
    """
    # concrete values are converted in NumPy and put on the device as they are: no program
    # per shape (jnp.asarray of a NumPy array compiles one)
    traced = not host and any(isinstance(leaf, jax.Array) for leaf in
                              jax.tree_util.tree_leaves((positions, cell, species, mask)))
    xp = jnp if traced else np
    positions = xp.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n = positions.shape[0]
    cell = xp.asarray(cell, dtype=np.float64).reshape(3, 3)
    species = np.zeros(n, np.int32) if species is None else species
    species = xp.asarray(species, dtype=np.int32).reshape(n)
    mask = xp.ones(n, dtype=bool) if mask is None else xp.asarray(mask, dtype=bool).reshape(n)
    pbc = tuple(bool(p) for p in np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)))
    if not host and not traced:
        positions, cell, species, mask = jax.device_put((positions, cell, species, mask))
    return System(positions=positions, cell=cell, species=species, mask=mask, pbc=pbc)


def pad_system(system: System, natoms: int) -> System:
    """Append padding atoms (mask False, species 0) up to ``natoms`` slots.

    Padding atoms sit at the origin; neighbour lists skip them and potentials ignore them.
    """
    extra = natoms - system.natoms
    if extra < 0:
        raise ValueError(f"cannot pad {system.natoms} atoms down to {natoms}")
    if extra == 0:
        return system
    return system.replace(
        positions=jnp.concatenate([system.positions, jnp.zeros((extra, 3))]),
        species=jnp.concatenate([system.species, jnp.zeros(extra, jnp.int32)]),
        mask=jnp.concatenate([system.mask, jnp.zeros(extra, bool)]),
    )
