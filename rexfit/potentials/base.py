"""What every potential and radial function looks like, and sums of potentials.

A potential is a frozen, hashable object holding only *structure* (species mapping, function
kinds, cutoff); its parameters are a separate nested-dict pytree of float64 arrays, so
``jax.grad`` with respect to them works and the object itself can be a static ``jit`` argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.structures.neighbors import NeighborList, pair_displacements
from rexfit.structures.system import System

Params = Mapping[str, Any]
"""A nested dict of float64 arrays (a pytree); the names are the user's parameter names."""


@runtime_checkable
class Potential(Protocol):
    """``energy(params, system, nbrs)`` → total energy (eV, scalar); ``cutoff`` in Å."""

    cutoff: float

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array: ...


@runtime_checkable
class RadialFunction(Protocol):
    """``f(params, x)`` → array shaped like ``x``; a static, hashable function object.

    Used for pair terms V(r), densities ρ(r) (x in Å) and embedding energies F(ρ).
    """

    def __call__(self, params: Params, x: jax.Array) -> jax.Array: ...


@dataclass(frozen=True)
class SumPotential:
    """Energies of several potentials added; params = {name: params of that potential}."""

    terms: tuple[tuple[str, Any], ...]

    @property
    def cutoff(self) -> float:
        """Largest cutoff of the terms (Å): the neighbour list must reach it."""
        return max(term.cutoff for _, term in self.terms)

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Σ_k term_k.energy(params[name_k], system, nbrs) in eV."""
        return sum(term.energy(params[name], system, nbrs) for name, term in self.terms)


def pair_distances(system: System, nbrs: NeighborList, cutoff: float):
    """Distances (E,) in Å and a mask (E,) of listed pairs closer than ``cutoff``.

    Padding pairs get the distance cutoff/2 (where any radial function is finite, so that
    masked-out values cannot turn gradients into NaN); the mask excludes them.  The test is
    r² < cutoff², as in LAMMPS.
    """
    d = pair_displacements(system, nbrs)
    r2 = jnp.sum(d * d, axis=1)
    r = jnp.where(nbrs.mask, jnp.sqrt(r2), 0.5 * cutoff)
    return r, nbrs.mask & (r2 < cutoff * cutoff)


def species_table(entries: Mapping[tuple[int, ...], int], n_species: int, ndim: int) -> np.ndarray:
    """Dense int32 lookup table (n_species,)*ndim mapping species tuples to slots, −1 if absent."""
    table = np.full((n_species,) * ndim, -1, dtype=np.int32)
    for key, slot in entries.items():
        table[key] = slot
    return table


def _with(tree, path, value):
    if not path:
        return value
    out = dict(tree)
    out[path[0]] = _with(tree[path[0]], path[1:], value)
    return out


def _at(tree, path):
    for key in path:
        tree = tree[key]
    return tree


@dataclass(frozen=True)
class Linked:
    """A potential some of whose parameters follow others: before ``term`` sees the params,
    the leaf at each ``dst`` path is replaced by the leaf at its ``src`` path.

    links: ((dst path, src path), ...), paths into this potential's params tree.  Used where
    one physical quantity is stored twice in a parameter file (e.g. the ijj and jii lines of a
    Tersoff pair), so that fitting it moves both copies.
    """

    term: Any
    links: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]

    @property
    def cutoff(self) -> float:
        return self.term.cutoff

    @property
    def elements(self):
        return self.term.elements

    def resolve(self, params: Params) -> Params:
        """``params`` with every linked leaf set to its source (differentiable)."""
        for dst, src in self.links:
            params = _with(params, dst, _at(params, src))
        return params

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        return self.term.energy(self.resolve(params), system, nbrs)
