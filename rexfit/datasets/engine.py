"""The dataset engine: :class:`DatasetObjective` lists, buckets and stacks the fixed-geometry
structures of a ``<dataset>`` once, then runs the jitted per-chunk programs of
:mod:`rexfit.datasets.kernels` over its chunks to give energies, forces and stresses, the
weighted least-squares objective and its exact gradient, the residual vector, its Jacobian,
JVPs and VJPs (docs/datasets-engine.md)."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from rexfit.datasets import descriptor_kernel as dk
from rexfit.datasets.analytic import analytic_atom_major, analytic_supported
from rexfit.datasets.buckets import POOL, Listed, ladder
from rexfit.datasets.chunks import VOIGT, flat_supported
from rexfit.datasets.items import Item, Prediction
from rexfit.datasets.kept_terms import keep_fixed_terms
from rexfit.datasets.kernels import _QUICK, KERNELS, Spec, chunk_kernel
from rexfit.datasets.stacking import label_rows, list_items, make_buckets


def _size(x) -> int:
    """Entries of ``ravel_pytree(x)[0]``, counted without ravelling (no program)."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(x)))


def _key(x) -> np.ndarray:
    """Host copy of the ravelled variables: identifies the point of an evaluation."""
    leaves = [np.ravel(np.asarray(leaf)) for leaf in jax.tree_util.tree_leaves(x)]
    return np.concatenate(leaves) if leaves else np.zeros(0)


class DatasetObjective:
    """Energies, forces, stresses and the weighted least-squares objective of many fixed
    structures for one potential, batched by bucket and streamed chunk by chunk.

    Objective (absent targets skip their term; N_s real atoms of structure s)::

        L(θ) = Σ_s [ w_E,s ((E_s − E*_s) / (N_s δ_E,s))²
                     + w_F,s / (3 N_s) Σ_{i,α} ((F_s,iα − F*_s,iα) / δ_F,s)²
                     + w_S,s / 6 Σ_v ((σ_s,v − σ*_s,v) / δ_S,s)² ]

    E in eV (so the energy term compares energies per atom, δ_E in eV/atom), F in eV/Å, σ in
    eV/Å³ (Voigt xx yy zz yz xz xy, positive tensile, as :mod:`rexfit.physics.properties`).
    L = Σ r² with the residual vector r of :meth:`residuals`, whose rows are, structure by
    structure in input order: the energy row (if an energy target is given), the 3N force
    rows (atom by atom, x y z) and the 6 stress rows (Voigt order); :attr:`rows` labels every
    row.

    Kernels (the same numbers to round-off): ``"autodiff"`` (any potential; ``jax.vmap`` of
    the reverse pass of :func:`rexfit.physics.properties.evaluate` over a chunk, gradients
    reverse-over-reverse, :mod:`rexfit.datasets.chunks`), ``"analytic"`` (EAM, Lennard-Jones
    and Stillinger–Weber terms, sums of them, linked parameters: derivatives written out per
    pair on the half list, :mod:`rexfit.datasets.analytic`; about 4× faster than autodiff for
    EAM; non-linear ACE on the full list, :mod:`rexfit.potentials.ace_dataset`),
    ``"descriptor"`` (descriptor models over parameter-free terms, rows precomputed,
    :mod:`rexfit.datasets.descriptor_kernel`); ``"auto"`` picks the first that applies of
    analytic, descriptor, autodiff.

    Memory: inputs live in host (NumPy) arrays.  If they take more than ``resident_bytes``, a
    chunk is moved to the device only when it is evaluated and released afterwards, with at
    most two chunks in flight; otherwise all chunks are transferred once and kept.
    ``max_bucket_atoms`` bounds the atom slots per chunk and with them the autodiff
    intermediates, which dominate device memory (docs/datasets-engine.md).  The analytic
    kernel's parameter-free per-pair terms (ACE) are computed once per chunk and kept on the
    device while the dataset's fit :data:`rexfit.datasets.kept_terms.FIXED_TERMS_BYTES`
    (``fixed_bytes``: what is kept, 0 if nothing).

    potential: a static potential object (``potential.energy(params, system, nbrs)``).
    items: the structures (:class:`Item`).  skin: neighbour-list skin in Å (0 is enough:
    geometries never change).  transform: optional jax-traceable map from the variables ``x``
    every method takes to the potential's params tree (e.g. a fit vector u ↦
    ``ParameterSpace.tree(u)``); gradients and Jacobians are then with respect to ``x``.
    n_species: number of species of the job (default: from the potential or the items).
    kernel: "auto", "analytic", "descriptor" or "autodiff" (see Kernels above).
    max_bucket_atoms: atom slots (padding included) per chunk (flat chunks: exactly these,
    unless a structure needs more); a bucket with more is split
    into chunks of equal shape (None: one chunk per bucket; "auto": 512 for the descriptor
    kernel on a CPU, where chunks that stay in the caches make a training step 2–3× faster
    than 4096-slot ones, for the autodiff kernel on a CPU the smallest
    ``autodiff_chunk_atoms`` of the potential's terms (ACE: 512), else 4096).  atom_minimum: smallest
    atom-count class.  Padded sizes are rungs of the global :func:`ladder`, the same for
    every dataset.  merge_padding: a bucket of small structures joins the next larger
    class of the same periodicity while the atom slots this adds stay within this fraction
    of the dataset's atoms in all (each bucket shape costs a compilation of every kernel;
    0 keeps one bucket per class).  resident_bytes: keep all chunks on the device if their inputs take
    at most this many bytes, else stream them from the host on every call.
    min_chunk_atoms: a small bucket's chunk still has at least this many atom slots (within
    ``max_bucket_atoms``), so that small datasets (a validation part, say) share the chunk
    shapes of larger ones ("auto": 256 for the analytic and descriptor kernels, whose padding
    slots are cheap; 0 for autodiff, where a padding slot costs as much as a real one).
    flat_chunks: autodiff kernel, potentials whose terms all declare
    ``autodiff_flat_chunks`` (ACE; pair lists without triplets): pack the structures back to
    back into flat chunks of one shape (``max_bucket_atoms`` atom slots, pair slots for the
    dataset's mean density; :func:`rexfit.datasets.stacking.flat_buckets`) instead of
    buckets by size: one compilation per kernel instead of one per bucket shape, and less
    padding ("auto": where supported; False: buckets).  The analytic kernel of ACE always
    runs on flat chunks with atom-major pair slots (False is refused).
    """

    def __init__(
        self,
        potential,
        items: Sequence[Item],
        *,
        skin: float = 0.0,
        transform: Callable | None = None,
        n_species: int | None = None,
        kernel: str = "auto",
        max_bucket_atoms: int | None | str = "auto",
        atom_minimum: int = 8,
        merge_padding: float = 0.1,
        resident_bytes: int = 256 * 2**20,
        min_chunk_atoms: int | str = "auto",
        flat_chunks: bool | str = "auto",
    ):
        if kernel not in ("auto", "analytic", "autodiff", "descriptor"):
            raise ValueError(f"kernel must be 'auto', 'analytic', 'descriptor' or 'autodiff', "
                             f"not {kernel!r}")
        if kernel == "descriptor" and not dk.descriptor_supported(potential):
            raise ValueError("the descriptor kernel handles descriptor models (SNAP, linear "
                             "models, networks, PINNs) over parameter-free terms (ZBL) only")
        if kernel == "analytic" and not analytic_supported(potential):
            raise ValueError("the analytic kernel handles EAM, Lennard-Jones, Buckingham, "
                             "Stillinger–Weber and ACE terms only, and no sum of ACE with "
                             "the others")
        if not items:
            raise ValueError("a dataset needs at least one structure")
        self.potential = potential
        self.items = list(items)
        self.skin = float(skin)
        self.transform = transform
        if kernel == "auto":
            kernel = ("analytic" if analytic_supported(potential) else
                      "descriptor" if dk.descriptor_supported(potential) else "autodiff")
        self.kernel = kernel
        if n_species is None:
            n_species = getattr(potential, "n_species", None)
        if n_species is None:  # from the items: largest species index + 1
            n_species = 1 + max(int(np.max(np.asarray(it.species), initial=0))
                                if it.species is not None else 0 for it in self.items)
        self.n_species = int(n_species)
        for it in self.items:
            species = np.zeros(0) if it.species is None else np.asarray(it.species)
            if len(np.reshape(it.positions, (-1, 3))) == 0:
                raise ValueError(f"structure {it.name!r} has no atoms")
            if species.size and (species.min() < 0 or species.max() >= self.n_species):
                raise ValueError(f"structure {it.name!r}: species must lie in "
                                 f"0..{self.n_species - 1}")
        if max_bucket_atoms == "auto":
            cpu = jax.default_backend() == "cpu"
            max_bucket_atoms = 512 if kernel == "descriptor" and cpu else 4096
            # a term may ask for smaller autodiff chunks on a CPU (ACE: its per-pair
            # intermediates, 25 % faster in 512-slot chunks than in 4096-slot ones)
            # (and for its analytic kernel: ACE's flat atom-major chunks)
            wanted = [getattr(leaf, f"{kernel}_chunk_atoms", None)
                      for _, leaf in dk._named_leaves(potential)]
            wanted = [int(w) for w in wanted if w]
            if kernel in ("autodiff", "analytic") and cpu and wanted:
                max_bucket_atoms = min(wanted)
        self.max_bucket_atoms = max_bucket_atoms
        self.merge_padding = float(merge_padding)
        if min_chunk_atoms == "auto":  # autodiff: padding slots cost as much as real ones
            # descriptor kernel: padding rows are cheap, so every bucket of n atom slots gets
            # the same chunk (max_bucket_atoms // n structures) whatever its size, and the
            # datasets of a job share their programs however the data are split
            min_chunk_atoms = (0 if kernel == "autodiff" else
                               max_bucket_atoms if kernel == "descriptor" and max_bucket_atoms
                               else 256)
        self.min_chunk_atoms = int(min_chunk_atoms)
        self._resident_bytes = resident_bytes
        listed = list_items(self.items, self.potential, self.kernel, self.skin,
                            self.n_species)
        atom_major = kernel == "analytic" and analytic_atom_major(potential)
        can_flat = atom_major or (kernel == "autodiff" and flat_supported(potential)
                                  and all(x.triplets is None for x in listed))
        if flat_chunks is True and not can_flat:
            raise ValueError("flat chunks need the autodiff kernel and a potential whose terms "
                             "declare autodiff_flat_chunks (pair lists only)")
        if atom_major and flat_chunks is False:
            raise ValueError("the analytic kernel of ACE runs on flat chunks only")
        self.flat_chunks = bool(can_flat and flat_chunks in ("auto", True))
        self._atom_major = atom_major
        self.natoms = np.array([x.natoms for x in listed])
        self._base = self._rows = None
        if self.kernel == "descriptor":
            geometries = self._geometries(listed)
            if POOL:  # inside pooled_rows(): base and rows with the others', on its exit
                POOL[-1].append((self, listed, atom_minimum, geometries))
                return
            self._base = self._base_predictions(geometries)
            self._rows = self._descriptor_rows(geometries, listed[0].meta)
        self._complete(listed, atom_minimum)

    def _complete(self, listed: list, atom_minimum: int) -> None:
        """The rest of :meth:`__init__`, once the descriptor rows are there."""
        self._buckets = make_buckets(
            listed, self.items, atom_minimum=atom_minimum, merge_padding=self.merge_padding,
            kernel=self.kernel, potential=self.potential, feature_rows=self._rows,
            base_predictions=self._base, min_chunk_atoms=self.min_chunk_atoms,
            max_bucket_atoms=self.max_bucket_atoms, flat=self.flat_chunks,
            atom_major=self._atom_major)
        self._base = self._rows = None  # now in the buckets' host arrays
        self.rows = label_rows(self.items, self.natoms, self._buckets)
        self.input_bytes = sum(b.host.nbytes() for b in self._buckets)
        self.resident = self.input_bytes <= self._resident_bytes
        if self.resident:
            for b in self._buckets:
                b.device = [jax.device_put(b.host_chunk(k)) for k in range(b.n_chunks)]
        self._spec = Spec(self.potential, self.kernel, self.transform)
        # the analytic kernel's parameter-free terms, kept per chunk within a budget
        self._fixed, self.fixed_bytes = keep_fixed_terms(self._spec, self._buckets)
        self._last_outputs = None  # (x key, per-chunk outputs) of the last Jacobian

    # ------------------------------------------------------------------ descriptor set-up

    @staticmethod
    def _geometries(listed: list[Listed]) -> list:
        """What the descriptors (and the base) see of every item: species, full-list pairs
        and their vectors, and the triplets unless pruned (packed triplets belong to the
        potential, not the descriptors, and are not passed on)."""
        geometries = []
        for x in listed:
            d = x.positions[x.j] - x.positions[x.i] + x.shifts.astype(np.float64) @ x.cell
            trip = x.triplets if x.triplets is not None and not x.pruned else None
            geometries.append(dk.Geometry(x.species, x.i, x.j, d, trip))
        if any(g.triplets is None for g in geometries):
            geometries = [replace(g, triplets=None) for g in geometries]
        return geometries

    def _base_predictions(self, geometries: list):
        """Per item (energy, forces (N, 3), virial (3, 3)) of the parameter-free terms, or
        None without them (descriptor kernel; :func:`descriptor_kernel.structure_base`)."""
        base = dk.base_potential(self.potential)
        if base is None:
            return None
        return dk.structure_base(*base, geometries)

    def _descriptor_rows(self, geometries: list, meta: tuple) -> list:
        """Per descriptor model, per item: descriptor rows (N, K) and their pair derivatives
        (E, K, 3) (:func:`descriptor_kernel.structure_feature_rows`: blocks of one shape
        for every dataset)."""
        cutoff, skin, _ = meta
        out = []
        for model in dk.models(self.potential):
            species = dk.species_linear(model)
            if species is not None and not dk.supports_design(model.descriptor, geometries):
                species = None
            out.append(dk.structure_feature_rows(model.descriptor, cutoff + skin, geometries,
                                                 ladder, design_species=species))
        return out

    # ------------------------------------------------------------------ kernels

    def _call(self, name: str, *args):
        return KERNELS[name](self._spec, *args)

    def descriptor_rows(self, model: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(species (M,), descriptor rows (M, K)) of every real atom of the dataset for the
        ``model``-th descriptor model (descriptor kernel only)."""
        if self.kernel != "descriptor":
            raise ValueError("descriptor rows are kept by the descriptor kernel only")
        species, rows = [], []
        for b in self._buckets:
            real = np.zeros(b.n_chunks * b.size, bool)
            real[:len(b.members)] = True  # padding rows copy a real structure: skip them
            mask = b.host.mask & real[:, None]
            species.append(b.host.species[mask])
            rows.append(b.host.features[model][mask])
        return np.concatenate(species), np.concatenate(rows)

    @property
    def bucket_shapes(self) -> list[tuple[int, int, int]]:
        """(B, n, E) of every bucket's chunks: structures, atom slots, pair slots."""
        return [b.host_chunk(0).shape for b in self._buckets]

    @property
    def n_chunks(self) -> int:
        return sum(b.n_chunks for b in self._buckets)

    @staticmethod
    def cache_sizes() -> dict[str, int]:
        """Compilations made so far by each jitted kernel (shared by all objectives: one per
        potential, transform, kernel and chunk shape)."""
        return {name: fn._cache_size() + (_QUICK[id(fn)]._cache_size() if id(fn) in _QUICK
                                          else 0)
                for name, fn in KERNELS.items()}

    # ------------------------------------------------------------------ chunk loop

    @property
    def chunk_keys(self) -> list[tuple[int, int]]:
        """(bucket, chunk) of every chunk: the units :meth:`value_and_grad` can be restricted
        to (minibatches)."""
        return [(bi, k) for bi, b in enumerate(self._buckets) for k in range(b.n_chunks)]

    def chunk_structures(self, key: tuple[int, int]) -> int:
        """Number of real structures in chunk ``key``."""
        b = self._buckets[key[0]]
        return int(min(b.size, len(b.members) - key[1] * b.size))

    def _map(self, name: str, *args, only=None) -> Iterator:
        """Run kernel ``name`` on every chunk (or the chunk keys in ``only``): yields (bucket,
        k, outputs) in order, with at most two chunks in flight (the next is dispatched before
        the previous is awaited)."""
        pending: deque = deque()
        for bi, bucket in enumerate(self._buckets):
            fn = chunk_kernel(name, bucket.atom_layout()[1])
            for k in range(bucket.n_chunks):
                if only is not None and (bi, k) not in only:
                    continue
                chunk = bucket.chunk(k)
                if self._fixed is not None:
                    chunk = replace(chunk, fixed=self._fixed[bi][k])
                pending.append((bucket, k, fn(self._spec, *args, chunk)))
                if len(pending) > 1:
                    b0, k0, out = pending.popleft()
                    yield b0, k0, jax.block_until_ready(out)
        while pending:
            b0, k0, out = pending.popleft()
            yield b0, k0, jax.block_until_ready(out)

    @staticmethod
    def _add(total, term):
        return term if total is None else jax.tree_util.tree_map(jnp.add, total, term)

    # ------------------------------------------------------------------ public API

    @property
    def n_rows(self) -> int:
        """Length M of the residual vector."""
        return len(self.rows)

    def value(self, x) -> float:
        """L(x)."""
        prepared = self._call("prepare", x)
        return float(sum(float(v) for _, _, (v, _) in self._map("value", prepared)))

    def value_and_grad(self, x, chunks=None):
        """(L(x), ∂L/∂x), the gradient a NumPy pytree like ``x``; with ``chunks`` (keys of
        :attr:`chunk_keys`) only those chunks' part of L."""
        prepared = self._call("prepare", x)
        total, grad = 0.0, None
        only = None if chunks is None else set(map(tuple, chunks))
        for _, _, (v, g) in self._map("value_and_grad", prepared, only=only):
            total += float(v)
            grad = self._add(grad, g)
        return total, jax.device_get(self._call("pullback", x, grad))

    def residuals(self, x) -> np.ndarray:
        """The residual vector r (M,), L = Σ r², rows as :attr:`rows`."""
        prepared = self._call("prepare", x)
        out = np.zeros(self.n_rows)
        for b, k, r in self._map("residuals", prepared):
            out[b.dest[k]] = np.asarray(r)[b.take[k]]
        return out

    def jacobian(self, x, directions=None) -> np.ndarray:
        """J = ∂r/∂x, (M, P), columns in the order of ``jax.flatten_util.ravel_pytree(x)``;
        with ``directions`` D (P, K) in that order, J·D (M, K) instead, computed without J.

        Forward mode, one linearisation per chunk and one tangent pass per column: meant for
        few columns — fitted DOFs through ``transform`` or ``directions`` (e.g. ∂params/∂u
        of a fit vector u), not whole tables (P = 30 003 for Cu_mishin1.eam.alloy).
        """
        return self.residuals_and_jacobian(x, directions)[1]

    def residuals_and_jacobian(self, x, directions=None) -> tuple[np.ndarray, np.ndarray]:
        """(r, J) or, with ``directions``, (r, J·D), as :meth:`residuals` and
        :meth:`jacobian` give them, from one pass over the chunks."""
        prepared = self._call("prepare", x)
        if directions is None:
            tangents = self._call("jacobian_tangents", x)
            columns = _size(x)
        else:
            directions = np.asarray(directions, dtype=np.float64)
            if directions.ndim != 2 or directions.shape[0] != _size(x):
                raise ValueError("directions must be a (P, K) array, P = size of x")
            tangents = self._call("direction_tangents", x, directions)
            columns = directions.shape[1]
        r, out = np.zeros(self.n_rows), np.zeros((self.n_rows, columns))
        outputs = []
        for b, k, (block, jac, chunk_outputs) in self._map("jacobian", prepared, tangents):
            r[b.dest[k]] = np.asarray(block)[b.take[k]]
            out[b.dest[k]] = np.asarray(jac).T[b.take[k]]
            outputs.append((b, k, chunk_outputs))
        # kept (on the device; a few numbers per atom, small beside the inputs even of a
        # streamed dataset) for predictions() at the same x: the output phase of a
        # least-squares fit then needs no program of its own
        self._last_outputs = (_key(x), outputs)
        return r, out

    def jvp(self, x, tangent) -> tuple[np.ndarray, np.ndarray]:
        """(r, J·t) for a tangent t shaped like ``x``."""
        prepared, t_prepared = self._call("prepare_jvp", x, tangent)
        r, jt = np.zeros(self.n_rows), np.zeros(self.n_rows)
        for b, k, (rk, tk) in self._map("jvp", prepared, t_prepared):
            r[b.dest[k]] = np.asarray(rk)[b.take[k]]
            jt[b.dest[k]] = np.asarray(tk)[b.take[k]]
        return r, jt

    def vjp(self, x, cotangent):
        """Jᵀ·c for a cotangent c (M,): a NumPy pytree like ``x``."""
        prepared = self._call("prepare", x)
        cotangent = np.asarray(cotangent, dtype=np.float64)
        grad, pending = None, deque()
        for bucket in self._buckets:
            size, slots = bucket.size, bucket.atom_layout()[1]
            vjp = chunk_kernel("vjp", slots)
            for k in range(bucket.n_chunks):
                block = np.zeros(size * 7 + 3 * slots)
                block[bucket.take[k]] = cotangent[bucket.dest[k]]
                pending.append(vjp(self._spec, prepared, block, bucket.chunk(k)))
                if len(pending) > 1:
                    grad = self._add(grad, jax.block_until_ready(pending.popleft()))
        while pending:
            grad = self._add(grad, jax.block_until_ready(pending.popleft()))
        return jax.device_get(self._call("pullback", x, grad))

    def predictions(self, x) -> list[Prediction]:
        """Per structure (input order): energy, forces, stress, virial as host NumPy."""
        last = self._last_outputs
        if last is not None and np.array_equal(last[0], _key(x)):
            chunks = last[1]
        else:
            chunks = ((b, k, out[1]) for b, k, out in
                      self._map("predictions", self._call("prepare", x)))
        out: list[Prediction | None] = [None] * len(self.items)
        for b, k, outputs in chunks:
            energy, forces, virial, stress = (np.asarray(o) for o in outputs)
            starts = b.atom_layout()[0]
            if not b.host.flat:
                forces = forces.reshape(3, -1)
            for local in range(b.size):
                row = k * b.size + local
                if row >= len(b.members):
                    break
                item = b.members[row]
                na = self.natoms[item]
                w = np.zeros((3, 3))
                for v, (p, q) in enumerate(VOIGT):
                    w[p, q] = w[q, p] = virial[v, local]
                s = stress[:, local].copy()
                if not abs(np.linalg.det(np.asarray(self.items[item].cell, float))) > 0.0:
                    s[:] = np.nan
                first = starts[local]
                out[item] = Prediction(float(energy[local]),
                                       forces[:, first:first + na].T.copy(),
                                       s, w)
        return out
