"""The neighbour data a potential needs: a half pair list, or a full list with triplets.

Pair potentials (LJ, EAM, tabulated EAM) run on a half neighbour list; terms that read every
neighbour of an atom (descriptor models such as SNAP, class attribute ``full_list = True``)
need the full list, without triplets.  Three-body terms
(Stillinger–Weber, Tersoff, ABOP, spline-MEAM) need a full list carrying the neighbour triplets
(:mod:`rexfit.structures.triplets`).  A sum of potentials gets one list for all its terms: its
pair list reaches the largest cutoff, and its triplets are the union of what each three-body
term asks for (per-leg reach tables combined by their maximum; if any term wants both orders of
a pair of legs, both are listed — every three-body term accepts either layout).

A three-body term says what it needs through ``triplet_cutoffs()`` → ``(first, second,
ordered)``: ``first`` an (S, S) table of the i→j leg reach [s_i, s_j] (Å), ``second`` an
(S, S) table [s_i, s_k] or (S, S, S) table [s_i, s_j, s_k] of the i→k leg reach, and whether
both orders are needed (Stillinger–Weber asks for the full list with no triplets: every reach
−inf).
"""

from __future__ import annotations

import numpy as np

from rexfit.potentials.base import Linked, SumPotential
from rexfit.structures.neighbors import NeighborList, build_neighbor_list
from rexfit.structures.system import System
from rexfit.structures.triplets import build_triplets, with_triplets


def triplet_needs(term):
    """``(first, second, ordered)`` for a term that needs triplets, else None."""
    method = getattr(term, "triplet_cutoffs", None)
    return None if method is None else method()


def _leaves(potential):
    if isinstance(potential, SumPotential):
        for _, term in potential.terms:
            yield from _leaves(term)
    elif isinstance(potential, Linked):
        yield from _leaves(potential.term)
    else:
        yield potential


def reach_table(table, n: int, ndim: int) -> np.ndarray:
    """``table`` (a scalar, an (S, S) or an (S, S, S) reach table) as an (n,)*ndim array, −inf
    where it has no entry (2-D → 3-D as [s_i, :, s_k])."""
    table = np.asarray(table, dtype=np.float64)
    if table.ndim == 0:  # one reach for every species combination
        return np.full((n,) * ndim, float(table))
    if table.ndim == 2 and ndim == 3:
        table = np.broadcast_to(table[:, None, :], (table.shape[0],) * 3)
    m = min(table.shape[0], n)
    out = np.full((n,) * ndim, -np.inf)
    out[(slice(0, m),) * ndim] = table[(slice(0, m),) * ndim]
    return out


def combined_needs(potential, n_species: int):
    """The union of the triplet needs of every term: ``(first, second, ordered)`` or None."""
    needs = [x for x in map(triplet_needs, _leaves(potential)) if x is not None]
    if not needs:
        return None
    first = np.max([reach_table(f, n_species, 2) for f, _, _ in needs], axis=0)
    second = np.max([reach_table(s, n_species, 3) for _, s, _ in needs], axis=0)
    return first, second, any(o for _, _, o in needs)


def needs_full_list(potential) -> bool:
    """True if some term reads every neighbour of each atom (class attribute
    ``full_list = True``, e.g. descriptor models) or needs triplets: the sum then runs on a
    full list, which every pair term also accepts."""
    return any(getattr(t, "full_list", False) or triplet_needs(t) is not None
               for t in _leaves(potential))


def needs_triplets(potential) -> bool:
    """True if some term of ``potential`` is a three-body term."""
    return any(triplet_needs(t) is not None for t in _leaves(potential))


def build_lists(potential, system: System, skin: float, *, n_species: int | None = None,
                capacity: int | None = None,
                triplet_capacity: int | None = None, host: bool = False) -> NeighborList:
    """Neighbour list (with triplets if needed) of ``system`` for ``potential``.

    ``n_species``: number of species of the job (default: from the system).  ``capacity`` and
    ``triplet_capacity``: slot counts (default: buckets); too small raises ``ValueError``.
    A geometry beyond the bounds of :mod:`rexfit.structures.neighbors` or
    :mod:`rexfit.structures.triplets` (non-finite, far too dense for the cutoffs) raises
    :class:`~rexfit.errors.GeometryError` before anything of its size is allocated.
    ``host=True``: NumPy arrays (host-side use), not device arrays.
    """
    if n_species is None:
        n_species = int(np.asarray(system.species).max(initial=0)) + 1
    need = combined_needs(potential, n_species)
    if need is None:
        return build_neighbor_list(system, potential.cutoff, skin, capacity=capacity,
                                   half=not needs_full_list(potential), host=host)
    first, second, ordered = need
    nbrs = build_neighbor_list(system, potential.cutoff, skin, half=False, capacity=capacity,
                               host=host)
    triplets = build_triplets(system, nbrs, first, second, skin=skin, ordered=ordered,
                              capacity=triplet_capacity, host=host)
    return with_triplets(nbrs, triplets)
