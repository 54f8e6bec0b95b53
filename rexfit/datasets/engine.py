"""The dataset engine: :class:`DatasetObjective` lists, buckets and stacks the fixed-geometry
structures of a ``<dataset>`` once, then runs the jitted per-chunk programs of
:mod:`rexfit.datasets.kernels` over its chunks to give energies, forces and stresses, the
weighted least-squares objective and its exact gradient, the residual vector, its Jacobian,
JVPs and VJPs (docs/datasets-engine.md)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from rexfit.datasets import descriptor_kernel as dk
from rexfit.datasets.analytic import analytic_supported
from rexfit.datasets.buckets import POOL, Bucket, Listed, ladder, merge_small_groups
from rexfit.datasets.chunks import VOIGT, Chunk
from rexfit.datasets.items import ENERGY, FORCE, STRESS, Item, Prediction, Rows
from rexfit.datasets.kernels import KERNELS, Spec
from rexfit.potentials.lists import build_lists
from rexfit.structures.neighbors import (
    PADDING_DISPLACEMENT,
    build_neighbor_list,
    pair_displacements,
)
from rexfit.structures.system import make_system


def _key(x) -> np.ndarray:
    """Host copy of the ravelled variables: identifies the point of an evaluation."""
    return np.asarray(ravel_pytree(x)[0])


class DatasetObjective:
    """Energies, forces, stresses and the weighted least-squares objective of many fixed
    structures for one potential, batched by bucket and streamed chunk by chunk.

    potential: a static potential object (``potential.energy(params, system, nbrs)``).
    items: the structures (:class:`Item`).  skin: neighbour-list skin in Å (0 is enough:
    geometries never change).  transform: optional jax-traceable map from the variables ``x``
    every method takes to the potential's params tree (e.g. a fit vector u ↦
    ``ParameterSpace.tree(u)``); gradients and Jacobians are then with respect to ``x``.
    n_species: number of species of the job (default: from the potential or the items).
    kernel: "auto", "analytic" (EAM / Lennard-Jones sums only) or "autodiff".
    max_bucket_atoms: atom slots (padding included) per chunk; a bucket with more is split
    into chunks of equal shape (None: one chunk per bucket; "auto": 512 for the descriptor
    kernel on a CPU, where chunks that stay in the caches make a training step 2–3× faster
    than 4096-slot ones, else 4096).  atom_minimum: smallest
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
    ):
        if kernel not in ("auto", "analytic", "autodiff", "descriptor"):
            raise ValueError(f"kernel must be 'auto', 'analytic', 'descriptor' or 'autodiff', "
                             f"not {kernel!r}")
        if kernel == "descriptor" and not dk.descriptor_supported(potential):
            raise ValueError("the descriptor kernel handles descriptor models (SNAP, linear "
                             "models, networks, PINNs) over parameter-free terms (ZBL) only")
        if kernel == "analytic" and not analytic_supported(potential):
            raise ValueError("the analytic kernel handles EAM, Lennard-Jones and "
                             "Stillinger–Weber terms only")
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
        listed = [self._list(it) for it in self.items]
        self.natoms = np.array([x.natoms for x in listed])
        self._base = self._rows = None
        if self.kernel == "descriptor":
            geometries = self._geometries(listed)
            self._base = self._base_predictions(geometries)
            if POOL:  # inside pooled_rows(): rows with the other engines', on its exit
                POOL[-1].append((self, listed, atom_minimum, geometries))
                return
            self._rows = self._descriptor_rows(geometries, listed[0].meta)
        self._complete(listed, atom_minimum)

    def _complete(self, listed: list, atom_minimum: int) -> None:
        """The rest of :meth:`__init__`, once the descriptor rows are there."""
        self._buckets = self._make_buckets(listed, atom_minimum)
        self._base = self._rows = None  # now in the buckets' host arrays
        self.rows = self._make_rows()
        self.input_bytes = sum(b.host.nbytes() for b in self._buckets)
        self.resident = self.input_bytes <= self._resident_bytes
        if self.resident:
            for b in self._buckets:
                b.device = [jax.device_put(b.host_chunk(k)) for k in range(b.n_chunks)]
        self._spec = Spec(self.potential, self.kernel, self.transform)
        self._last_outputs = None  # (x key, per-chunk outputs) of the last Jacobian

    # ------------------------------------------------------------------ set-up

    def _list(self, it: Item) -> Listed:
        """Geometry and neighbour lists of one item (host, unpadded)."""
        system = make_system(it.positions, it.cell, it.species, it.pbc)
        if self.kernel == "analytic":
            nbrs = build_neighbor_list(system, self.potential.cutoff, self.skin, half=True)
        elif self.kernel == "descriptor":  # full list (with triplets if a descriptor needs)
            nbrs = build_lists(self.potential, system, self.skin, n_species=self.n_species)
        else:
            nbrs = build_lists(self.potential, system, self.skin, n_species=self.n_species)
        npair = int(np.count_nonzero(np.asarray(nbrs.mask)))
        i, j = np.asarray(nbrs.i)[:npair], np.asarray(nbrs.j)[:npair]
        shifts = np.asarray(nbrs.shifts)[:npair]
        trip = getattr(nbrs, "triplets", None)
        if trip is not None:
            count = trip.count
            ij, ik = np.asarray(trip.ij)[:count], np.asarray(trip.ik)[:count]
            vectors = np.asarray(pair_displacements(system, nbrs))[:npair]
            pruned = dk.prune_lists(self.potential, vectors, i, j, np.asarray(system.species),
                                    ij, ik, trip.ordered)
            if pruned is not None:  # the structure never moves: drop what adds nothing
                pairs, ij, ik = pruned
                i, j, shifts = i[pairs], j[pairs], shifts[pairs]
            trip = (ij, ik, trip.ordered)
        return Listed(np.asarray(system.positions), np.asarray(system.cell),
                       np.asarray(system.species), system.pbc, i, j, shifts, trip,
                       (nbrs.cutoff, nbrs.skin, nbrs.half),
                       pruned=trip is not None and pruned is not None)

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

    def _make_buckets(self, listed: list[Listed], atom_minimum: int) -> list[Bucket]:
        groups: dict[tuple, list[int]] = {}
        for k, x in enumerate(listed):
            groups.setdefault((x.pbc, ladder(max(x.natoms, atom_minimum))), []).append(k)
        groups = merge_small_groups(groups, self.merge_padding * int(np.sum(self.natoms)))
        return [self._stack(key[0], key[1], np.asarray(groups[key]), listed)
                for key in sorted(groups)]

    def _stack(self, pbc, n: int, members: np.ndarray, listed: list[Listed]) -> Bucket:
        """One bucket: ``n`` atom slots (its class, a rung of :func:`ladder`), pair and
        triplet slots the rungs of its largest lists, structures per chunk the rung of its
        size (at least ``min_chunk_atoms // n``) up to ``max_bucket_atoms // n`` (larger
        buckets: chunks of that many)."""
        e = ladder(max(len(listed[k].i) for k in members), 8)
        # descriptor models that all keep per-atom designs never read the pair slots: keep
        # the fewest, so that the chunk shape depends on the atom slots only
        designs_only = (self.kernel == "descriptor" and self._rows is not None
                        and not any(map(dk.is_geometric, dk.models(self.potential)))
                        and all(isinstance(per_item[members[0]][1], tuple)
                                for per_item in self._rows))
        if designs_only:
            e = 8
        has_trip = listed[members[0]].triplets is not None
        s = len(members)
        size = ladder(max(s, self.min_chunk_atoms // n))
        if self.max_bucket_atoms is not None:
            size = min(size, max(1, self.max_bucket_atoms // n))
        n_chunks = -(-s // size)
        rows = n_chunks * size
        analytic = self.kernel in ("analytic", "descriptor")
        descriptor = self.kernel == "descriptor"
        packed = descriptor and has_trip and all(listed[k].pruned for k in members)

        def member(row):  # padding rows: weightless copies of the first member
            return members[row] if row < s else members[0]

        if packed:  # triplet slots per row: the fullest chunk's triplets spread over its rows
            # (padding rows, weightless, get none: a small bucket's chunk is mostly padding)
            t = ladder(-(-max(sum(len(listed[members[r]].triplets[0])
                                  for r in range(c * size, min((c + 1) * size, s)))
                              for c in range(n_chunks)) // size), 8)
        else:
            t = ladder(max(len(listed[k].triplets[0]) for k in members), 8) if has_trip \
                else 0

        def zeros(shape, dtype=np.float64):
            return np.zeros(shape, dtype)

        a: dict[str, Any] = dict(
            species=zeros((rows, n), np.int32), mask=zeros((rows, n), bool),
            pair_mask=zeros((rows, e), bool),
            e_ref=zeros(rows), f_ref=zeros((3, rows, n)), s_ref=zeros((6, rows)),
            ce=zeros(rows), cf=zeros((rows, n)), cs=zeros(rows), volume=np.ones(rows))
        if analytic:
            a.update(gi=zeros((rows, e), np.int32), gj=zeros((rows, e), np.int32),
                     si=zeros((rows, e), np.int32), sj=zeros((rows, e), np.int32),
                     d=zeros((3, rows, e)))
        if descriptor:
            if self._base is not None:
                base = (zeros(rows), zeros((3, rows, n)), zeros((6, rows)))
        if not analytic:
            big = max(int(np.abs(listed[k].shifts).max(initial=0)) for k in members)
            a.update(positions=zeros((rows, n, 3)), cell=zeros((rows, 3, 3)),
                     i=zeros((rows, e), np.int32), j=zeros((rows, e), np.int32),
                     shifts=zeros((rows, e, 3), np.int8 if big < 127 else np.int32))
        if has_trip:
            a.update(tij=zeros((rows, t), np.int32), tik=zeros((rows, t), np.int32),
                     tmask=zeros((rows, t), bool))
        ordered = None
        for row in range(rows):
            k = members[row] if row < s else members[0]  # padding rows: weightless copies
            x = listed[k]
            na, npair = x.natoms, (0 if designs_only else len(x.i))
            a["species"][row, :na] = x.species
            a["mask"][row, :na] = True
            a["pair_mask"][row, :npair] = True
            if analytic:
                local = row % size  # structure index within its chunk
                d = np.tile(np.asarray(PADDING_DISPLACEMENT), (e, 1))
                a["gi"][row] = local * n
                a["gj"][row] = local * n
                if npair:
                    d[:npair] = x.positions[x.j] - x.positions[x.i] + x.shifts.astype(
                        np.float64) @ x.cell
                    a["gi"][row, :npair] += x.i
                    a["gj"][row, :npair] += x.j
                    a["si"][row, :npair] = x.species[x.i]
                    a["sj"][row, :npair] = x.species[x.j]
                a["d"][:, row] = d.T
                if descriptor:
                    if self._base is not None and row < s:
                        energy, forces, virial = self._base[k]
                        base[0][row] = energy
                        base[1][:, row, :na] = np.asarray(forces).T
                        base[2][:, row] = [virial[p, q] for p, q in VOIGT]
            else:
                a["positions"][row, :na] = x.positions
                a["cell"][row] = x.cell
                a["i"][row, :npair], a["j"][row, :npair] = x.i, x.j
                a["shifts"][row, :npair] = x.shifts
            if has_trip:
                ij, ik, ordered = x.triplets
                if packed and row < s:  # appended to the chunk's flat triplet list (pair
                    # slots b·E + p); padding rows of the packed layout get no triplets
                    if row % size == 0:
                        fill = 0
                    local = (row % size) * e
                    flat = slice(fill, fill + len(ij))
                    chunk_rows = slice(row - row % size, row - row % size + size)
                    for name, values in (("tij", ij + local), ("tik", ik + local)):
                        a[name][chunk_rows].reshape(-1)[flat] = values
                    a["tmask"][chunk_rows].reshape(-1)[flat] = True
                    fill += len(ij)
                elif not packed:
                    a["tij"][row, :len(ij)], a["tik"][row, :len(ij)] = ij, ik
                    a["tmask"][row, :len(ij)] = True
            if row < s:
                self._targets(self.items[k], na, abs(float(np.linalg.det(x.cell))), a, row)
        cutoff, skin, half = listed[members[0]].meta
        if descriptor:
            features, grads = [], []
            for per_item in self._rows:
                k_features = per_item[members[0]][0].shape[1]
                f = zeros((rows, n, k_features))
                designs = isinstance(per_item[members[0]][1], tuple)
                if designs:  # species-linear model: force and virial designs
                    n_species = per_item[members[0]][1][1].shape[0]
                    g = (zeros((rows, n, n_species, k_features, 3)),
                         zeros((rows, n_species, k_features, 6)))
                else:
                    g = zeros((rows, e, k_features, 3))
                for row in range(rows):
                    value, slope = per_item[member(row)]
                    f[row, :len(value)] = value
                    if designs:
                        g[0][row, :len(value)], g[1][row] = slope
                    else:
                        g[row, :len(slope)] = slope
                for k in members:  # now in this bucket only: release (peak memory)
                    per_item[k] = None
                features.append(f)
                grads.append(g)
            a["features"], a["feature_grads"] = tuple(features), tuple(grads)
            if self._base is not None:
                a["base"] = base
        host = Chunk(**a, pbc=pbc, cutoff=cutoff, skin=skin, half=half, ordered=ordered,
                     packed=packed)
        return Bucket(members=members, size=size, n_chunks=n_chunks, host=host)

    @staticmethod
    def _targets(it: Item, na: int, volume: float, a: dict, row: int) -> None:
        """Reference values and residual scales of one item into row ``row``."""
        w_forces = it.weight_forces
        per_atom = np.ndim(w_forces) > 0
        if per_atom:
            w_forces = np.asarray(w_forces, dtype=np.float64)
            if w_forces.shape != (na,):
                raise ValueError(f"structure {it.name!r}: per-atom force weights must have "
                                 f"shape ({na},)")
        for w, tol in ((it.weight_energy, it.tol_energy),
                       (np.min(w_forces) if per_atom else w_forces, it.tol_forces),
                       (it.weight_stress, it.tol_stress)):
            if not w >= 0 or not tol > 0:
                raise ValueError(f"structure {it.name!r}: weights must be ≥ 0 and "
                                 f"tolerances > 0")
        if volume > 0.0:
            a["volume"][row] = volume
        if it.energy is not None:
            a["e_ref"][row] = float(it.energy)
            if it.energy_per_atom:
                a["ce"][row] = math.sqrt(it.weight_energy) / (na * it.tol_energy)
            else:
                a["ce"][row] = math.sqrt(it.weight_energy) / it.tol_energy
        if it.forces is not None:
            forces = np.asarray(it.forces, dtype=np.float64)
            if forces.shape != (na, 3):
                raise ValueError(f"structure {it.name!r}: forces must have shape ({na}, 3)")
            a["f_ref"][:, row, :na] = forces.T
            share = 3 * na if it.mean_components else 1
            if per_atom:
                a["cf"][row, :na] = np.sqrt(w_forces / share) / it.tol_forces
            else:
                a["cf"][row, :na] = math.sqrt(w_forces / share) / it.tol_forces
        if it.stress is not None:
            stress = np.asarray(it.stress, dtype=np.float64)
            if stress.shape != (6,):
                raise ValueError(f"structure {it.name!r}: stress must be 6 Voigt values")
            if not volume > 0.0:
                raise ValueError(f"structure {it.name!r}: a stress target needs a cell of "
                                 f"non-zero volume")
            a["s_ref"][:, row] = stress
            share = 6.0 if it.mean_components else 1.0
            a["cs"][row] = math.sqrt(it.weight_stress / share) / it.tol_stress

    def _make_rows(self) -> Rows:
        """Row labels, and per chunk the map from its residual block to the rows.

        A chunk's residual block is [r_E (B,), r_F (3, B, n) flattened, r_S (6, B)
        flattened]: entry b for the energy of structure b, B + (c·B + b)·n + a for force
        component c of atom a, B + 3Bn + v·B + b for stress component v.
        """
        structure, kind, atom, comp = [], [], [], []
        start = np.zeros(len(self.items) + 1, np.int64)
        for k, it in enumerate(self.items):
            na, count = self.natoms[k], 0
            if it.energy is not None:
                structure.append([k]), kind.append([ENERGY]), atom.append([-1])
                comp.append([0])
                count += 1
            if it.forces is not None:
                structure.append(np.full(3 * na, k)), kind.append(np.full(3 * na, FORCE))
                atom.append(np.repeat(np.arange(na), 3)), comp.append(np.tile([0, 1, 2], na))
                count += 3 * na
            if it.stress is not None:
                structure.append(np.full(6, k)), kind.append(np.full(6, STRESS))
                atom.append(np.full(6, -1)), comp.append(np.arange(6))
                count += 6
            start[k + 1] = start[k] + count

        def cat(parts):
            return (np.concatenate(parts).astype(np.int64) if parts
                    else np.zeros(0, np.int64))

        for bucket in self._buckets:
            size, n, _ = bucket.host_chunk(0).shape
            for c in range(bucket.n_chunks):
                take, dest = [], []
                for b in range(size):
                    if c * size + b >= len(bucket.members):
                        break
                    k = bucket.members[c * size + b]
                    it, na = self.items[k], self.natoms[k]
                    if it.energy is not None:
                        take.append([b])
                    if it.forces is not None:
                        atoms, xyz = np.repeat(np.arange(na), 3), np.tile([0, 1, 2], na)
                        take.append(size + (xyz * size + b) * n + atoms)
                    if it.stress is not None:
                        take.append(size + 3 * size * n + np.arange(6) * size + b)
                    dest.append(np.arange(start[k], start[k + 1]))
                bucket.take.append(cat(take))
                bucket.dest.append(cat(dest))
        return Rows(cat(structure), cat(kind), cat(atom), cat(comp))

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
        return {name: fn._cache_size() for name, fn in KERNELS.items()}

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
        fn = KERNELS[name]
        pending: deque = deque()
        for bi, bucket in enumerate(self._buckets):
            for k in range(bucket.n_chunks):
                if only is not None and (bi, k) not in only:
                    continue
                pending.append((bucket, k, fn(self._spec, *args, bucket.chunk(k))))
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
            columns = ravel_pytree(x)[0].shape[0]
        else:
            directions = np.asarray(directions, dtype=np.float64)
            if directions.ndim != 2 or directions.shape[0] != ravel_pytree(x)[0].shape[0]:
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
            size, n, _ = bucket.host_chunk(0).shape
            for k in range(bucket.n_chunks):
                block = np.zeros(size * (1 + 3 * n + 6))
                block[bucket.take[k]] = cotangent[bucket.dest[k]]
                pending.append(self._call("vjp", prepared, block, bucket.chunk(k)))
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
                out[item] = Prediction(float(energy[local]), forces[:, local, :na].T.copy(),
                                       s, w)
        return out
