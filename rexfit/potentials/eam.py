"""Multi-species embedded-atom method (EAM), alloy and Finnis–Sinclair forms.

E = ½ Σ_i Σ_{j≠i} V_{s_i s_j}(r_ij) + Σ_i F_{s_i}(ρ_i),  ρ_i = Σ_{j≠i} ρ_{s_i s_j}(r_ij),

where ρ_{ab} is the density at an atom of species a due to a neighbour of species b (alloy
form: ρ_{ab} = ρ_b).  Functions are static :class:`~rexfit.potentials.base.RadialFunction`
objects, each reading its parameters at ``params[key]``; several mapping entries may share a
key (atomicrex: one ``<functions>`` entry used in several ``<mapping>`` lines).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.base import Params, pair_distances, species_table
from rexfit.structures.indexing import segment_sum
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System

Entry = tuple[str, Any]
"""A mapping entry: (params key, function object)."""


def _freeze(mapping: Mapping[Any, Entry]) -> tuple:
    return tuple(sorted(mapping.items(), key=lambda kv: kv[0]))


def distinct_functions(entries) -> list:
    """The distinct (key, function) entries of an EAM mapping, in the order of
    :meth:`EAM._select` (first appearance)."""
    return list(dict.fromkeys(entry for _, entry in entries))


def slot_table(entries, n_species: int, ndim: int, symmetric: bool = False) -> np.ndarray:
    """Species (tuple) → index of its distinct function in :func:`distinct_functions`, −1
    where none (host table; ``symmetric``: (a, b) and (b, a) alike)."""
    index = {entry: k for k, entry in enumerate(distinct_functions(entries))}
    table = {}
    for key, entry in entries:
        table[key] = index[entry]
        if symmetric:
            table[key[::-1]] = index[entry]
    return species_table(table, n_species, ndim)


@dataclass(frozen=True)
class EAM:
    """EAM potential over ``n_species`` species indices (those absent from a mapping get no term).

    pair: ((a, b), (key, V)) with a ≤ b, V(r) in eV.  density: ((a, b), (key, ρ)), density at
    an a-atom due to a b-neighbour.  embedding: (a, (key, F)), F(ρ) in eV.  cutoff: Å (pairs
    with r ≥ cutoff are ignored; functions may vanish earlier by themselves).
    Build with :meth:`create`, which accepts plain dicts.
    """

    n_species: int
    cutoff: float
    pair: tuple
    density: tuple
    embedding: tuple

    @staticmethod
    def create(n_species, cutoff, pair, density, embedding) -> EAM:
        """EAM from dicts {(a, b): (key, fn)}, {(a, b): (key, fn)}, {a: (key, fn)}.

        Pair keys are symmetrised (a, b) → (min, max); the same pair given twice is an error.
        """
        sym: dict[tuple[int, int], Entry] = {}
        for (a, b), entry in pair.items():
            key = (min(a, b), max(a, b))
            if key in sym and sym[key] != entry:
                raise ValueError(f"pair function for species {key} given twice")
            sym[key] = entry
        return EAM(
            int(n_species),
            float(cutoff),
            _freeze(sym),
            _freeze(dict(density)),
            _freeze(dict(embedding)),
        )

    @staticmethod
    def alloy(n_species, cutoff, pair, density, embedding) -> EAM:
        """Alloy (setfl) form: ``density`` = {b: (key, ρ_b)}, used for every centre species."""
        full = {(a, b): e for b, e in density.items() for a in range(n_species)}
        return EAM.create(n_species, cutoff, pair, full, embedding)

    # ------------------------------------------------------------------ evaluation

    def _select(self, entries, slots: jax.Array, x: jax.Array, params: Params) -> jax.Array:
        """Σ over distinct functions of where(slot == k, f_k(x), 0); one evaluation each."""
        distinct = list(dict.fromkeys(entry for _, entry in entries))
        if not distinct:
            return jnp.zeros_like(x)
        index = {entry: k for k, entry in enumerate(distinct)}
        out = jnp.zeros_like(x)
        for entry in distinct:
            key, fn = entry
            chosen = slots == index[entry]
            out = out + jnp.where(chosen, fn(params[key], x), 0.0)
        return out

    def _lookup(self, entries, table: np.ndarray, species, x: jax.Array,
                params: Params) -> jax.Array:
        """f_{table[species]}(x) per entry (0 where the table has no function): :meth:`_select`
        at the slots ``table[species()]`` (``species``: a function giving the index arrays).
        Where one function covers every species tuple (a one-species potential, or one
        function for all), that function of ``x`` itself: the same numbers, without the
        species lookups and selects in the program."""
        distinct = distinct_functions(entries)
        if len(distinct) == 1 and np.all(table == 0):
            key, fn = distinct[0]
            return fn(params[key], x)
        return self._select(entries, jnp.asarray(table)[species()], x, params)

    def _slot_table(self, entries, ndim: int, symmetric: bool = False) -> jax.Array:
        """Species (tuple) → index of its distinct function, −1 where none; static table."""
        return jnp.asarray(slot_table(entries, self.n_species, ndim, symmetric))

    def densities(self, params: Params, system: System, nbrs: NeighborList,
                  distances=None) -> jax.Array:
        """ρ_i (N,) for every atom slot (padding atoms get 0). ``distances``: the
        :func:`pair_distances` of these lists, if computed already."""
        r, use = pair_distances(system, nbrs, self.cutoff) if distances is None else distances
        def species():
            return system.species[nbrs.i], system.species[nbrs.j]

        table = slot_table(self.density, self.n_species, 2)
        n = system.natoms
        at_i = jnp.where(use, self._lookup(self.density, table, species, r, params), 0.0)
        rho = segment_sum(at_i, nbrs.i, n)
        if nbrs.half:
            # the neighbour's share: the same values where ρ_ab = ρ_ba for every pair of
            # species (one species, or a density of the neighbour's species alone)
            at_j = (at_i if np.array_equal(table, table.T) else
                    jnp.where(use, self._lookup(self.density, table.T, species, r, params),
                              0.0))
            rho = rho + segment_sum(at_j, nbrs.j, n)
        return jnp.where(system.mask, rho, 0.0)

    def pair_energy(self, params: Params, system: System, nbrs: NeighborList,
                    distances=None) -> jax.Array:
        """½ Σ_i Σ_j V(r_ij) in eV."""
        r, use = pair_distances(system, nbrs, self.cutoff) if distances is None else distances
        table = slot_table(self.pair, self.n_species, 2, symmetric=True)
        v = self._lookup(self.pair, table,
                         lambda: (system.species[nbrs.i], system.species[nbrs.j]), r, params)
        weight = 1.0 if nbrs.half else 0.5
        return weight * jnp.sum(jnp.where(use, v, 0.0))

    def embedding_energy(self, params: Params, system: System, nbrs: NeighborList,
                         distances=None) -> jax.Array:
        """Σ_i F_{s_i}(ρ_i) in eV over real atoms."""
        rho = self.densities(params, system, nbrs, distances)
        rho = jnp.where(system.mask, rho, 1.0)  # padding: a harmless argument, masked below
        table = slot_table(self.embedding, self.n_species, 1)
        f = self._lookup(self.embedding, table, lambda: (system.species,), rho, params)
        return jnp.sum(jnp.where(system.mask, f, 0.0))

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total EAM energy (eV)."""
        distances = pair_distances(system, nbrs, self.cutoff)  # one pass for both terms
        return (self.pair_energy(params, system, nbrs, distances)
                + self.embedding_energy(params, system, nbrs, distances))
