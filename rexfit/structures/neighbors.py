"""Host-side (NumPy) neighbour lists with integer image shifts, padded to bucket sizes.

A pair (i, j, n) stands for the displacement r_ij = x_j + n·cell − x_i, n an integer row
vector: differentiable with respect to positions *and* cell, so stress and elastic constants
come from autodiff.  Lists are built on the host (scipy's cKDTree over explicit periodic images:
triclinic cells, non-periodic directions and cells much smaller than the cutoff all work) and
padded to a few capacities so that ``jit`` compilations are reused.

Bounds.  A cell far smaller than the cutoff (a collapsed relaxation, a lattice parameter typed
in the wrong unit) or a cutoff of kilometres would ask for terabytes of images and pairs.
Before anything of that size is allocated, the builder checks the bounds below (far above any
real structure: a dense metal with a 20 Å cutoff has about 3,000 neighbours per atom) and
raises :class:`~rexfit.errors.GeometryError` saying which was exceeded and why; so does a
non-finite or absurdly large position, cell vector, cutoff or skin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.errors import GeometryError
from rexfit.structures.indexing import take
from rexfit.structures.system import System

#: Displacement given to padding pairs: far beyond any cutoff, never zero (no NaN gradients).
PADDING_DISPLACEMENT = (1.0e4, 0.0, 0.0)

# Pairs this much beyond cutoff + skin are still listed (round-off guard; potentials decide).
_MARGIN = 1e-8

#: Largest coordinate, cell-vector component, cutoff and skin accepted (Å; 1 cm): beyond it
#: squared distances lose all precision (and overflow near 1e154).
MAX_LENGTH = 1.0e8
#: Periodic images of the cell one list may search.
MAX_IMAGES = 1_000_000
#: Atoms × images searched (each image atom is 24 bytes of coordinates: about 0.5 GB).
MAX_IMAGE_ATOMS = 20_000_000
#: Neighbours within cutoff + skin per atom, on average, counting both directions.
MAX_PAIRS_PER_ATOM = 10_000
#: Pairs of one list, counting both directions (each costs about 100 bytes while building).
MAX_PAIRS = 30_000_000


@jax.tree_util.register_dataclass
@dataclass(frozen=True, eq=False)
class NeighborList:
    """Pairs within ``cutoff + skin``; a pytree, capacity E fixed (padding has mask False).

    i, j: (E,) int32 atom indices.  shifts: (E, 3) int32 image vectors n.
    mask: (E,) bool, True for real pairs.
    ref_positions: (N, 3) Å and ref_cell: (3, 3) Å, the geometry the list was built for
    (non-periodic rows of ref_cell completed to a regular cell), used by :func:`needs_rebuild`.
    cutoff, skin: Å (static).  half: each pair once (i<j, or i==j with n>0) if True; both
    directions if False (static).
    """

    i: jax.Array
    j: jax.Array
    shifts: jax.Array
    mask: jax.Array
    ref_positions: jax.Array
    ref_cell: jax.Array
    cutoff: float = field(metadata=dict(static=True))
    skin: float = field(metadata=dict(static=True))
    half: bool = field(default=True, metadata=dict(static=True))

    @property
    def capacity(self) -> int:
        """Number of pair slots E (static)."""
        return self.i.shape[0]


def bucket_size(n: int, minimum: int = 32) -> int:
    """Smallest capacity ≥ n of the form 2^k or 3·2^(k−1) (at most 50 % padding), ≥ minimum."""
    size = minimum
    while size < n:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


def complete_cell(cell, pbc) -> np.ndarray:
    """(3, 3) regular cell: non-periodic rows replaced if the given cell is singular.

    Replacement rows are unit vectors orthogonal to the periodic rows; only periodic rows
    ever multiply a non-zero shift, so this does not change any distance.
    """
    cell = np.array(cell, dtype=np.float64).reshape(3, 3)
    scale = max(np.linalg.norm(cell, axis=1).max(), 1.0)
    if abs(np.linalg.det(cell)) > 1e-9 * scale**3:
        return cell
    periodic = [cell[k] for k in range(3) if pbc[k]]
    basis = []
    for v in periodic:
        w = v - sum(np.dot(v, b) * b for b in basis)
        if np.linalg.norm(w) < 1e-9 * scale:
            raise GeometryError("the periodic cell vectors are linearly dependent (the cell "
                                f"has volume {abs(np.linalg.det(cell)):.3g} Å³)")
        basis.append(w / np.linalg.norm(w))
    for k in range(3):
        if pbc[k]:
            continue
        for e in np.eye(3):
            w = e - sum(np.dot(e, b) * b for b in basis)
            if np.linalg.norm(w) > 1e-3:
                basis.append(w / np.linalg.norm(w))
                cell[k] = basis[-1]
                break
    return cell


def check_geometry(positions, cell, pbc, cutoff: float, skin: float) -> None:
    """Raise :class:`GeometryError` unless every position (N, 3), periodic cell vector, the
    cutoff and the skin (Å) are finite and at most :data:`MAX_LENGTH` in size."""
    for what, value in (("cutoff", cutoff), ("neighbour-list skin", skin)):
        if not math.isfinite(float(value)) or abs(float(value)) > MAX_LENGTH:
            raise GeometryError(f"the potential's {what} is {float(value):g} Å: it must be a "
                                f"finite number of at most {MAX_LENGTH:g} Å")
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    bad = np.nonzero(~np.all(np.isfinite(positions) & (np.abs(positions) <= MAX_LENGTH),
                             axis=1))[0]
    if bad.size:
        k = int(bad[0])
        raise GeometryError(
            f"atom {k + 1} has position ({', '.join(f'{v:g}' for v in positions[k])}) Å"
            + (f" (and {bad.size - 1} more atoms)" if bad.size > 1 else "")
            + f": positions must be finite and at most {MAX_LENGTH:g} Å")
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    for k in range(3):
        if pbc[k] and not np.all(np.isfinite(cell[k]) & (np.abs(cell[k]) <= MAX_LENGTH)):
            raise GeometryError(
                f"cell vector {k + 1} is ({', '.join(f'{v:g}' for v in cell[k])}) Å: cell "
                f"vectors must be finite and at most {MAX_LENGTH:g} Å")


def _image_shifts(inv_cell: np.ndarray, pbc, reach: float, natoms: int):
    """All candidate image vectors (M, 3) in C order of the shifts per direction (three
    integer ranges, also returned) and the fractional reach per direction (3,).

    Raises :class:`GeometryError` before allocating if M or M · ``natoms`` exceeds its bound
    (:data:`MAX_IMAGES`, :data:`MAX_IMAGE_ATOMS`)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        spacing = 1.0 / np.linalg.norm(inv_cell, axis=0)  # distance between lattice planes
        frac_reach = np.where(pbc, reach / spacing, 0.0)
        images = float(np.prod([2.0 * np.ceil(f) + 3.0 if p else 1.0
                                for f, p in zip(frac_reach, pbc)]))
    if not (images <= MAX_IMAGES and images * max(natoms, 1) <= MAX_IMAGE_ATOMS):
        thin = min((float(d) for d, p in zip(spacing, pbc) if p), default=math.inf)
        raise GeometryError(
            f"the cell is far too small for the cutoff: listing the pairs within "
            f"{reach:.6g} Å (cutoff + skin) of {natoms} atom(s) would search {images:.3g} "
            f"periodic images of a cell whose lattice planes are {thin:.3g} Å apart (at most "
            f"{MAX_IMAGES:,} images and {MAX_IMAGE_ATOMS:,} image atoms are searched): check "
            "the lattice parameter, the cell vectors and the potential's cutoff")
    m = [math.ceil(f) + 1 if p else 0 for f, p in zip(frac_reach, pbc)]
    axes = [np.arange(-k, k + 1) for k in m]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    return grid.reshape(-1, 3), axes, frac_reach


def _kd_tree():
    """SciPy's cKDTree, imported when first needed (``cKDTree`` of this module)."""
    return globals().get("cKDTree") or __getattr__("cKDTree")


def __getattr__(name: str):
    if name == "cKDTree":  # imported on first use: importing scipy.spatial costs 0.3 CPU-s
        from scipy.spatial import cKDTree

        globals()["cKDTree"] = cKDTree
        return cKDTree
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Candidate (centre, image) pairs up to which distances are computed all at once rather than
#: through SciPy's cKDTree (the same pairs; small cells, where the tree costs more than it
#: saves and importing SciPy's spatial package costs 0.3 CPU-s).
BRUTE_FORCE_PAIRS = 200_000


def _find_pairs(pos: np.ndarray, cell: np.ndarray, pbc, reach: float):
    """Full pair list (i, j, n) with |x_j + n·cell − x_i| ≤ reach, self pairs excluded.

    Candidate images are tested, and their distances computed, one Cartesian component at a
    time on (images × atoms) arrays rather than on (images × atoms × 3) ones: the same
    numbers (x² + y² + z², added in that order), about twice as fast for the many small
    cells of a dataset."""
    pbc = np.asarray(pbc, dtype=bool)
    inv_cell = np.linalg.inv(cell)
    frac = pos @ inv_cell
    offset = np.where(pbc, np.floor(frac), 0.0)
    wrapped = frac - offset
    shifts, axes, frac_reach = _image_shifts(inv_cell, pbc, reach, len(pos))
    natoms = len(pos)
    # candidate images: wrapped atom + shift inside [-reach, 1 + reach] per periodic direction
    inside = [(wrapped[None, :, a] + axes[a][:, None] >= -frac_reach[a])
              & (wrapped[None, :, a] + axes[a][:, None] <= 1.0 + frac_reach[a])
              if pbc[a] else np.ones((1, natoms), bool) for a in range(3)]
    keep = (inside[0][:, None, None, :] & inside[1][None, :, None, :]
            & inside[2][None, None, :, :]).reshape(-1, natoms)
    shift_idx, src = np.nonzero(keep)
    images = (wrapped[src] + shifts[shift_idx]) @ cell
    centres = wrapped @ cell
    natoms = max(natoms, 1)
    if len(centres) * len(images) <= min(BRUTE_FORCE_PAIRS, MAX_PAIRS):
        # few candidates (small cells): every distance, no tree (and no SciPy import)
        d2 = (images[None, :, 0] - centres[:, None, 0]) ** 2
        d2 += (images[None, :, 1] - centres[:, None, 1]) ** 2
        d2 += (images[None, :, 2] - centres[:, None, 2]) ** 2
        found_i, found_j = np.nonzero(d2 <= reach * reach)
        _check_pairs(len(found_i) - len(pos), natoms, reach)
    else:
        tree = _kd_tree()
        centre_tree, image_tree = tree(centres), tree(images)
        if natoms * len(images) > MAX_PAIRS:  # the pairs could exceed the bound: count first
            _count_pairs(centres, centre_tree, image_tree, reach)
        found = centre_tree.sparse_distance_matrix(image_tree, reach, output_type="ndarray")
        _check_pairs(len(found) - len(pos), natoms, reach)
        found_i, found_j = found["i"], found["j"]
    i = found_i.astype(np.int64)
    j = src[found_j]
    n_wrapped = shifts[shift_idx[found_j]]
    n = (n_wrapped - offset[j] + offset[i]).astype(np.int64)
    not_self = (i != j) | np.any(n != 0, axis=1)
    return i[not_self], j[not_self], n[not_self]


def _check_pairs(npairs: int, natoms: int, reach: float) -> None:
    """Raise :class:`GeometryError` if ``npairs`` (both directions) of ``natoms`` atoms
    within ``reach`` Å exceed :data:`MAX_PAIRS` or :data:`MAX_PAIRS_PER_ATOM` per atom."""
    if npairs <= min(MAX_PAIRS, MAX_PAIRS_PER_ATOM * natoms):
        return
    raise GeometryError(
        f"{natoms} atom(s) have {npairs / natoms:.4g} neighbours each within {reach:.6g} Å "
        "(cutoff + skin) "
        f"({npairs:,} pairs; at most {MAX_PAIRS_PER_ATOM:,} per atom and {MAX_PAIRS:,} in "
        "all are listed): atoms are far too close together for the cutoff; check the "
        "structure's geometry (lattice parameter, overlapping atoms) and the potential's "
        "cutoff")


#: Centres whose neighbours are counted to estimate a large list's size before building it.
_SAMPLE = 256


def _count_pairs(centres, centre_tree, image_tree, reach: float) -> None:
    """:func:`_check_pairs` before the pairs exist (nothing of their size is allocated):
    estimated from a sample of centres, counted exactly if the estimate comes near a bound."""
    natoms = len(centres)
    if natoms > 4 * _SAMPLE:
        sample = np.random.default_rng(0).choice(natoms, _SAMPLE, replace=False)
        counts = image_tree.query_ball_point(centres[sample], reach, return_length=True)
        estimate = int(np.sum(counts)) * natoms // _SAMPLE - natoms
        if estimate <= min(MAX_PAIRS, MAX_PAIRS_PER_ATOM * natoms) // 4:
            return
    # whole pairs of tree nodes at a time: fast even where atoms pile up
    _check_pairs(int(centre_tree.count_neighbors(image_tree, reach)) - natoms, natoms, reach)


def _keep_half(i, j, n) -> np.ndarray:
    """Mask choosing one of (i, j, n) and (j, i, −n): i < j, or i == j with n > 0 (lexical)."""
    first = np.where(n[:, 0] != 0, n[:, 0], np.where(n[:, 1] != 0, n[:, 1], n[:, 2]))
    return (i < j) | ((i == j) & (first > 0))


def pair_list(positions, cell, pbc, cutoff: float, skin: float = 0.5, half: bool = True):
    """(i, j, n) of the atoms ``positions`` (N, 3), all real, in ``cell`` with periodicity
    ``pbc``: the pairs closer than ``cutoff + skin`` Å, r_ij = x_j + n·cell − x_i, sorted by
    (i, j, n), one direction only if ``half`` (int64 arrays, unpadded; the list
    :func:`build_neighbor_list` pads).  Raises :class:`~rexfit.errors.GeometryError` for a
    geometry beyond the module's bounds, before anything of its size is allocated."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    check_geometry(positions, cell, pbc, cutoff, skin)
    cell = complete_cell(np.asarray(cell), pbc)
    i, j, n = _find_pairs(positions, cell, pbc, cutoff + skin + _MARGIN)
    if half:
        keep = _keep_half(i, j, n)
        i, j, n = i[keep], j[keep], n[keep]
    order = np.lexsort((n[:, 2], n[:, 1], n[:, 0], j, i))
    return i[order], j[order], n[order]


def build_neighbor_list(
    system: System,
    cutoff: float,
    skin: float = 0.5,
    *,
    half: bool = True,
    capacity: int | None = None,
    host: bool = False,
) -> NeighborList:
    """Neighbour list of ``system`` for pairs closer than ``cutoff + skin`` (Å).

    Runs on the host (NumPy/SciPy).  Padding atoms (mask False) are skipped.  ``capacity``
    (pair slots) defaults to :func:`bucket_size` of the pair count; a too-small value raises
    ``ValueError``.  ``host=True``: the list's arrays stay NumPy (not put on the device).  A geometry beyond the module's bounds raises
    :class:`~rexfit.errors.GeometryError` before anything of its size is allocated.
    """
    pbc = tuple(system.pbc)
    positions = np.asarray(system.positions, dtype=np.float64)
    atom_mask = np.asarray(system.mask, dtype=bool)
    real = np.nonzero(atom_mask)[0]
    i, j, n = pair_list(positions[real], system.cell, pbc, cutoff, skin, half)
    cell = complete_cell(np.asarray(system.cell), pbc)
    i, j = real[i], real[j]
    npairs = len(i)
    if capacity is None:
        capacity = bucket_size(npairs)
    elif capacity < npairs:
        raise ValueError(f"neighbour list needs {npairs} pairs, capacity is {capacity}")
    pad = capacity - npairs
    # converted on the host and transferred with device_put: jnp.asarray of a host array
    # runs a small program per shape and dtype (compiled, or read from the cache)
    put = (lambda a: a) if host else jax.device_put
    return NeighborList(
        i=put(np.pad(i, (0, pad)).astype(np.int32)),
        j=put(np.pad(j, (0, pad)).astype(np.int32)),
        shifts=put(np.pad(n, ((0, pad), (0, 0))).astype(np.int32)),
        mask=put(np.arange(capacity) < npairs),
        ref_positions=put(np.asarray(positions, np.float64)),
        ref_cell=put(np.asarray(cell, np.float64)),
        cutoff=float(cutoff),
        skin=float(skin),
        half=bool(half),
    )


def pair_displacements(system: System, nbrs: NeighborList) -> jax.Array:
    """(E, 3) displacements r_ij = x_j + n·cell − x_i in Å; padding rows hold a far dummy."""
    d = (
        take(system.positions, nbrs.j)
        - take(system.positions, nbrs.i)
        + nbrs.shifts.astype(system.cell.dtype) @ system.cell
    )
    return jnp.where(nbrs.mask[:, None], d, jnp.asarray(PADDING_DISPLACEMENT, d.dtype))


def needs_rebuild(nbrs: NeighborList, system: System) -> jax.Array:
    """True if some pair may have come closer than ``cutoff`` without being listed.

    Writes the motion since the build as a homogeneous deformation F of the cell plus atomic
    displacements u (x = x_ref F + u) and tests 2·max|u| + (cutoff + skin)·‖F − I‖_F > skin,
    which reduces to LAMMPS's max displacement > skin/2 when the cell is fixed.  Jittable;
    a change in the number of atom slots must be caught by the caller.
    """
    pbc = jnp.asarray(system.pbc)
    cell = jnp.where(pbc[:, None], system.cell, nbrs.ref_cell)
    deformation = jnp.linalg.solve(nbrs.ref_cell, cell)
    u = system.positions - nbrs.ref_positions @ deformation
    umax = jnp.max(jnp.where(system.mask, jnp.linalg.norm(u, axis=1), 0.0))
    strain = jnp.linalg.norm(deformation - jnp.eye(3))
    return 2.0 * umax + (nbrs.cutoff + nbrs.skin) * strain > nbrs.skin
