"""Host-side (NumPy) neighbour lists with integer image shifts, padded to bucket sizes.

A pair (i, j, n) stands for the displacement r_ij = x_j + n·cell − x_i, n an integer row
vector: differentiable with respect to positions *and* cell, so stress and elastic constants
come from autodiff.  Lists are built on the host (scipy's cKDTree over explicit periodic images:
triclinic cells, non-periodic directions and cells much smaller than the cutoff all work) and
padded to a few capacities so that ``jit`` compilations are reused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from rexfit.structures.system import System

#: Displacement given to padding pairs: far beyond any cutoff, never zero (no NaN gradients).
PADDING_DISPLACEMENT = (1.0e4, 0.0, 0.0)

# Pairs this much beyond cutoff + skin are still listed (round-off guard; potentials decide).
_MARGIN = 1e-8


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
            raise ValueError("periodic cell vectors are linearly dependent")
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


def _image_shifts(inv_cell: np.ndarray, pbc, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """All candidate image vectors (M, 3) and the fractional reach per direction (3,)."""
    spacing = 1.0 / np.linalg.norm(inv_cell, axis=0)  # distance between lattice planes
    frac_reach = np.where(pbc, reach / spacing, 0.0)
    m = [math.ceil(f) + 1 if p else 0 for f, p in zip(frac_reach, pbc)]
    grid = np.stack(np.meshgrid(*[np.arange(-k, k + 1) for k in m], indexing="ij"), -1)
    return grid.reshape(-1, 3), frac_reach


def _find_pairs(pos: np.ndarray, cell: np.ndarray, pbc, reach: float):
    """Full pair list (i, j, n) with |x_j + n·cell − x_i| ≤ reach, self pairs excluded."""
    pbc = np.asarray(pbc, dtype=bool)
    inv_cell = np.linalg.inv(cell)
    frac = pos @ inv_cell
    offset = np.where(pbc, np.floor(frac), 0.0)
    wrapped = frac - offset
    shifts, frac_reach = _image_shifts(inv_cell, pbc, reach)
    img_frac = wrapped[None, :, :] + shifts[:, None, :]  # (M, N, 3)
    keep = np.all(
        ~pbc | ((img_frac >= -frac_reach) & (img_frac <= 1.0 + frac_reach)), axis=-1
    )
    shift_idx, src = np.nonzero(keep)
    images = img_frac[shift_idx, src] @ cell
    centres = wrapped @ cell
    found = cKDTree(centres).sparse_distance_matrix(
        cKDTree(images), reach, output_type="ndarray"
    )
    i = found["i"].astype(np.int64)
    j = src[found["j"]]
    n_wrapped = shifts[shift_idx[found["j"]]]
    n = (n_wrapped - offset[j] + offset[i]).astype(np.int64)
    not_self = (i != j) | np.any(n != 0, axis=1)
    return i[not_self], j[not_self], n[not_self]


def _keep_half(i, j, n) -> np.ndarray:
    """Mask choosing one of (i, j, n) and (j, i, −n): i < j, or i == j with n > 0 (lexical)."""
    first = np.where(n[:, 0] != 0, n[:, 0], np.where(n[:, 1] != 0, n[:, 1], n[:, 2]))
    return (i < j) | ((i == j) & (first > 0))


def build_neighbor_list(
    system: System,
    cutoff: float,
    skin: float = 0.5,
    *,
    half: bool = True,
    capacity: int | None = None,
) -> NeighborList:
    """Neighbour list of ``system`` for pairs closer than ``cutoff + skin`` (Å).

    Runs on the host (NumPy/SciPy).  Padding atoms (mask False) are skipped.  ``capacity``
    (pair slots) defaults to :func:`bucket_size` of the pair count; a too-small value raises.
    """
    pbc = tuple(system.pbc)
    positions = np.asarray(system.positions, dtype=np.float64)
    atom_mask = np.asarray(system.mask, dtype=bool)
    real = np.nonzero(atom_mask)[0]
    cell = complete_cell(np.asarray(system.cell), pbc)
    reach = cutoff + skin + _MARGIN
    i, j, n = _find_pairs(positions[real], cell, pbc, reach)
    if half:
        keep = _keep_half(i, j, n)
        i, j, n = i[keep], j[keep], n[keep]
    order = np.lexsort((n[:, 2], n[:, 1], n[:, 0], j, i))
    i, j, n = real[i[order]], real[j[order]], n[order]
    npairs = len(i)
    if capacity is None:
        capacity = bucket_size(npairs)
    elif capacity < npairs:
        raise ValueError(f"neighbour list needs {npairs} pairs, capacity is {capacity}")
    pad = capacity - npairs
    return NeighborList(
        i=jnp.asarray(np.pad(i, (0, pad)), dtype=jnp.int32),
        j=jnp.asarray(np.pad(j, (0, pad)), dtype=jnp.int32),
        shifts=jnp.asarray(np.pad(n, ((0, pad), (0, 0))), dtype=jnp.int32),
        mask=jnp.asarray(np.arange(capacity) < npairs),
        ref_positions=jnp.asarray(positions),
        ref_cell=jnp.asarray(cell),
        cutoff=float(cutoff),
        skin=float(skin),
        half=bool(half),
    )


def pair_displacements(system: System, nbrs: NeighborList) -> jax.Array:
    """(E, 3) displacements r_ij = x_j + n·cell − x_i in Å; padding rows hold a far dummy."""
    d = (
        system.positions[nbrs.j]
        - system.positions[nbrs.i]
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
