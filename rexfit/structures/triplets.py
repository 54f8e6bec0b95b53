"""Host-side (NumPy) lists of neighbour triplets for three-body potentials, padded to buckets.

A triplet is two pair slots ``(ij, ik)`` of a *full* (``half=False``) :class:`NeighborList`
that share their central atom i and are different slots (j ≠ k as neighbours; j and k may be
the same atom seen through different periodic images).  Pair slots, not atoms, are stored, so
displacements, image shifts and their derivatives with respect to positions and cell come from
the pair list (:func:`~rexfit.structures.neighbors.pair_displacements`).  The memory and work
are O(T), T the number of triplets, never a dense (N, M, M) tensor over M neighbours per atom.

Pruning.  Only legs that can matter are combined: a triplet is listed if its first leg ij is
shorter than ``first_cutoffs[s_i, s_j] + skin`` and its second leg ik shorter than
``second_cutoffs[s_i, s_k] + skin`` (or ``second_cutoffs[s_i, s_j, s_k] + skin``), distances
taken at build time.  With ``skin`` the neighbour list's skin, a triplet list stays complete
for as long as :func:`~rexfit.structures.neighbors.needs_rebuild` says the pair list does (no
distance can have changed by more than the skin); potentials still apply their exact cutoffs.

Capacity and padding.  Slots beyond the real triplets are padding: ``ij = ik = 0`` and
``mask`` False.  Pair slot 0 always exists (it may itself be padding), so gathers stay in
range and every padding value is finite; potentials must ignore masked triplets with
``jnp.where``.  The capacity defaults to :func:`~rexfit.structures.neighbors.bucket_size` of
the triplet count (at most 50 % padding, few distinct shapes → few ``jit`` compilations); an
explicit capacity that is too small raises ``ValueError``.  More candidate triplets than
:data:`MAX_TRIPLETS` (or :data:`MAX_TRIPLETS_PER_ATOM` per atom) raise
:class:`~rexfit.errors.GeometryError` before they are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.errors import GeometryError
from rexfit.structures.neighbors import NeighborList, bucket_size, build_neighbor_list
from rexfit.structures.system import System


@jax.tree_util.register_dataclass
@dataclass(frozen=True, eq=False)
class Triplets:
    """Triplets of a full neighbour list; a pytree with fixed capacity T.

    ij, ik: (T,) int32 pair slots (into the neighbour list's i, j, shifts) of the legs i→j and
    i→k; ``nbrs.i[ij] == nbrs.i[ik]`` for real triplets.  mask: (T,) bool, True for real
    triplets.  ordered (static): True if both (ij, ik) and (ik, ij) are listed (each angle twice,
    as a sum over k ≠ j needs, e.g. Tersoff's ζ_ij); False if each unordered pair of legs is
    listed once, with ij < ik (e.g. Stillinger–Weber's Σ_{j<k}).
    """

    ij: jax.Array
    ik: jax.Array
    mask: jax.Array
    ordered: bool = field(default=True, metadata=dict(static=True))

    @property
    def capacity(self) -> int:
        """Number of triplet slots T (static)."""
        return self.ij.shape[0]

    @property
    def count(self) -> int:
        """Number of real triplets (host-side; not for use under ``jit``)."""
        return int(np.count_nonzero(np.asarray(self.mask)))


@jax.tree_util.register_dataclass
@dataclass(frozen=True, eq=False)
class TripletNeighborList(NeighborList):
    """A full :class:`NeighborList` carrying its :class:`Triplets` (field ``triplets``).

    Everything that takes a NeighborList (``pair_displacements``, ``needs_rebuild``, pair
    potentials) accepts it; three-body potentials read ``nbrs.triplets``.
    """

    triplets: Triplets = field(kw_only=True)


def _cutoff_table(cutoffs, n_species: int, ndim: int, name: str) -> np.ndarray:
    """Cutoffs as a float64 table of shape (S,)*ndim (None → +inf, scalars broadcast)."""
    if cutoffs is None:
        return np.full((n_species,) * ndim, np.inf)
    table = np.asarray(cutoffs, dtype=np.float64)
    if table.ndim == 0:
        return np.full((n_species,) * ndim, float(table))
    if table.ndim == 2 and ndim == 3:  # [s_i, s_k] → [s_i, s_j, s_k]
        table = np.broadcast_to(table[:, None, :], (table.shape[0],) * 3)
    if table.shape != (table.shape[0],) * ndim:
        raise ValueError(f"{name}: expected a square table, got shape {table.shape}")
    if table.shape[0] < n_species:  # species beyond the table do not take part
        full = np.full((n_species,) * ndim, -np.inf)
        full[(slice(0, table.shape[0]),) * ndim] = table
        table = full
    return table


#: Candidate triplets of one list (pairs of legs sharing a centre, before the per-leg
#: cutoffs prune them; each costs about 40 bytes while building).
MAX_TRIPLETS = 100_000_000
#: Candidate triplets per atom, on average (a centre with 500 candidate legs has 250,000).
MAX_TRIPLETS_PER_ATOM = 250_000


def _check_triplets(count: int, natoms: int) -> None:
    """Raise :class:`~rexfit.errors.GeometryError` before ``count`` candidate triplets of
    ``natoms`` atoms are built if they exceed :data:`MAX_TRIPLETS` or
    :data:`MAX_TRIPLETS_PER_ATOM` per atom."""
    if count <= min(MAX_TRIPLETS, MAX_TRIPLETS_PER_ATOM * natoms):
        return
    raise GeometryError(
        f"{natoms} atom(s) would have {count / natoms:.4g} neighbour triplets each "
        f"({count:,} in all; at most {MAX_TRIPLETS_PER_ATOM:,} per atom and {MAX_TRIPLETS:,} "
        "in all are listed): atoms are far too close together for the three-body cutoffs; "
        "check the structure's geometry and the potential's cutoffs")


def triplet_pairs(
    system: System,
    nbrs: NeighborList,
    first_cutoffs=None,
    second_cutoffs=None,
    *,
    skin: float | None = None,
    ordered: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Unpadded triplets (ij, ik) as int64 arrays, sorted by ij then ik (host-side).

    first_cutoffs: None (every listed pair), a float, or an (S, S) table indexed [s_i, s_j]
    (Å) for the leg i→j.  second_cutoffs: None (same as ``first_cutoffs``), a float, an (S, S)
    table [s_i, s_k] or an (S, S, S) table [s_i, s_j, s_k] for the leg i→k.  A leg qualifies
    if its build-time length is < cutoff + skin (``skin`` defaults to ``nbrs.skin``).  Species
    outside a table never qualify.
    """
    if nbrs.half:
        raise ValueError("triplets need a full neighbour list (build it with half=False)")
    skin = nbrs.skin if skin is None else float(skin)
    species = np.asarray(system.species, dtype=np.int64)
    n_species = int(species.max(initial=0)) + 1
    for table in (first_cutoffs, second_cutoffs):
        if table is not None and np.ndim(table) > 0:
            n_species = max(n_species, np.shape(table)[0])
    first = _cutoff_table(first_cutoffs, n_species, 2, "first_cutoffs")
    second = first if second_cutoffs is None else second_cutoffs
    second = _cutoff_table(second, n_species, 3, "second_cutoffs")

    mask = np.asarray(nbrs.mask, dtype=bool)
    slots = np.nonzero(mask)[0]
    i = np.asarray(nbrs.i, dtype=np.int64)[slots]
    j = np.asarray(nbrs.j, dtype=np.int64)[slots]
    shifts = np.asarray(nbrs.shifts, dtype=np.float64)[slots]
    pos = np.asarray(system.positions, dtype=np.float64)
    cell = np.asarray(system.cell, dtype=np.float64)
    r = np.linalg.norm(pos[j] + shifts @ cell - pos[i], axis=1)
    si, sj = species[i], species[j]

    # candidate legs: could be a first leg, or a second leg for some species of the first
    first_ok = r < first[si, sj] + skin
    # second_ok[c, t]: leg c qualifies as the second leg of a triplet whose first leg ends on
    # species t (thresholds second[s_i, t, s_k])
    second_ok = r[:, None] < second[si, :, sj] + skin
    cand = np.nonzero(first_ok | second_ok.any(axis=1))[0]
    if np.any(np.diff(i[cand]) < 0):  # builders list pairs by centre already
        cand = cand[np.argsort(i[cand], kind="stable")]
    first_ok, second_ok, sj = first_ok[cand], second_ok[cand], sj[cand]

    # groups of candidates sharing a centre: start and size per candidate
    n_cand = len(cand)
    new_group = np.ones(n_cand, dtype=bool)
    new_group[1:] = i[cand][1:] != i[cand][:-1]
    starts = np.nonzero(new_group)[0]
    sizes = np.diff(np.append(starts, n_cand))
    size = np.repeat(sizes, sizes)  # group size of each candidate
    rank = np.arange(n_cand) - np.repeat(starts, sizes)  # position within its group

    # pairs of candidate positions (a, b) in one group, a ≠ b (ordered) or a < b (unordered)
    partners = size - 1 if ordered else size - 1 - rank
    total = int(partners.sum())
    _check_triplets(total, max(int(np.count_nonzero(np.asarray(system.mask))), 1))
    a = np.repeat(np.arange(n_cand), partners)
    offset = np.arange(total) - np.repeat(np.cumsum(partners) - partners, partners)
    if ordered:  # b runs over the group, skipping a itself
        b = np.repeat(np.arange(n_cand) - rank, partners) + offset
        b += b >= a
    else:
        b = a + 1 + offset

    def qualifies(p, q):
        second_q = second_ok[:, 0][q] if second_ok.shape[1] == 1 else second_ok[q, sj[p]]
        return first_ok[p] & second_q

    keep = qualifies(a, b)
    if not ordered:
        keep |= qualifies(b, a)
    a, b = slots[cand[a[keep]]], slots[cand[b[keep]]]
    if len(a) > 1:
        key_sorted = (np.diff(a) > 0) | ((np.diff(a) == 0) & (np.diff(b) > 0))
        if not key_sorted.all():  # only when the pair list was not sorted by slot per centre
            order = np.lexsort((b, a))
            a, b = a[order], b[order]
    return a, b


def build_triplets(
    system: System,
    nbrs: NeighborList,
    first_cutoffs=None,
    second_cutoffs=None,
    *,
    skin: float | None = None,
    ordered: bool = True,
    capacity: int | None = None,
    host: bool = False,
) -> Triplets:
    """Padded :class:`Triplets` of a full neighbour list (see :func:`triplet_pairs`).

    ``capacity`` (triplet slots) defaults to :func:`bucket_size` of the triplet count; a
    too-small value raises ``ValueError``.  ``host=True``: NumPy arrays (not on the device).
    """
    ij, ik = triplet_pairs(system, nbrs, first_cutoffs, second_cutoffs, skin=skin,
                           ordered=ordered)
    count = len(ij)
    if capacity is None:
        capacity = bucket_size(count)
    elif capacity < count:
        raise ValueError(f"triplet list needs {count} triplets, capacity is {capacity}")
    padded = np.zeros((2, capacity), dtype=np.int32)  # padding: slot 0 (see module doc)
    padded[0, :count], padded[1, :count] = ij, ik
    mask = np.zeros(capacity, dtype=bool)
    mask[:count] = True
    # device_put, not jnp.asarray: no program compiled per array shape
    put = (lambda a: a) if host else jax.device_put
    return Triplets(ij=put(padded[0]), ik=put(padded[1]), mask=put(mask), ordered=bool(ordered))


def with_triplets(nbrs: NeighborList, triplets: Triplets) -> TripletNeighborList:
    """``nbrs`` (a full list) together with ``triplets`` built from it."""
    if nbrs.half:
        raise ValueError("triplets need a full neighbour list (build it with half=False)")
    return TripletNeighborList(
        i=nbrs.i, j=nbrs.j, shifts=nbrs.shifts, mask=nbrs.mask,
        ref_positions=nbrs.ref_positions, ref_cell=nbrs.ref_cell,
        cutoff=nbrs.cutoff, skin=nbrs.skin, half=False, triplets=triplets,
    )


def build_triplet_neighbor_list(
    system: System,
    cutoff: float,
    skin: float = 0.5,
    first_cutoffs=None,
    second_cutoffs=None,
    *,
    ordered: bool = True,
    capacity: int | None = None,
    triplet_capacity: int | None = None,
) -> TripletNeighborList:
    """Full neighbour list within ``cutoff + skin`` plus its triplets, in one call.

    The per-leg cutoff tables (Å, without skin) prune the triplets as in :func:`triplet_pairs`;
    ``capacity`` / ``triplet_capacity`` are the pair / triplet slot counts (default: buckets).
    """
    nbrs = build_neighbor_list(system, cutoff, skin, half=False, capacity=capacity)
    triplets = build_triplets(system, nbrs, first_cutoffs, second_cutoffs, skin=skin,
                              ordered=ordered, capacity=triplet_capacity)
    return with_triplets(nbrs, triplets)


def require_triplets(nbrs) -> Triplets:
    """``nbrs.triplets`` of a :class:`TripletNeighborList`, or a clear error (trace time)."""
    triplets = getattr(nbrs, "triplets", None)
    if triplets is None or nbrs.half:
        raise TypeError(
            "a three-body potential needs a full neighbour list with triplets: build it with "
            "potential.neighbor_list(system, skin) or build_triplet_neighbor_list(...)"
        )
    return triplets
