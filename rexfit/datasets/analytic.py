"""The ``"analytic"`` kernel of the dataset engine: which potentials it handles (sums and linked
parameters of the families in :data:`FAMILIES`), their prepared data and a chunk's outputs.
Each family kernel (``rexfit.potentials.*_dataset``) gives its term's energy and dE/dd per pair
(d = x_j − x_i); this module sums the terms and assembles forces and the virial."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rexfit.datasets.chunks import VOIGT, Chunk
from rexfit.potentials import registry
from rexfit.potentials.analytic_dataset import scatter_atoms
from rexfit.potentials.base import Linked, SumPotential


class FamilyKernel(NamedTuple):
    """The analytic kernel of one potential family: ``prepare(leaf, params)`` once per
    evaluation (outside the chunk loop) and ``terms(leaf, prepared, chunk)`` → (energy (B,),
    dE/dd (3 × (B, E))) per chunk; ``full_list``: it reads the full neighbour list (pair
    (i, j) adds to E_i only), else the half list; ``supports(leaf)``: whether it covers that
    potential (None: every potential of its class); ``atom_major``: it reads flat chunks
    with atom-major pair slots (:class:`~rexfit.datasets.chunks.Chunk` ``flat`` and
    ``slots``; ``terms`` then gives the energy of each of the chunk's structure slots and
    dE/dd (3 × (E,))); ``fixed(leaf, chunk)``: the parameter-free terms of a chunk that
    ``terms(leaf, prepared, chunk, fixed)`` can take instead of computing them (None: the
    family keeps nothing)."""

    prepare: Callable
    terms: Callable
    full_list: bool = False
    supports: Callable | None = None
    atom_major: bool = False
    fixed: Callable | None = None


def _registered() -> dict:
    """Potential class → kernel of the families of :mod:`rexfit.potentials.registry` that
    declare one."""
    out = {}
    for family in registry.FAMILIES:
        if family.dataset_kernel is not None:
            cls, prepare, terms, *options = family.dataset_kernel()
            out[cls] = FamilyKernel(prepare, terms, **(options[0] if options else {}))
    return out


#: Potential class → its analytic kernel (exact classes: subclasses take the autodiff kernel).
FAMILIES = _registered()


def _leaves(potential, params=None):
    """(leaf potential, its params or None) of a sum/linked tree, in order."""
    if isinstance(potential, SumPotential):
        for name, term in potential.terms:
            yield from _leaves(term, None if params is None else params[name])
    elif isinstance(potential, Linked):
        yield from _leaves(potential.term,
                           None if params is None else potential.resolve(params))
    else:
        yield potential, params


def _kernel_of(leaf) -> FamilyKernel | None:
    """The family kernel that covers ``leaf`` (its exact class), or None."""
    kernel = FAMILIES.get(type(leaf))
    if kernel is None or (kernel.supports is not None and not kernel.supports(leaf)):
        return None
    return kernel


def analytic_supported(potential) -> bool:
    """True if every term of ``potential`` is one of a registered family with a dataset kernel
    that covers it (Lennard-Jones, Buckingham, Stillinger–Weber, EAM and tabulated EAM on the
    half list; ACE, every inner cutoff, on the full list), possibly in sums and
    with linked parameters, all on the same kind of list: the ``"analytic"`` kernel
    applies."""
    kernels = [_kernel_of(leaf) for leaf, _ in _leaves(potential)]
    return (all(k is not None for k in kernels)
            and len({(k.full_list, k.atom_major) for k in kernels}) == 1)


def analytic_full_list(potential) -> bool:
    """Whether the analytic kernel of ``potential`` runs on the full neighbour list (its
    terms' family kernels read it: ACE) rather than the half list."""
    return any(k is not None and k.full_list
               for k in map(_kernel_of, (leaf for leaf, _ in _leaves(potential))))


def analytic_atom_major(potential) -> bool:
    """Whether the analytic kernel of ``potential`` runs on flat chunks with atom-major pair
    slots (its terms' family kernels read them: ACE)."""
    return any(k is not None and k.atom_major
               for k in map(_kernel_of, (leaf for leaf, _ in _leaves(potential))))


def prepare_analytic(potential, params) -> list:
    """Per leaf of ``potential``, its family kernel's prepared data: for EAM,
    {"pair"|"density"|"embedding": [prepared data of each distinct function]}; for
    Stillinger–Weber, {name: (S³,) values of every element triplet entry}; for
    Lennard-Jones, its params; for a registered family, what its kernel prepares."""
    return [FAMILIES[type(leaf)].prepare(leaf, p) for leaf, p in _leaves(potential, params)]


def analytic_fixed(potential, c: Chunk) -> list:
    """Per leaf of ``potential``, the parameter-free terms of chunk ``c`` its family kernel
    keeps (``FamilyKernel.fixed``), or None; None for every leaf: nothing to keep."""
    out = []
    for leaf, _ in _leaves(potential):
        fixed = FAMILIES[type(leaf)].fixed
        out.append(None if fixed is None else fixed(leaf, c))
    return out


def analytic_outputs(potential, prepared: list, c: Chunk):
    """Kernel "analytic" (``prepared`` from :func:`prepare_analytic`): energy (B,),
    forces (3, B, n), virial (6, B), stress (6, B).  Every term gives its energy and dE/dd
    per pair (d = x_j − x_i); forces are ±dE/dd summed onto the two atoms and the virial is
    Σ d ⊗ dE/dd (symmetrised).  The same on a half list (each pair once) and on a full list
    (each pair twice, dE/dd of the centre's energy each time).  A leaf whose terms the chunk
    keeps (``c.fixed``, :func:`analytic_fixed`) reads them."""
    atoms = c.mask.shape
    energy, grad = 0.0, (0.0, 0.0, 0.0)
    leaves = [leaf for leaf, _ in _leaves(potential)]
    kept = c.fixed if c.fixed is not None else [None] * len(leaves)
    for leaf, p, fixed in zip(leaves, prepared, kept):
        kernel = FAMILIES[type(leaf)]
        e, g = (kernel.terms(leaf, p, c) if fixed is None
                else kernel.terms(leaf, p, c, fixed))
        energy = energy + e
        grad = tuple(a + b for a, b in zip(grad, g))
    if c.flat:
        return _flat_assembly(energy, grad, c)
    live = jnp.any(c.mask)
    forces = jnp.stack([scatter_atoms(g, c.gi, atoms, live)
                        - scatter_atoms(g, c.gj, atoms, live) for g in grad])
    virial = jnp.stack([0.5 * jnp.sum(grad[a] * c.d[b] + grad[b] * c.d[a], axis=1)
                        for a, b in VOIGT])
    return energy, forces, virial, virial / c.volume[None]



def _flat_assembly(energy, grad, c: Chunk):
    """:func:`analytic_outputs` of a flat chunk with atom-major pair slots: forces (3, n)
    (the centre's share by sums over its slots, the neighbour's by a scatter), the virial of
    each structure slot by a sum over the pairs of its atoms."""
    n, nstruct = c.mask.shape[0], c.e_ref.shape[0]
    live = jnp.any(c.mask)
    forces = jnp.stack([g.reshape(n, c.slots).sum(axis=1) - scatter_atoms(
        g[None], c.gj[None], (1, n), live)[0] for g in grad])
    owner = jnp.repeat(c.owner, c.slots, total_repeat_length=n * c.slots)
    virial = jnp.stack([jax.ops.segment_sum(0.5 * (grad[a] * c.d[b] + grad[b] * c.d[a]),
                                            owner, num_segments=nstruct)
                        for a, b in VOIGT])
    return energy, forces, virial, virial / c.volume[None]
