"""The unit the dataset engine evaluates: a :class:`Chunk` of B stacked, padded structures of
one bucket (a pytree that crosses ``jit``), how one of its structures becomes a System and
neighbour list again, and the ``"autodiff"`` kernel's outputs of a chunk (a ``jax.vmap`` of the
reverse pass of :func:`rexfit.physics.properties.evaluate`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.datasets import descriptor_kernel as dk
from rexfit.physics.strain import deform, tensor_to_voigt
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System
from rexfit.structures.triplets import TripletNeighborList, Triplets

#: Voigt order of stress rows and of the virial components (xx yy zz yz xz xy).
VOIGT = dk.VOIGT


@jax.tree_util.register_dataclass
@dataclass(frozen=True, eq=False)
class Chunk:
    """B stacked structures of one bucket: a pytree, leading axis = structure (B), n atom
    slots, E pair slots, T triplet slots.  Fields a kernel does not use are None.

    Common: species, mask (B, n); pair_mask (B, E).  Targets and residual scales:
    e_ref (B,), f_ref (3, B, n), s_ref (6, B), ce (B,), cf (B, n) (0 on padding atoms),
    cs (B,), volume (B,) Å³ (1 where no stress is defined).
    Autodiff kernel: positions (B, n, 3), cell (B, 3, 3), i, j (B, E), shifts (B, E, 3)
    (int8 when small), triplets tij, tik, tmask (B, T) or None.
    Analytic kernel: gi, gj (B, E) atom slots in the flattened (B·n) atom axis, si, sj (B, E)
    species of the two atoms, d (3, B, E) pair vectors x_j + n·cell − x_i in Å (padding
    pairs: the far dummy of the neighbour lists).
    Descriptor kernel: the analytic fields on the full list, plus per descriptor model
    features (B, n, K) and feature_grads (B, E, K, 3) (∂B_i/∂d_p of each pair's centre i) or,
    for a species-linear model (:func:`descriptor_kernel.species_linear`), its designs
    (force (B, n, S, K, 3), virial (B, S, K, 6)),
    and base = (energy (B,), forces (3, B, n), virial (6, B)) of parameter-free terms or None.
    Flat autodiff chunk (``flat``, :func:`flat_outputs`): the B structures back to back in
    one system of n atom slots and E pair slots: species, mask, owner (n,) (the structure of
    each atom slot), positions (n, 3), f_ref (3, n), cf (n,), pair_mask, i, j (E,) (atom
    slots of the chunk), shifts (E, 3), cell (B, 3, 3); forces are then (3, n).
    Atom-major analytic chunk (``slots`` > 0; full lists, :func:`rexfit.datasets.stacking.
    stack_bucket` for family kernels that ask for it): every atom slot a of the flattened
    (B·n) atom axis owns the pair slots a·slots … (a + 1)·slots − 1 (E = n·slots), its
    neighbours first, then padding pairs; sums over an atom's neighbours are then sums over
    an axis, not scatters.
    Kept terms (``fixed``, analytic kernel, :mod:`rexfit.datasets.kept_terms`): per leaf of
    the potential, the parameter-free terms its family kernel keeps for this chunk (device
    arrays, computed once) or None; None: every kernel computes them per evaluation.
    Static: pbc, cutoff, skin, half, ordered (triplet layout, None without triplets), packed
    (descriptor kernel with pruned triplets: tij, tik index the chunk's flattened (B·E) pair
    slots and the triplets of all B structures are packed one after another, row-major over
    (B, T), so that no structure pads its own triplet slots).
    """

    species: Any
    mask: Any
    pair_mask: Any
    e_ref: Any
    f_ref: Any
    s_ref: Any
    ce: Any
    cf: Any
    cs: Any
    volume: Any
    positions: Any = None
    cell: Any = None
    i: Any = None
    j: Any = None
    shifts: Any = None
    tij: Any = None
    tik: Any = None
    tmask: Any = None
    gi: Any = None
    gj: Any = None
    si: Any = None
    sj: Any = None
    d: Any = None
    features: Any = None
    feature_grads: Any = None
    base: Any = None
    owner: Any = None
    fixed: Any = None
    pbc: tuple = field(default=(True, True, True), metadata=dict(static=True))
    cutoff: float = field(default=0.0, metadata=dict(static=True))
    skin: float = field(default=0.0, metadata=dict(static=True))
    half: bool = field(default=True, metadata=dict(static=True))
    ordered: bool | None = field(default=None, metadata=dict(static=True))
    packed: bool = field(default=False, metadata=dict(static=True))
    flat: bool = field(default=False, metadata=dict(static=True))
    slots: int = field(default=0, metadata=dict(static=True))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(B, n, E): structures, atom slots and pair slots (flat: in all)."""
        if self.flat:
            return self.e_ref.shape[0], self.mask.shape[0], self.pair_mask.shape[0]
        b, n = self.mask.shape
        return b, n, self.pair_mask.shape[1]

    def nbytes(self) -> int:
        return sum(np.asarray(leaf).nbytes for leaf in jax.tree_util.tree_leaves(self))


def _structure(c: Chunk) -> tuple[System, NeighborList]:
    """System and neighbour list of one (un-batched) structure of an autodiff chunk."""
    system = System(positions=c.positions, cell=c.cell, species=c.species, mask=c.mask,
                    pbc=c.pbc)
    fields = dict(i=c.i, j=c.j, shifts=c.shifts.astype(jnp.int32), mask=c.pair_mask,
                  ref_positions=c.positions, ref_cell=c.cell, cutoff=c.cutoff, skin=c.skin,
                  half=c.half)
    if c.tij is None:
        return system, NeighborList(**fields)
    triplets = Triplets(ij=c.tij, ik=c.tik, mask=c.tmask, ordered=c.ordered)
    return system, TripletNeighborList(**fields, triplets=triplets)


def evaluate_structure(potential, params, system: System, nbrs: NeighborList, volume):
    """(energy eV, forces (N, 3) eV/Å, virial (3, 3) eV, stress (6,) eV/Å³) of one structure
    from one reverse pass of the energy w.r.t. positions and a homogeneous strain, the same
    operations as :func:`rexfit.physics.properties.evaluate`; ``volume`` divides the virial
    (passed in so that cells of zero volume stay finite)."""

    def energy(positions, strain):
        return potential.energy(params, deform(system.replace(positions=positions), strain),
                                nbrs)

    value, (g_x, g_eps) = jax.value_and_grad(energy, argnums=(0, 1))(
        system.positions, jnp.zeros((3, 3), system.positions.dtype))
    virial = 0.5 * (g_eps + g_eps.T)
    return value, -g_x, virial, tensor_to_voigt(virial) / volume


def atom_energies(potential, params, system: System, nbrs: NeighborList):
    """(N,) energies per atom of ``potential`` (sums and linked terms are followed down to
    terms with ``atom_energies``)."""
    from rexfit.potentials.base import Linked, SumPotential

    if isinstance(potential, SumPotential):
        return sum(atom_energies(term, params[name], system, nbrs)
                   for name, term in potential.terms)
    if isinstance(potential, Linked):
        return atom_energies(potential.term, potential.resolve(params), system, nbrs)
    return potential.atom_energies(params, system, nbrs)


def flat_supported(potential) -> bool:
    """Whether every term of ``potential`` declares ``autodiff_flat_chunks``: its atom
    energies depend on positions and cell only through :func:`pair_displacements` of its
    (pair-only) list, so that many structures can share one system (:func:`flat_outputs`)."""
    return all(getattr(leaf, "autodiff_flat_chunks", False)
               and callable(getattr(leaf, "atom_energies", None))
               for _, leaf in dk._named_leaves(potential))


def flat_outputs(potential, params, c: Chunk):
    """Kernel "autodiff" on a flat chunk: energy (B,), forces (3, n), virial (6, B), stress
    (6, B), from one reverse pass of the summed energy of all B structures w.r.t. the atom
    positions and one homogeneous strain per structure.  The system given to the potential
    has the unit cell and, as "shifts", each pair's image offset n·cell of its structure's
    strained cell in Å, so that x_j − x_i + shift·I is the structure's pair vector."""
    nstruct = c.e_ref.shape[0]
    eye = jnp.eye(3, dtype=c.positions.dtype)
    pair_owner = c.owner[c.i]
    images = c.shifts.astype(c.positions.dtype)

    def energy(positions, strain):
        f = eye[None] + strain  # (B, 3, 3)
        x = jnp.einsum("ak,akl->al", positions, f[c.owner])
        cells = c.cell @ f
        offsets = jnp.einsum("pk,pkl->pl", images, cells[pair_owner])
        system = System(positions=x, cell=eye, species=c.species, mask=c.mask, pbc=c.pbc)
        nbrs = NeighborList(i=c.i, j=c.j, shifts=offsets, mask=c.pair_mask, ref_positions=x,
                            ref_cell=eye, cutoff=c.cutoff, skin=c.skin, half=c.half)
        per = jax.ops.segment_sum(atom_energies(potential, params, system, nbrs), c.owner,
                                  num_segments=nstruct)
        return jnp.sum(per), per

    (_, e), (g_x, g_eps) = jax.value_and_grad(energy, argnums=(0, 1), has_aux=True)(
        c.positions, jnp.zeros((nstruct, 3, 3), c.positions.dtype))
    virial = 0.5 * (g_eps + jnp.swapaxes(g_eps, 1, 2))
    w = jnp.stack([virial[:, a, b] for a, b in VOIGT])  # (6, B)
    return e, -g_x.T, w, w / c.volume[None]


def autodiff_outputs(potential, params, c: Chunk):
    """Kernel "autodiff": energy (B,), forces (3, B, n), virial (6, B), stress (6, B)."""
    if c.flat:
        return flat_outputs(potential, params, c)

    def one(c1: Chunk):
        system, nbrs = _structure(c1)
        e, f, w, s = evaluate_structure(potential, params, system, nbrs, c1.volume)
        return e, f, jnp.stack([w[a, b] for a, b in VOIGT]), s

    geometry = replace(c, e_ref=None, f_ref=None, s_ref=None, ce=None, cf=None, cs=None)
    energy, forces, virial, stress = jax.vmap(one)(geometry)
    return energy, jnp.moveaxis(forces, 2, 0), virial.T, stress.T

