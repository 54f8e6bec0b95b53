"""Lennard-Jones pair potential, as LAMMPS ``pair_style lj/cut`` (hard cutoff, no shift)."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.base import Params, pair_distances
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System


@dataclass(frozen=True)
class LennardJones:
    """V(r) = 4ε[(σ/r)¹² − (σ/r)⁶] for r < cutoff, 0 beyond; each pair counted once.

    No energy shift at the cutoff (LAMMPS ``lj/cut`` default; ``ase.calculators.lj`` shifts).
    params: {"sigma": Å, "epsilon": eV} (scalars).  ``pairs``: species pairs (a, b) that
    interact (order irrelevant); ``None`` means all (atomicrex ``species-a="*"``).
    """

    cutoff: float
    pairs: frozenset[tuple[int, int]] | None = None

    @staticmethod
    def between(cutoff: float, species_a: int | None, species_b: int | None, n_species: int):
        """LJ acting between ``species_a`` and ``species_b`` (None = any species)."""
        if species_a is None and species_b is None:
            return LennardJones(cutoff)
        a_set = range(n_species) if species_a is None else [species_a]
        b_set = range(n_species) if species_b is None else [species_b]
        return LennardJones(cutoff, frozenset((a, b) for a in a_set for b in b_set))

    def pair_energy(self, params: Params, r: jax.Array) -> jax.Array:
        """V(r) in eV for distances r (Å), without cutoff."""
        s2 = (params["sigma"] / r) ** 2
        s6 = s2 * s2 * s2
        return 4.0 * params["epsilon"] * s6 * (s6 - 1.0)

    def _selected(self, system: System, nbrs: NeighborList) -> jax.Array:
        """(E,) bool: pairs whose species combination interacts."""
        if self.pairs is None:
            return jnp.ones(nbrs.capacity, dtype=bool)
        n = 1 + max(max(p) for p in self.pairs)
        table = np.zeros((n, n), dtype=bool)
        for a, b in self.pairs:
            table[a, b] = table[b, a] = True
        si = jnp.clip(system.species[nbrs.i], 0, n - 1)
        sj = jnp.clip(system.species[nbrs.j], 0, n - 1)
        inside = (system.species[nbrs.i] < n) & (system.species[nbrs.j] < n)
        return inside & jnp.asarray(table)[si, sj]

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total LJ energy (eV)."""
        r, within = pair_distances(system, nbrs, self.cutoff)
        use = within & self._selected(system, nbrs)
        weight = 1.0 if nbrs.half else 0.5
        return weight * jnp.sum(jnp.where(use, self.pair_energy(params, r), 0.0))
