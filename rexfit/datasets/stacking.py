"""Turning the items of a dataset into chunk inputs: each item's geometry and unpadded
neighbour lists (:func:`list_item`), the buckets' padded host arrays with targets and residual
scales (:func:`make_buckets`, :func:`stack_bucket`), and the labels of the residual rows with,
per chunk, the map from its residual block to them (:func:`label_rows`)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from rexfit.datasets import descriptor_kernel as dk
from rexfit.datasets.analytic import analytic_full_list
from rexfit.datasets.buckets import Bucket, Listed, ladder, merge_small_groups
from rexfit.datasets.chunks import VOIGT, Chunk
from rexfit.datasets.items import ENERGY, FORCE, STRESS, Item, Rows
from rexfit.potentials.lists import build_lists, combined_needs, needs_full_list
from rexfit.structures.neighbors import PADDING_DISPLACEMENT, build_neighbor_list, pair_list
from rexfit.structures.system import make_system


def list_item(it: Item, potential, kernel: str, skin: float, n_species: int) -> Listed:
    """Geometry and neighbour lists of one item (host, unpadded): the half list for the
    analytic kernel (the full list where its family kernels read it: ACE), else the lists
    ``potential`` needs (with triplets, pruned for the fixed geometry where the descriptor
    kernel allows)."""
    system = make_system(it.positions, it.cell, it.species, it.pbc, host=True)
    if kernel == "analytic":
        nbrs = build_neighbor_list(system, potential.cutoff, skin,
                                   half=not analytic_full_list(potential), host=True)
    else:  # the lists the potential needs (full, with triplets if a descriptor needs them)
        nbrs = build_lists(potential, system, skin, n_species=n_species, host=True)
    npair = int(np.count_nonzero(np.asarray(nbrs.mask)))
    i, j = np.asarray(nbrs.i)[:npair], np.asarray(nbrs.j)[:npair]
    shifts = np.asarray(nbrs.shifts)[:npair]
    trip = getattr(nbrs, "triplets", None)
    if trip is not None:
        count = trip.count
        ij, ik = np.asarray(trip.ij)[:count], np.asarray(trip.ik)[:count]
        # the listed pairs' vectors x_j + n·cell − x_i, on the host
        vectors = (system.positions[j] - system.positions[i]
                   + shifts.astype(np.float64) @ system.cell)
        pruned = dk.prune_lists(potential, vectors, i, j, np.asarray(system.species),
                                ij, ik, trip.ordered)
        if pruned is not None:  # the structure never moves: drop what adds nothing
            pairs, ij, ik = pruned
            i, j, shifts = i[pairs], j[pairs], shifts[pairs]
        trip = (ij, ik, trip.ordered)
    return Listed(np.asarray(system.positions), np.asarray(system.cell),
                  np.asarray(system.species), system.pbc, i, j, shifts, trip,
                  (nbrs.cutoff, nbrs.skin, nbrs.half),
                  pruned=trip is not None and pruned is not None)


def list_items(items: Sequence[Item], potential, kernel: str, skin: float,
               n_species: int) -> list[Listed]:
    """:func:`list_item` of every item; for a potential without triplets, the pair lists
    come straight from :func:`~rexfit.structures.neighbors.pair_list` (the same lists,
    without a padded :class:`~rexfit.structures.neighbors.NeighborList` per item)."""
    half = (not analytic_full_list(potential) if kernel == "analytic"
            else not needs_full_list(potential))
    if not (kernel == "analytic" or combined_needs(potential, n_species) is None):
        return [list_item(it, potential, kernel, skin, n_species) for it in items]
    meta = (float(potential.cutoff), float(skin), bool(half))
    out = []
    for it in items:
        s = make_system(it.positions, it.cell, it.species, it.pbc, host=True)
        i, j, n = pair_list(s.positions, s.cell, s.pbc, potential.cutoff, skin, half)
        out.append(Listed(np.asarray(s.positions), np.asarray(s.cell), np.asarray(s.species),
                          s.pbc, i.astype(np.int32), j.astype(np.int32), n.astype(np.int32),
                          None, meta))
    return out


def make_buckets(listed: list[Listed], items: Sequence[Item], *, atom_minimum: int,
                 merge_padding: float, kernel: str, potential, feature_rows, base_predictions,
                 min_chunk_atoms: int, max_bucket_atoms: int | None,
                 flat: bool = False, atom_major: bool = False) -> list[Bucket]:
    """The buckets of a dataset: items grouped by periodicity and atom-count class (a rung of
    :func:`ladder`, at least ``atom_minimum``), small classes merged upwards within
    ``merge_padding`` × the dataset's atoms of padding slots, each group stacked by
    :func:`stack_bucket` (the other arguments are passed on).  ``flat`` (autodiff kernel,
    :func:`rexfit.datasets.chunks.flat_supported`): flat chunks of one shape instead
    (:func:`flat_buckets`); ``atom_major`` (analytic kernels that read them, ACE): flat
    chunks with atom-major pair slots (:func:`flat_buckets` with ``atom_major``)."""
    if flat or atom_major:
        return flat_buckets(listed, items, max_bucket_atoms or 4096, atom_minimum,
                            atom_major=atom_major)
    groups: dict[tuple, list[int]] = {}
    for k, x in enumerate(listed):
        groups.setdefault((x.pbc, ladder(max(x.natoms, atom_minimum))), []).append(k)
    groups = merge_small_groups(
        groups, merge_padding * int(np.sum([x.natoms for x in listed])))
    return [stack_bucket(key[0], key[1], np.asarray(groups[key]), listed, items, kernel=kernel,
                         potential=potential, feature_rows=feature_rows,
                         base_predictions=base_predictions, min_chunk_atoms=min_chunk_atoms,
                         max_bucket_atoms=max_bucket_atoms)
            for key in sorted(groups)]


def stack_bucket(pbc, n: int, members: np.ndarray, listed: list[Listed], items: Sequence[Item],
                 *, kernel: str, potential, feature_rows, base_predictions,
                 min_chunk_atoms: int, max_bucket_atoms: int | None) -> Bucket:
    """One bucket: ``n`` atom slots (its class, a rung of :func:`ladder`), pair and
    triplet slots the rungs of its largest lists, structures per chunk the rung of its
    size (at least ``min_chunk_atoms // n``) up to ``max_bucket_atoms // n`` (larger
    buckets: chunks of that many).  ``feature_rows`` (per descriptor model, per item) and
    ``base_predictions`` (per item) are the descriptor kernel's precomputed inputs, else None."""
    e = ladder(max(len(listed[k].i) for k in members), 8)
    # descriptor models that all keep per-atom designs never read the pair slots: keep
    # the fewest, so that the chunk shape depends on the atom slots only
    designs_only = (kernel == "descriptor" and feature_rows is not None
                    and not any(map(dk.is_geometric, dk.models(potential)))
                    and all(isinstance(per_item[members[0]][1], tuple)
                            for per_item in feature_rows))
    if designs_only:
        e = 8
    has_trip = listed[members[0]].triplets is not None
    s = len(members)
    size = ladder(max(s, min_chunk_atoms // n))
    if max_bucket_atoms is not None:
        size = min(size, max(1, max_bucket_atoms // n))
    n_chunks = -(-s // size)
    rows = n_chunks * size
    analytic = kernel in ("analytic", "descriptor")
    descriptor = kernel == "descriptor"
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
        if base_predictions is not None:
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
                if base_predictions is not None and row < s:
                    energy, forces, virial = base_predictions[k]
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
            _targets(items[k], na, abs(float(np.linalg.det(x.cell))), a, row)
    cutoff, skin, half = listed[members[0]].meta
    if descriptor:
        features, grads = [], []
        for per_item in feature_rows:
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
        if base_predictions is not None:
            a["base"] = base
    host = Chunk(**a, pbc=pbc, cutoff=cutoff, skin=skin, half=half, ordered=ordered,
                 packed=packed)
    return Bucket(members=members, size=size, n_chunks=n_chunks, host=host)


#: pair slots per atom slot of a flat chunk: a multiple of this (shapes shared by datasets
#: of similar density)
FLAT_PAIR_STEP = 4


def flat_buckets(listed: list[Listed], items: Sequence[Item], atoms: int,
                 atom_minimum: int = 8, atom_major: bool = False) -> list[Bucket]:
    """Flat chunks (one per :class:`Bucket`) of one shape (B, n, E) for the whole dataset:
    n = ``atoms`` atom slots (or the rung of the largest structure above it), E = n × the
    dataset's mean pairs per atom rounded up to a multiple of :data:`FLAT_PAIR_STEP` (or the
    rung of the largest list above it), structures packed first-fit by decreasing size within
    both, and B the rung of the most structures a chunk holds, at least n // ``atom_minimum``
    (structure slots are cheap: a validation set of few structures keeps the shape).
    ``atom_major``: the analytic kernel's chunks (:func:`stack_atom_major`), E = n × the most
    neighbours of any atom of the dataset rounded up to a multiple of
    :data:`FLAT_PAIR_STEP`."""
    natoms = np.array([x.natoms for x in listed])
    npairs = np.array([len(x.i) for x in listed])
    n = max(int(atoms), ladder(int(natoms.max())))
    if atom_major:
        most = max(int(np.bincount(x.i, minlength=x.natoms).max(initial=0)) for x in listed)
        per_atom = FLAT_PAIR_STEP * max(1, math.ceil(most / FLAT_PAIR_STEP))
        e = n * per_atom
    else:
        per_atom = FLAT_PAIR_STEP * math.ceil(npairs.sum() / natoms.sum() / FLAT_PAIR_STEP)
        e = max(n * max(per_atom, 1), ladder(int(npairs.max()), 8))
    bins: list[list[int]] = []
    room: list[list[int]] = []
    for k in sorted(range(len(listed)), key=lambda k: (-natoms[k], -npairs[k], k)):
        for b, (ra, rp) in enumerate(room):
            if natoms[k] <= ra and npairs[k] <= rp:
                bins[b].append(k)
                room[b] = [ra - natoms[k], rp - npairs[k]]
                break
        else:
            bins.append([k])
            room.append([n - natoms[k], e - npairs[k]])
    size = ladder(max(max(len(members) for members in bins), n // max(1, atom_minimum)))
    if atom_major:
        return [stack_atom_major(np.asarray(sorted(members)), listed, items, size, n,
                                 per_atom) for members in bins]
    return [stack_flat(np.asarray(sorted(members)), listed, items, size, n, e)
            for members in bins]


def stack_flat(members: np.ndarray, listed: list[Listed], items: Sequence[Item], size: int,
               n: int, e: int) -> Bucket:
    """One flat chunk (:class:`~rexfit.datasets.chunks.Chunk` with ``flat``): the members
    back to back in n atom and e pair slots, ``size`` structure slots (padding slots: no
    atoms, no weight)."""
    big = max(int(np.abs(listed[k].shifts).max(initial=0)) for k in members)
    a: dict[str, Any] = dict(
        species=np.zeros(n, np.int32), mask=np.zeros(n, bool), owner=np.zeros(n, np.int32),
        pair_mask=np.zeros(e, bool), e_ref=np.zeros(size), f_ref=np.zeros((3, n)),
        s_ref=np.zeros((6, size)), ce=np.zeros(size), cf=np.zeros(n), cs=np.zeros(size),
        volume=np.ones(size), positions=np.zeros((n, 3)), cell=np.zeros((size, 3, 3)),
        i=np.zeros(e, np.int32), j=np.zeros(e, np.int32),
        shifts=np.zeros((e, 3), np.int8 if big < 127 else np.int32))
    starts = np.zeros(size, np.int64)
    atom = pair = 0
    for row, k in enumerate(members):
        x = listed[k]
        na, npair = x.natoms, len(x.i)
        starts[row] = atom
        at, pr = slice(atom, atom + na), slice(pair, pair + npair)
        a["species"][at] = x.species
        a["mask"][at] = True
        a["owner"][at] = row
        a["positions"][at] = x.positions
        a["cell"][row] = x.cell
        a["pair_mask"][pr] = True
        a["i"][pr], a["j"][pr] = x.i + atom, x.j + atom
        a["shifts"][pr] = x.shifts
        _flat_targets(items[k], x, a, row, at)
        atom, pair = atom + na, pair + npair
    starts[len(members):] = atom
    cutoff, skin, half = listed[members[0]].meta
    host = Chunk(**a, pbc=listed[members[0]].pbc, cutoff=cutoff, skin=skin, half=half,
                 flat=True)
    return Bucket(members=members, size=size, n_chunks=1, host=host, starts=starts)


def stack_atom_major(members: np.ndarray, listed: list[Listed], items: Sequence[Item],
                     size: int, n: int, slots: int) -> Bucket:
    """One flat chunk of the analytic kernel with atom-major pair slots
    (:class:`~rexfit.datasets.chunks.Chunk` with ``flat`` and ``slots``): the members back
    to back in n atom slots, atom slot a owning the pair slots a·slots … (a + 1)·slots − 1
    (its neighbours, then padding pairs: far dummy vectors, gi = gj = a), ``size`` structure
    slots (padding slots: no atoms, no weight)."""
    e = n * slots
    a: dict[str, Any] = dict(
        species=np.zeros(n, np.int32), mask=np.zeros(n, bool), owner=np.zeros(n, np.int32),
        pair_mask=np.zeros(e, bool), e_ref=np.zeros(size), f_ref=np.zeros((3, n)),
        s_ref=np.zeros((6, size)), ce=np.zeros(size), cf=np.zeros(n), cs=np.zeros(size),
        volume=np.ones(size), gi=np.repeat(np.arange(n, dtype=np.int32), slots),
        gj=np.repeat(np.arange(n, dtype=np.int32), slots), si=np.zeros(e, np.int32),
        sj=np.zeros(e, np.int32),
        d=np.tile(np.asarray(PADDING_DISPLACEMENT, np.float64)[:, None], (1, e)))
    starts = np.zeros(size, np.int64)
    atom = 0
    for row, k in enumerate(members):
        x = listed[k]
        na = x.natoms
        starts[row] = atom
        at = slice(atom, atom + na)
        a["species"][at] = x.species
        a["mask"][at] = True
        a["owner"][at] = row
        order = np.argsort(x.i, kind="stable")
        i, j = x.i[order], x.j[order]
        rank = np.arange(len(i)) - np.searchsorted(i, i)  # place among the atom's pairs
        pos = (atom + i) * slots + rank
        a["pair_mask"][pos] = True
        a["gj"][pos] = atom + j
        a["si"][pos], a["sj"][pos] = x.species[i], x.species[j]
        a["d"][:, pos] = (x.positions[j] - x.positions[i]
                          + x.shifts[order].astype(np.float64) @ x.cell).T
        _flat_targets(items[k], x, a, row, at)
        atom += na
    starts[len(members):] = atom
    cutoff, skin, half = listed[members[0]].meta
    host = Chunk(**a, pbc=listed[members[0]].pbc, cutoff=cutoff, skin=skin, half=half,
                 flat=True, slots=slots)
    return Bucket(members=members, size=size, n_chunks=1, host=host, starts=starts)


def _flat_targets(it: Item, x: Listed, a: dict, row: int, at: slice) -> None:
    """Reference values and residual scales of one item into structure slot ``row`` and
    atom slots ``at`` of a flat chunk's arrays ``a``."""
    na = x.natoms
    one = dict(e_ref=np.zeros(1), f_ref=np.zeros((3, 1, na)), s_ref=np.zeros((6, 1)),
               ce=np.zeros(1), cf=np.zeros((1, na)), cs=np.zeros(1), volume=np.ones(1))
    _targets(it, na, abs(float(np.linalg.det(x.cell))), one, 0)
    for name in ("e_ref", "ce", "cs", "volume"):
        a[name][row] = one[name][0]
    a["s_ref"][:, row] = one["s_ref"][:, 0]
    a["f_ref"][:, at] = one["f_ref"][:, 0]
    a["cf"][at] = one["cf"][0]


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


def label_rows(items: Sequence[Item], natoms: np.ndarray, buckets: list[Bucket]) -> Rows:
    """Row labels, and per chunk (``bucket.take``, ``bucket.dest``) the map from its residual
    block to the rows.

    A chunk's residual block is [r_E (B,), r_F (3, B, n) flattened, r_S (6, B)
    flattened]: entry b for the energy of structure b, B + (c·B + b)·n + a for force
    component c of atom a, B + 3Bn + v·B + b for stress component v.
    """
    structure, kind, atom, comp = [], [], [], []
    start = np.zeros(len(items) + 1, np.int64)
    for k, it in enumerate(items):
        na, count = natoms[k], 0
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

    for bucket in buckets:
        size = bucket.size
        starts, slots = bucket.atom_layout()
        for c in range(bucket.n_chunks):
            take, dest = [], []
            for b in range(size):
                if c * size + b >= len(bucket.members):
                    break
                k = bucket.members[c * size + b]
                it, na = items[k], natoms[k]
                if it.energy is not None:
                    take.append([b])
                if it.forces is not None:
                    atoms, xyz = np.repeat(np.arange(na), 3), np.tile([0, 1, 2], na)
                    take.append(size + xyz * slots + starts[b] + atoms)
                if it.stress is not None:
                    take.append(size + 3 * slots + np.arange(6) * size + b)
                dest.append(np.arange(start[k], start[k + 1]))
            bucket.take.append(cat(take))
            bucket.dest.append(cat(dest))
    return Rows(cat(structure), cat(kind), cat(atom), cat(comp))
