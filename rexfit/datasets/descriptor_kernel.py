"""The ``"descriptor"`` kernel of the dataset engine: models built on per-atom descriptors (SNAP,
linear and quadratic descriptor models), optionally over a parameter-free base (ZBL).

The structures of a dataset never move, so every atom's descriptor row B_i and its derivatives
∂B_i/∂d_p with respect to the pair vectors d_p = x_j − x_i of its neighbours (p = pairs with
centre i on the full neighbour list) are computed once, when the engine is made.  A model
evaluation is then only per-atom and per-pair arithmetic:

    E = Σ_i ε_{s_i}(B_i; θ) + E_base,      c_p = (∂ε/∂B)(B_{i(p)}) · ∂B_{i(p)}/∂d_p  (3-vector),

forces F_i = Σ_{p: i(p)=i} c_p − Σ_{p: j(p)=i} c_p (+ base), virial W = Σ_p sym(d_p ⊗ c_p)
(+ base): the same assembly as the analytic kernel, with c_p = dE/dd_p.  Gradients and
Jacobians with respect to θ go through this arithmetic only, which is what makes linear fits
(`<linear-solve>`: one Jacobian) and many gradient steps cheap.

The derivatives: a descriptor depends on a structure only through
:func:`rexfit.structures.neighbors.pair_displacements`; evaluating it on a system with zero
positions and unit cell and a neighbour list whose (float) image shifts are the pair vectors
makes the pair vectors its direct input.  Since each pair has one centre,
∂(Σ_i B_ik)/∂d_p = ∂B_{i(p),k}/∂d_p, so K reverse passes (one per component k) give every
per-pair derivative; the bispectrum gives them in one pass per chunk of whole atoms instead
(``Bispectrum.features_and_neighbor_gradients``, atom-major blocks).  Rows and derivatives
are computed per
structure, in blocks of one fixed shape shared by every dataset (:func:`structure_feature_rows`),
by one module-level jitted program (:data:`block_rows`).  Memory: 24·K bytes per pair slot per
model (kept on the host and streamed like every chunk input).

Geometric models (a PINN: ``energies_from_geometry``) depend on the pair vectors directly too
(its BOP); they are evaluated on the chunk's pair vectors with the precomputed rows, and
dE/dd_p = ∂E/∂d_p|_B + (∂E/∂B_i)·∂B_i/∂d_p.  Their triplets are pruned to those that
contribute at the fixed geometry (:func:`prune_lists`) and packed per chunk.

The base: terms without parameters (ZBL, a pair potential) are evaluated once, pair by pair
on the structures' full lists (:func:`structure_base`, one program for every dataset), and
enter every prediction as fixed energies, forces and virials.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from rexfit import programs
from rexfit.potentials.base import Linked, SumPotential
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System
from rexfit.structures.triplets import TripletNeighborList, Triplets


def is_model(term) -> bool:
    """A descriptor model: a ``descriptor`` and ``energies_from_features`` (energies from the
    rows alone) or ``energies_from_geometry`` (energies from the rows and the pair vectors,
    e.g. a PINN)."""
    return hasattr(term, "descriptor") and (hasattr(term, "energies_from_features")
                                            or hasattr(term, "energies_from_geometry"))


def is_geometric(term) -> bool:
    """A descriptor model whose energy also depends on the pair vectors directly."""
    return is_model(term) and not hasattr(term, "energies_from_features")


def prune_lists(potential, vectors, i, j, species, ij, ik, ordered: bool):
    """For a structure that never moves (a dataset entry): (pair indices to keep, kept
    triplets' ij, ik renumbered to the kept pairs), or None if some three-body term cannot
    tell which of its triplets contribute (then everything is kept).

    Three-body terms say so through ``active_triplets(vectors, ij, ik, s_i, s_j, s_k)`` (the
    PINN's BOP: its screening atoms reach 1.5 r_c, but few of those triplets contribute).  A
    pair is kept if it lies within ``pair_reach()`` of such a term (or the ``cutoff`` of any
    other term) or is a leg of a kept triplet.  Pair vectors ``vectors`` (E, 3), atom indices
    ``i``, ``j`` (E,), ``species`` (n,) of one structure; for the unordered triplet layout a
    triplet is kept if either order of its legs contributes."""
    keep = _active_triplets(potential, vectors, i, j, species, ij, ik, ordered)
    if keep is None:
        return None
    reach = max(float(leaf.pair_reach()) if hasattr(leaf, "pair_reach") else float(leaf.cutoff)
                for _, leaf in _named_leaves(potential))
    ij, ik = ij[keep], ik[keep]
    pairs = np.linalg.norm(vectors, axis=1) < reach
    pairs[ij] = True
    pairs[ik] = True
    renumber = np.cumsum(pairs) - 1
    return np.nonzero(pairs)[0], renumber[ij], renumber[ik]


def _active_triplets(potential, vectors, i, j, species, ij, ik, ordered: bool):
    """(T,) bool mask of the triplets that contribute at this geometry, or None (see
    :func:`prune_lists`)."""
    from rexfit.potentials.lists import triplet_needs

    leaves = [leaf for _, leaf in _named_leaves(potential) if triplet_needs(leaf) is not None]
    if not leaves or not all(hasattr(leaf, "active_triplets") for leaf in leaves):
        return None
    species = np.asarray(species)
    s_i, s_j = species[np.asarray(i)], species[np.asarray(j)]
    keep = np.zeros(len(ij), bool)
    for leaf in leaves:
        orders = ((ij, ik),) if ordered else ((ij, ik), (ik, ij))
        for a, b in orders:
            mask = leaf.active_triplets(vectors, a, b, s_i[a], s_j[a], s_j[b])
            if mask is None:
                return None
            keep |= mask
    return keep


def _named_leaves(potential, name=""):
    if isinstance(potential, SumPotential):
        for key, term in potential.terms:
            yield from _named_leaves(term, key)
    elif isinstance(potential, Linked):
        yield from _named_leaves(potential.term, name)
    else:
        yield name, potential


def species_linear(model) -> int | None:
    """The number of species S of a descriptor model whose energy is affine in the rows
    with coefficients that depend on the atom's species only (linear SNAP, linear descriptor
    models: ε_i = β0_s + β_s·B_i), else None.  For such a model the forces and the virial
    are linear in β through per-atom *designs* (:func:`structure_feature_rows` with
    ``design_species``), and the per-pair derivatives need not be kept."""
    from rexfit.potentials.snap import DescriptorModel

    if hasattr(model, "species_linear"):  # the model says (linear ACE: LinearACE)
        return model.species_linear()
    if not isinstance(model, DescriptorModel) or model.quadratic:
        return None
    if getattr(model.descriptor, "quadratic", False):
        return None
    return len(model.elements)


def is_fixed_pair(term) -> bool:
    """A parameter-free pair term (class attribute ``fixed_pair = True``, e.g. ZBL): the base,
    evaluated once per structure."""
    return bool(getattr(term, "fixed_pair", False))


def descriptor_supported(potential) -> bool:
    """True if every term is a descriptor model or a parameter-free pair term (ZBL), with at
    least one model."""
    leaves = [leaf for _, leaf in _named_leaves(potential)]
    return any(map(is_model, leaves)) and all(is_model(t) or is_fixed_pair(t) for t in leaves)


def models(potential) -> list:
    """The descriptor models of ``potential``, in order."""
    return [leaf for _, leaf in _named_leaves(potential) if is_model(leaf)]


def base_potential(potential):
    """(SumPotential of the base terms, their params) or None without a base."""
    base = [(name, leaf) for name, leaf in _named_leaves(potential) if is_fixed_pair(leaf)]
    if not base:
        return None
    return SumPotential(tuple(base)), {name: {} for name, _ in base}


def model_params(potential, params) -> list:
    """The params of each descriptor model (as :func:`models`)."""
    out = []

    def walk(pot, prm):
        if isinstance(pot, SumPotential):
            for key, term in pot.terms:
                walk(term, prm[key])
        elif isinstance(pot, Linked):
            walk(pot.term, pot.resolve(prm))
        elif is_model(pot):
            out.append(prm)

    walk(potential, params)
    return out


def feature_rows(descriptor, species, mask, i, j, d, pair_mask, cutoff: float,
                 triplets=None):
    """(B (n, K), ∂B/∂d per pair (E, K, 3)) of one structure (or of several packed into one
    flat system) from its full neighbour list: atom indices i, j (E,), pair vectors d (E, 3)
    Å, masks, and the list's triplets (a :class:`~rexfit.structures.triplets.Triplets`) for
    descriptors that need them, by K reverse passes of Σ_i B_i, one per component k (the
    bispectrum has its own one-pass form, :func:`structure_feature_rows`)."""
    n = species.shape[0]

    def geometry(vectors):  # zero positions, the pair vectors as (float) image shifts
        system = System(positions=jnp.zeros((n, 3), vectors.dtype), cell=jnp.eye(3),
                        species=species, mask=mask, pbc=(True, True, True))
        fields = dict(i=i, j=j, shifts=vectors, mask=pair_mask,
                      ref_positions=jnp.zeros((n, 3), vectors.dtype), ref_cell=jnp.eye(3),
                      cutoff=cutoff, skin=0.0, half=False)
        nbrs = NeighborList(**fields) if triplets is None else \
            TripletNeighborList(**fields, triplets=triplets)
        return system, nbrs

    def features(vectors):
        return descriptor.features(*geometry(vectors))

    def summed(v):
        rows = features(v)
        return jnp.sum(rows, axis=0), rows

    total, pullback, rows = jax.vjp(summed, d, has_aux=True)
    k = total.shape[0]
    grads = jax.lax.map(lambda e: pullback(e)[0], jnp.eye(k, dtype=d.dtype))  # (K, E, 3)
    return rows, jnp.where(pair_mask[:, None, None], jnp.moveaxis(grads, 0, 1), 0.0)


# ----------------------------------------------------------------------------- feature blocks
#
# Descriptor rows and their pair derivatives are computed once per structure, when an engine
# is made, in *blocks*: whole structures packed one after another into one flat system of
# BLOCK_ATOMS atom slots and BLOCK_PAIRS pair slots (a structure larger than that gets a block
# of its own, sized by the engine's shape ladder).  The block shape does not depend on the
# dataset, its buckets or its chunks, so every dataset of a job (training and validation
# parts alike) runs the one compiled program per descriptor.

#: atom slots of a feature block
BLOCK_ATOMS = 128
#: pair slots of a feature block (a multiple of the bispectrum's pair chunk)
BLOCK_PAIRS = 8192


def _block_rows(descriptor, cutoff, ordered, species, mask, i, j, d, pair_mask, tij, tik,
                tmask):
    triplets = None if tij is None else Triplets(ij=tij, ik=tik, mask=tmask, ordered=ordered)
    return feature_rows(descriptor, species, mask, i, j, d, pair_mask, cutoff, triplets)


#: (descriptor, cutoff, ordered | None, block arrays) -> (B (A, K), ∂B/∂d (P, K, 3)); jitted
#: once, static arguments hash by value (descriptors are frozen dataclasses)
block_rows = programs.jit(_block_rows, static_argnums=(0, 1, 2))


@dataclasses.dataclass(frozen=True, eq=False)
class Geometry:
    """What the descriptors see of one structure: species (N,), full-list pairs i, j (E,)
    with their vectors d (E, 3) Å, and triplets (ij, ik (T,) indices into the pairs,
    ordered) or None."""

    species: np.ndarray
    i: np.ndarray
    j: np.ndarray
    d: np.ndarray
    triplets: tuple | None = None

    @property
    def natoms(self) -> int:
        return len(self.species)


def _blocks(geometries: list[Geometry], max_pairs: int | None = BLOCK_PAIRS,
            max_atoms: int = BLOCK_ATOMS) -> list[list[int]]:
    """Structures (indices) packed into blocks of at most ``max_atoms`` atoms and ``max_pairs``
    pairs (None: no pair limit), first fit in order of decreasing size, so blocks are full
    whatever order the data come in (a dataset split in groups costs no more blocks than
    one); a structure larger than a block gets one of its own. Each structure's rows do not
    depend on the block it shares."""
    natoms = np.array([g.natoms for g in geometries], np.int64)
    npairs = np.array([len(g.i) for g in geometries], np.int64)
    pair_room = np.iinfo(np.int64).max if max_pairs is None else int(max_pairs)
    order = np.lexsort((np.arange(len(geometries)), -npairs, -natoms))
    out: list[list[int]] = []
    atoms_left = np.zeros(0, np.int64)
    pairs_left = np.zeros(0, np.int64)
    for k in order:
        fits = np.flatnonzero((atoms_left >= natoms[k]) & (pairs_left >= npairs[k]))
        if fits.size:
            b = int(fits[0])
            out[b].append(int(k))
            atoms_left[b] -= natoms[k]
            pairs_left[b] -= npairs[k]
            continue
        out.append([int(k)])
        atoms_left = np.append(atoms_left, max(max_atoms - natoms[k], 0))
        pairs_left = np.append(pairs_left, max(pair_room - npairs[k], 0))
    return [sorted(block) for block in out]


def _neighbor_block_rows(descriptor, species, mask, neighbor_species, d, slot_mask):
    return descriptor.features_and_neighbor_gradients(species, mask, neighbor_species, d,
                                                      slot_mask)


#: (descriptor, atom-major block arrays) -> (B (A, K), ∂B/∂d (A, M, K, 3)); jitted once
neighbor_block_rows = programs.jit(_neighbor_block_rows, static_argnums=0)

#: Voigt pairs of virial and stress columns, the dataset engine's order (xx yy zz yz xz xy)
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def _neighbor_block_design(descriptor, n_species, species, mask, neighbor_species,
                           neighbor_index, d, slot_mask):
    """Rows B (A, K), force design D (A, S, K, 3) and per-atom virial design V (A, K, 6)
    of a block: D[a, s] = Σ over atoms i of species s of ∂B_i/∂x_a (with the sign of a
    force: F_a = Σ_s β_s·D[a, s] for ε_i = β0_s + β_s·B_i), V[i] = Σ_m sym(d_im ⊗ ∂B_i/∂d_im)
    in Voigt order (W = Σ_s β_s·Σ_{i of species s} V[i]).  neighbor_index (A, M): the block
    atom of each neighbour slot (whole structures per block, so every neighbour is in it)."""
    rows, grads = descriptor.features_and_neighbor_gradients(species, mask, neighbor_species,
                                                             d, slot_mask)
    n_atoms, slots, k, _ = grads.shape
    live = mask & (species >= 0) & (species < n_species)
    grads = jnp.where(live[:, None, None, None], grads, 0.0)
    centre = jnp.clip(species, 0, n_species - 1)
    design = jnp.zeros((n_atoms, n_species, k, 3), grads.dtype)
    design = design.at[jnp.arange(n_atoms), centre].add(jnp.sum(grads, axis=1))
    design = design.at[neighbor_index.reshape(-1), jnp.repeat(centre, slots)].add(
        -grads.reshape(-1, k, 3))
    d = jnp.where(slot_mask[..., None], d, 0.0)
    virial = jnp.stack([0.5 * jnp.einsum("amk,am->ak", grads[..., a], d[..., b])
                        + 0.5 * jnp.einsum("amk,am->ak", grads[..., b], d[..., a])
                        for a, b in VOIGT], axis=-1)
    return rows, design, virial


#: (descriptor, S, atom-major block arrays) -> (B, force design, per-atom virial design)
neighbor_block_design = programs.jit(_neighbor_block_design, static_argnums=(0, 1))


def _slots(g: Geometry) -> np.ndarray:
    """Each pair's slot among its centre's pairs (0, 1, … in list order)."""
    order = np.argsort(g.i, kind="stable")
    counts = np.bincount(g.i, minlength=g.natoms)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.empty(len(g.i), np.int64)
    slot[order] = np.arange(len(g.i)) - np.repeat(starts, counts)
    return slot


def _atom_major_rows(descriptor, geometries: list[Geometry], ladder,
                     design_species: int | None = None) -> list:
    """:func:`structure_feature_rows` for descriptors with ``features_and_neighbor_gradients``
    (the bispectrum): blocks of BLOCK_ATOMS atoms (or the descriptor's ``block_atoms``: one
    block shape for more datasets where each shape costs a long compilation, linear ACE),
    each atom with M neighbour slots (M the ladder rung of the largest neighbour count), one
    program per (descriptor, M)."""
    from rexfit.structures.neighbors import PADDING_DISPLACEMENT

    slots = [_slots(g) for g in geometries]
    most = max((int(s.max()) + 1 for s in slots if len(s)), default=1)
    m = ladder(most, 8)
    out: list = [None] * len(geometries)
    size = int(getattr(descriptor, "block_atoms", BLOCK_ATOMS))
    for block in _blocks(geometries, max_pairs=None, max_atoms=size):  # packed by atoms only
        n_atoms = max(size, ladder(sum(geometries[k].natoms for k in block), 8))
        species = np.zeros(n_atoms, np.int32)
        mask = np.zeros(n_atoms, bool)
        neighbor_species = np.zeros((n_atoms, m), np.int32)
        neighbor_index = np.zeros((n_atoms, m), np.int32)
        d = np.tile(np.asarray(PADDING_DISPLACEMENT, np.float64), (n_atoms, m, 1))
        slot_mask = np.zeros((n_atoms, m), bool)
        a0, spans = 0, []
        for k in block:
            g, slot = geometries[k], slots[k]
            a1 = a0 + g.natoms
            species[a0:a1], mask[a0:a1] = g.species, True
            centre = g.i + a0
            neighbor_species[centre, slot] = g.species[g.j]
            neighbor_index[centre, slot] = g.j + a0
            d[centre, slot] = g.d
            slot_mask[centre, slot] = True
            spans.append((k, a0, a1, centre, slot))
            a0 = a1
        if design_species is not None:
            rows, design, virial = jax.device_get(neighbor_block_design(
                descriptor, design_species, species, mask, neighbor_species, neighbor_index,
                d, slot_mask))
            for k, a0, a1, _, _ in spans:
                which = np.clip(species[a0:a1], 0, design_species - 1)
                per_species = np.stack([virial[a0:a1][which == e].sum(axis=0)
                                        for e in range(design_species)])
                out[k] = (rows[a0:a1], (design[a0:a1], per_species))
            continue
        rows, grads = jax.device_get(neighbor_block_rows(descriptor, species, mask,
                                                         neighbor_species, d, slot_mask))
        for k, a0, a1, centre, slot in spans:
            out[k] = (rows[a0:a1], grads[centre, slot])
    return out


def supports_design(descriptor, geometries: list[Geometry]) -> bool:
    """True if :func:`structure_feature_rows` can give per-atom designs for these."""
    return (bool(geometries) and geometries[0].triplets is None
            and hasattr(descriptor, "features_and_neighbor_gradients"))


def structure_feature_rows(descriptor, cutoff: float, geometries: list[Geometry],
                           ladder, design_species: int | None = None) -> list[tuple]:
    """Per structure (host NumPy): descriptor rows (N, K) and their pair derivatives
    ∂B_{i(p)}/∂d_p (E, K, 3), from :data:`block_rows` on blocks of whole structures (or
    :data:`neighbor_block_rows`, atom-major, for a descriptor that has
    ``features_and_neighbor_gradients``).  ``ladder(n, multiple)`` sizes the blocks of
    structures larger than a block and the triplet and neighbour slots.

    With ``design_species`` S (a species-linear model, :func:`species_linear`; only where
    :func:`supports_design`): rows and, instead of the pair derivatives, the designs
    (force design (N, S, K, 3), virial design (S, K, 6)) of :func:`_neighbor_block_design`,
    about pairs-per-atom times less to keep."""
    from rexfit.structures.neighbors import PADDING_DISPLACEMENT

    if not geometries:
        return []
    if design_species is not None and not supports_design(descriptor, geometries):
        raise ValueError("structure_feature_rows: designs need an atom-major descriptor "
                         "(the bispectrum) without triplets")
    if geometries[0].triplets is None and hasattr(descriptor, "features_and_neighbor_gradients"):
        return _atom_major_rows(descriptor, geometries, ladder, design_species)
    out: list = [None] * len(geometries)
    blocks = _blocks(geometries)
    with_triplets = geometries[0].triplets is not None
    ordered = geometries[0].triplets[2] if with_triplets else None
    n_trip = ladder(max(sum(len(geometries[k].triplets[0]) for k in block)
                        for block in blocks), 8) if with_triplets else 0
    for block in blocks:
        na = sum(geometries[k].natoms for k in block)
        npair = sum(len(geometries[k].i) for k in block)
        n_atoms = max(BLOCK_ATOMS, ladder(na, 8))
        n_pairs = max(BLOCK_PAIRS, ladder(npair, 512))
        species = np.zeros(n_atoms, np.int32)
        mask = np.zeros(n_atoms, bool)
        i, j = np.zeros(n_pairs, np.int32), np.zeros(n_pairs, np.int32)
        d = np.tile(np.asarray(PADDING_DISPLACEMENT, np.float64), (n_pairs, 1))
        pair_mask = np.zeros(n_pairs, bool)
        if with_triplets:
            tij, tik = np.zeros(n_trip, np.int32), np.zeros(n_trip, np.int32)
            tmask = np.zeros(n_trip, bool)
        else:
            tij = tik = tmask = None
        a0 = p0 = t0 = 0
        spans = []
        for k in block:
            g = geometries[k]
            a1, p1 = a0 + g.natoms, p0 + len(g.i)
            species[a0:a1], mask[a0:a1] = g.species, True
            i[p0:p1], j[p0:p1], d[p0:p1], pair_mask[p0:p1] = g.i + a0, g.j + a0, g.d, True
            if with_triplets:
                ij, ik, _ = g.triplets
                t1 = t0 + len(ij)
                tij[t0:t1], tik[t0:t1], tmask[t0:t1] = ij + p0, ik + p0, True
                t0 = t1
            spans.append((k, a0, a1, p0, p1))
            a0, p0 = a1, p1
        rows, grads = jax.device_get(block_rows(descriptor, float(cutoff), ordered, species,
                                                mask, i, j, d, pair_mask, tij, tik, tmask))
        for k, a0, a1, p0, p1 in spans:
            out[k] = (rows[a0:a1], grads[p0:p1])
    return out


def _pair_energies(potential, cutoff, params, si, sj, d, mask):
    """Per pair (energy (P,), dE/dd (P, 3)) of a pair potential on a full list: every pair
    evaluated alone, as a two-atom system whose one listed pair has the pair vector d_p (so
    that a full list's pair energy ½V(r_p) comes out), through ``potential.energy``."""
    zeros = jnp.zeros((2, 3), d.dtype)

    def one(s_i, s_j, v, m):
        system = System(positions=zeros, cell=jnp.eye(3, dtype=d.dtype),
                        species=jnp.stack([s_i, s_j]), mask=jnp.ones(2, bool),
                        pbc=(True, True, True))
        nbrs = NeighborList(i=jnp.zeros(1, jnp.int32), j=jnp.ones(1, jnp.int32),
                            shifts=v[None], mask=m[None], ref_positions=zeros,
                            ref_cell=system.cell, cutoff=cutoff, skin=0.0, half=False)
        return potential.energy(params, system, nbrs)

    return jax.vmap(jax.value_and_grad(one, argnums=2))(si, sj, d, mask)


#: (pair potential, cutoff, params, si, sj, d, mask) -> per pair (energy, dE/dd); jitted once
pair_energies = programs.jit(_pair_energies, static_argnums=(0, 1))


def structure_base(potential, params, geometries: list[Geometry]) -> list[tuple]:
    """Per structure (energy eV, forces (N, 3) eV/Å, virial W = ∂E/∂ε (3, 3) eV) of a
    parameter-free *pair* potential (the base of :func:`base_potential`: ZBL terms) from the
    structures' full lists, pair by pair in blocks of BLOCK_PAIRS (one program for every
    dataset); pairs beyond its cutoff are left out (they contribute nothing)."""
    if not all(is_fixed_pair(leaf) for _, leaf in _named_leaves(potential)):
        raise TypeError("structure_base: parameter-free pair terms (fixed_pair) only")
    cutoff = float(potential.cutoff)
    kept, parts = [], []
    for g in geometries:
        near = np.nonzero(np.sum(g.d * g.d, axis=1) < (cutoff * (1.0 + 1e-9)) ** 2)[0]
        kept.append(near)
        parts.append((g.species[g.i[near]], g.species[g.j[near]], g.d[near]))
    total = sum(len(k) for k in kept)
    size = BLOCK_PAIRS
    padded = max(size, -(-total // size) * size)
    si, sj = np.zeros(padded, np.int32), np.zeros(padded, np.int32)
    d = np.tile(np.asarray([cutoff, cutoff, cutoff], np.float64), (padded, 1))
    mask = np.zeros(padded, bool)
    start = 0
    for a, b, v in parts:
        stop = start + len(v)
        si[start:stop], sj[start:stop], d[start:stop], mask[start:stop] = a, b, v, True
        start = stop
    energy, slope = np.zeros(padded), np.zeros((padded, 3))
    for lo in range(0, padded, size):
        part = slice(lo, lo + size)
        e, c = jax.device_get(pair_energies(potential, cutoff, params, si[part], sj[part],
                                            d[part], mask[part]))
        energy[part], slope[part] = np.where(mask[part], e, 0.0), c * mask[part, None]
    out, start = [], 0
    for g, near in zip(geometries, kept):
        stop = start + len(near)
        e, c, v = energy[start:stop], slope[start:stop], d[start:stop]
        forces = np.zeros((g.natoms, 3))
        np.add.at(forces, g.i[near], c)
        np.subtract.at(forces, g.j[near], c)
        w = c.T @ v
        out.append((float(np.sum(e)), forces, 0.5 * (w + w.T)))
        start = stop
    return out


def _flat_geometry(c):
    """One System and (triplet) neighbour list for all B structures of a descriptor-kernel
    chunk: atoms are the flattened atom slots (zero positions, unit cell), pairs the flattened
    pair slots with their pair vectors as float image shifts, so that
    ``pair_displacements`` returns the pair vectors (and is differentiable in them)."""
    b_structures, n_atoms = c.mask.shape
    n_pairs = c.pair_mask.shape[1]
    total = b_structures * n_atoms
    system = System(positions=jnp.zeros((total, 3), c.d.dtype), cell=jnp.eye(3, dtype=c.d.dtype),
                    species=c.species.reshape(-1), mask=c.mask.reshape(-1),
                    pbc=(True, True, True))
    fields = dict(i=c.gi.reshape(-1), j=c.gj.reshape(-1),
                  shifts=jnp.moveaxis(c.d, 0, -1).reshape(-1, 3),
                  mask=c.pair_mask.reshape(-1), ref_positions=system.positions,
                  ref_cell=system.cell, cutoff=c.cutoff, skin=0.0, half=False)
    if c.tij is None:
        return system, NeighborList(**fields)
    offset = 0 if c.packed else (jnp.arange(b_structures, dtype=c.tij.dtype) * n_pairs)[:, None]
    triplets = Triplets(ij=(c.tij + offset).reshape(-1), ik=(c.tik + offset).reshape(-1),
                        mask=c.tmask.reshape(-1), ordered=c.ordered)
    return system, TripletNeighborList(**fields, triplets=triplets)


def descriptor_outputs(potential, params, c, scatter, voigt):
    """Kernel "descriptor": energy (B,), forces (3, B, n), virial (6, B), stress (6, B) of a
    chunk ``c`` with precomputed ``features`` / ``feature_grads`` (one per model) and
    ``base``; ``scatter(values (B, E), index, shape, live)`` sums pairs onto atom slots."""
    b_structures, n_atoms = c.mask.shape
    species = c.species.reshape(-1)
    mask = c.mask.reshape(-1)
    energy = jnp.zeros(b_structures)
    slope = [0.0, 0.0, 0.0]  # dE/dd per pair, x y z
    linear_forces = linear_virial = 0.0  # of species-linear models with designs
    for model, prm, rows, grads in zip(models(potential), model_params(potential, params),
                                       c.features, c.feature_grads):
        flat = rows.reshape(b_structures * n_atoms, -1)
        if isinstance(grads, tuple):  # designs (force (B, n, S, K, 3), virial (B, S, K, 6))
            design, virial_design = grads
            n_species, k = design.shape[2], design.shape[3]
            per_atom = model.energies_from_features(prm, flat, species, mask)
            energy = energy + jnp.sum(per_atom.reshape(b_structures, n_atoms), axis=1)
            beta = jax.grad(lambda b, model=model, prm=prm: jnp.sum(
                model.energies_from_features(prm, b, jnp.arange(n_species),
                                             jnp.ones(n_species, bool))))(
                jnp.zeros((n_species, k), flat.dtype))  # ∂ε/∂B per species (S, K)
            linear_forces = linear_forces + jnp.einsum("bnskx,sk->xbn", design, beta)
            linear_virial = linear_virial + jnp.einsum("bskv,sk->vb", virial_design, beta)
            continue
        if is_geometric(model):
            system, nbrs = _flat_geometry(c)

            def total(b, vectors, model=model, prm=prm, system=system, nbrs=nbrs):
                moved = dataclasses.replace(nbrs, shifts=vectors)
                e = model.energies_from_geometry(prm, b, system, moved)
                return jnp.sum(e), e

            (g, direct), per_atom = jax.grad(total, argnums=(0, 1), has_aux=True)(
                flat, nbrs.shifts)
            direct = direct.reshape(b_structures, -1, 3)  # ∂E/∂d_p at fixed rows
            for a in range(3):
                slope[a] = slope[a] + direct[..., a]
        else:
            def total(b, model=model, prm=prm):
                e = model.energies_from_features(prm, b, species, mask)
                return jnp.sum(e), e

            g, per_atom = jax.grad(total, has_aux=True)(flat)  # (B·n, K), (B·n,)
        energy = energy + jnp.sum(per_atom.reshape(b_structures, n_atoms), axis=1)
        at_centre = g[c.gi]  # (B, E, K): ∂ε/∂B of each pair's centre
        for a in range(3):
            slope[a] = slope[a] + jnp.sum(at_centre * grads[..., a], axis=-1)
    live = jnp.any(c.mask)
    shape = c.mask.shape
    if isinstance(slope[0], float):  # designs only: no per-pair contributions
        forces = jnp.zeros((3,) + shape, energy.dtype)
        virial = jnp.zeros((6, b_structures), energy.dtype)
    else:
        forces = jnp.stack([scatter(s, c.gi, shape, live) - scatter(s, c.gj, shape, live)
                            for s in slope])
        virial = jnp.stack([0.5 * jnp.sum(slope[a] * c.d[b] + slope[b] * c.d[a], axis=1)
                            for a, b in voigt])
    forces, virial = forces + linear_forces, virial + linear_virial
    if c.base is not None:
        base_energy, base_forces, base_virial = c.base
        energy, forces, virial = energy + base_energy, forces + base_forces, virial + base_virial
    return energy, forces, virial, virial / c.volume[None]
